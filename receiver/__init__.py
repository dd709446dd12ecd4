"""The syslog receiver appliance: ingest, spool, deliver, control, config."""

__version__ = "0.1.0"
