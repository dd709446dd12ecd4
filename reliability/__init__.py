"""The reliability suite: bounded, self-stopping failure scenarios over loopback (``make reliability``).

Each scenario starts its own receiver (and senders, upstreams), does one
bad thing to it, and counts what happened to every message: sent, stored
in the spool, delivered upstream, lost, duplicated. ``reliability.run``
runs them at full size and prints the table docs/reliability.md shows;
``tests/reliability`` runs each at a size that fits CI, so a regression
fails ``make test``.
"""
