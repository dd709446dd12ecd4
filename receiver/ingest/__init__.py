"""Ingest: listeners that turn bytes into frames and hand them to the spool."""
