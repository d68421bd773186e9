"""rubricate: the feedback a scalar reward leaves out, from LLM reasoning traces."""

__version__ = "0.1.0"
