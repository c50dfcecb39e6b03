"""Benchmarks: `make bench` prints the figures and writes them as JSON."""
