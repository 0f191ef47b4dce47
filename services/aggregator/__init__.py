"""Aggregator: recompute dirty indicator windows set-based in SQL, on a schedule."""
