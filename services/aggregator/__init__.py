"""Aggregator: recompute dirty indicator windows set-based in SQL, on a schedule, and render the
/metrics snapshot the api serves."""
