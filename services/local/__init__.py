"""Local stack: embedded PostgreSQL and Tansu broker, `itsm-metrics up`, the event simulator."""
