"""Benchmarks: `python -m benchmarks [name ...]` (or `make bench`) prints a table and writes JSON
under benchmarks/results/."""
