"""Scoring feedback against benchmarks' gold labels: one module per benchmark."""
