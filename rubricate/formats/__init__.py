"""Reading records in, writing them out, and mapping public formats onto the trace record."""
