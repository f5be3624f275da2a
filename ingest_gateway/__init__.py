"""The ingest gateway: authenticate each webhook POST, keep it as received, acknowledge once durable."""
