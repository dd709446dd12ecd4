"""The scenarios, one module per theme; importing this package registers them all."""

from reliability.scenarios import ingest, upstream  # noqa: F401  (registration)
