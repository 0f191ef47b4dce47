"""What every service shares: the event contract, the tables, settings, Kafka config, logging."""
