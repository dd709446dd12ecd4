"""What the appliance counts while it works: ingest and spool events, per-sender counters."""
