"""The spool: the durable write-ahead log between ingest and delivery.

``SpoolWriter`` (in the daemon) group-commits what ingest reads;
``SpoolReader`` (anywhere, read-only, concurrently) sees what is committed.
"""

from receiver.spool.reader import SpoolEntry, SpoolReader, SpoolStats
from receiver.spool.segment import Entry
from receiver.spool.store import SpoolDamagedError

__all__ = ["Entry", "SpoolDamagedError", "SpoolEntry", "SpoolReader", "SpoolStats"]
