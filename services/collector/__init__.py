"""Collector: consume events from Kafka, validate, dedupe, project into PostgreSQL, exactly once."""
