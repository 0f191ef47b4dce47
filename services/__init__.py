"""The itsm-metrics services: collector, aggregator, api, and the local stack that runs them."""
