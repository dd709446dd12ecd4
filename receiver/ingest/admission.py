"""How fast a source may send: per-source rate limits (which sources may send at all: receiver.config.networks).

Pure bookkeeping with time passed in; the listeners act on the answers:
a source outside a listener's networks is refused at accept (TCP, RELP,
TLS) or its datagrams dropped (UDP), counted either way; a source over its
rate is paused for as long as it is over (TCP: the kernel's window then
slows the sender, nothing is lost) or has its datagrams dropped and counted
(UDP, which cannot be slowed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

__all__ = ["SourceRateLimits", "TokenBucket"]

class TokenBucket:
    """``rate`` per second with a burst of ``burst_seconds`` of it; may go into debt, which is then waited out."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst_seconds: float, now: float) -> None:
        self.rate = rate
        self.capacity = rate * burst_seconds
        self.tokens = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def charge(self, amount: float, now: float) -> float:
        """Take ``amount`` (into debt if need be); returns how many seconds until the debt is paid (0: none)."""
        self._refill(now)
        self.tokens -= amount
        return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def try_take(self, amount: float, now: float) -> bool:
        """Take ``amount`` if it is there; False (nothing taken) if not."""
        self._refill(now)
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


class SourceRateLimits:
    """Per-source buckets of records and bytes per second, shared by a source's connections on one listener.

    A limit of 0 is no limit. At most ``max_sources`` sources have buckets: a
    new one then evicts the least recently used, found in O(1) (spoofed UDP
    sources arrive faster than a scan could keep up with), and ``on_evicted``
    counts it.
    """

    def __init__(
        self,
        records_per_second: float,
        bytes_per_second: float,
        burst_seconds: float,
        *,
        max_sources: int = 100_000,
        on_evicted: Callable[[], object] | None = None,
    ) -> None:
        self.records_per_second = records_per_second
        self.bytes_per_second = bytes_per_second
        self.burst_seconds = burst_seconds
        self.max_sources = max_sources
        self._on_evicted = on_evicted
        self._buckets: OrderedDict[str, tuple[TokenBucket | None, TokenBucket | None]] = OrderedDict()

    def __bool__(self) -> bool:
        return self.records_per_second > 0 or self.bytes_per_second > 0

    def _of(self, source: str, now: float) -> tuple[TokenBucket | None, TokenBucket | None]:
        buckets = self._buckets.get(source)
        if buckets is not None:
            self._buckets.move_to_end(source)
            return buckets
        if len(self._buckets) >= self.max_sources:
            # The least recently used is most likely full again, and then evicting it changes nothing.
            # If not, its source starts over with a fresh burst: at most one burst per max_sources
            # other sources heard since, which a spoofer gets anyway from a new address. A paused TCP
            # sender stays paused: the pause is its connection's timer, not the bucket.
            self._buckets.popitem(last=False)
            if self._on_evicted is not None:
                self._on_evicted()
        buckets = (
            TokenBucket(self.records_per_second, self.burst_seconds, now) if self.records_per_second > 0 else None,
            TokenBucket(self.bytes_per_second, self.burst_seconds, now) if self.bytes_per_second > 0 else None,
        )
        self._buckets[source] = buckets
        return buckets

    def charge(self, source: str, records: int, nbytes: int, now: float) -> float:
        """Count what ``source`` sent (TCP: it is already read); returns how long to pause it, in seconds."""
        by_records, by_bytes = self._of(source, now)
        wait = by_records.charge(records, now) if by_records is not None else 0.0
        if by_bytes is not None:
            wait = max(wait, by_bytes.charge(nbytes, now))
        return wait

    def admit(self, source: str, records: int, nbytes: int, now: float) -> bool:
        """Whether ``source`` may send this now (UDP); if not, nothing is taken and it is to be dropped."""
        by_records, by_bytes = self._of(source, now)
        if by_records is not None and not by_records.try_take(records, now):
            return False
        if by_bytes is not None and not by_bytes.try_take(nbytes, now):
            if by_records is not None:
                by_records.tokens += records  # give back: the datagram is dropped whole
            return False
        return True
