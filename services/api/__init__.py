"""api: FastAPI app serving ingest, review data and Prometheus exposition."""
