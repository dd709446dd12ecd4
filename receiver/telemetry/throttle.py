"""Rate-limited logging: a happening that repeats is logged at most once per interval, with its count.

A flood (refused connections, dropped datagrams, records without a route)
must not flood the log, and must not go unsaid either: the first time is
logged at once, later ones are added up and said with the next line due.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["LogThrottle"]


class LogThrottle:
    """When each kind of happening (a ``key``) may be logged again; ``clock`` gives monotonic seconds."""

    def __init__(self, clock: Callable[[], float], interval_seconds: float = 60.0) -> None:
        self._clock = clock
        self.interval_seconds = interval_seconds
        self._keys: dict[str, tuple[float, int]] = {}  # key: (when last logged, how many since)

    def due(self, key: str, n: int = 1) -> int:
        """Add ``n`` happenings of ``key``; returns how many to log now (those since the last line),
        or 0 while the last line is younger than the interval, or when nothing happened since.

        Called with ``n=0``, it says what is still unsaid once the interval has passed: a caller that
        polls counters reports the tail of a burst that no later happening would bring out.
        """
        now = self._clock()
        last, pending = self._keys.get(key, (float("-inf"), 0))
        pending += n
        if pending and now - last >= self.interval_seconds:
            self._keys[key] = (now, 0)
            return pending
        self._keys[key] = (last, pending)
        return 0
