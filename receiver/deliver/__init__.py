"""Delivery: spooled frames to the sinks (local store, SLS, ClickHouse, HTTP).

It runs in its own process (``python -m receiver.deliver.process``, started
and supervised by ``receiver run``), reading the spool the daemon writes.
Each sink has a cursor in the spool and a worker that reads segments past
it, builds groups (parse, route, tag: :mod:`.batches`, :mod:`.building`),
sends them (:mod:`.worker`) and moves the cursor only once the upstream
accepted. Ingest and delivery meet only at the spool.
"""
