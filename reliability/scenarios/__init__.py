"""The scenarios, one module per theme; importing this package registers them all."""

from reliability.scenarios import ingest, ingest_clock, ingest_input, upstream  # noqa: F401  (registration)
