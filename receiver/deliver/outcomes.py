"""What a sink is to the delivery loop, and how an upstream's answer is told to it.

A leaf: the sinks and the worker both import it, and it imports neither.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from receiver.deliver.batches import Group

__all__ = ["OutcomeKind", "SendOutcome", "Sink", "first_line"]


OutcomeKind = Literal["ok", "retry", "quota", "auth", "clock-skew", "not-deliverable", "permanent"]


@dataclasses.dataclass(frozen=True, slots=True)
class SendOutcome:
    """How an upstream answered one request: every answer is one of these kinds, with a reason."""

    kind: OutcomeKind
    reason: str = ""
    retry_after_seconds: float | None = None
    stored: frozenset[str] = frozenset()
    """For a batch (``send_batch``) refused for good: the pack ids of its groups the upstream had
    stored already (an earlier table's insert), which are delivered, not dead letters."""


class Sink(Protocol):
    """An upstream: local store, SLS, ClickHouse, HTTP."""

    name: str
    max_records: int
    max_bytes: int

    def send(self, group: Group) -> SendOutcome:
        """Deliver one group; never raises (network trouble is an outcome).

        A sink may also have ``send_batch(groups) -> SendOutcome``: the worker
        then hands it a batch's groups in one call (the embedded store
        inserts them as one part); ``merge(groups) -> Group | None``: one
        stream's groups of consecutive batches as one request, or None (the
        worker then merges the batches built while the oldest was: SLS); and
        ``segments_per_batch``, how many spool segments its batches read unless
        ``[deliver]`` says (:data:`receiver.deliver.worker.SEGMENTS_PER_BATCH`
        otherwise)."""

    def close(self) -> None: ...


def first_line(error: BaseException, limit: int = 200) -> str:
    """An exception told in one short line (at most ``limit`` characters), for a reason or a log line."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
