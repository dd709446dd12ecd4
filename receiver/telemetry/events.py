"""What the receiver counts and says, in one place.

Each happening is one method: it bumps its counters and, when an operator
should hear of it, logs one sentence. Repeated happenings (refused
connections, dropped datagrams) are logged at most once per interval, with
the number since the last line, so a flood cannot flood the log. Every
counter is a family of receiver/telemetry/names.py, the names the metrics
endpoint and ``receiverctl stats`` show; a ``reason`` label is a code from
that module's vocabularies, and the sentence behind it goes to the log.

Levels: INFO for lifecycle, WARNING for trouble the receiver handled,
ERROR for data that is lost.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from receiver.telemetry import names
from receiver.telemetry.names import (
    ConnectionRefusal,
    Family,
    RelpPause,
    RelpRefusal,
    SpoolDiscard,
    UdpDrop,
)
from receiver.telemetry.senders import Senders
from receiver.telemetry.throttle import LogThrottle

__all__ = ["Telemetry"]

log = logging.getLogger("receiver")

Labels = tuple[tuple[str, str], ...]


class Telemetry:
    """Counters and rate-limited logging; ``clock`` gives monotonic seconds."""

    def __init__(self, *, clock: Callable[[], float], repeat_interval_seconds: float = 60.0) -> None:
        self.counters: Counter[tuple[str, Labels]] = Counter()
        self._received_keys: dict[str, tuple[tuple[str, Labels], tuple[str, Labels]]] = {}
        self._throttle = LogThrottle(clock, repeat_interval_seconds)
        self.senders = Senders(time.time, on_forgotten=self.sender_forgotten)
        """Every source heard from (``receiverctl senders``)."""

    def count(self, family: Family, n: int = 1, **labels: str) -> None:
        """Add ``n`` to a family of receiver/telemetry/names.py (label values: fixed codes, never sentences)."""
        self.counters[(family.name, tuple(sorted(labels.items())))] += n

    def value(self, name: str, **labels: str) -> int:
        """One counter (labels given exactly), or the sum over all labels when none are given."""
        if labels:
            return self.counters[(name, tuple(sorted(labels.items())))]
        return sum(v for (n, _), v in self.counters.items() if n == name)

    def _repeated(self, key: str, level: int, message: str, n: int = 1) -> None:
        """Log ``message`` now, or later with how many times it happened meanwhile."""
        pending = self._throttle.due(key, n)
        if pending:
            interval = self._throttle.interval_seconds
            suffix = f" ({pending} times in the last {interval:g} s)" if pending > n else ""
            log.log(level, "%s%s", message, suffix)

    # -- listeners -------------------------------------------------------

    def listening(self, listener: str, transport: str, address: str, port: int) -> None:
        log.info("listening on %s %s port %d (%s)", transport, address, port, listener)

    def udp_buffer(self, listener: str, asked: int, granted: int) -> None:
        level = logging.INFO if granted >= asked else logging.WARNING
        hint = "" if granted >= asked else (
            "; raise net.core.rmem_max (sysctl) or run with CAP_NET_ADMIN to get more, or UDP bursts will be dropped"
        )
        log.log(level, "%s: UDP receive buffer %d bytes (asked for %d)%s", listener, granted, asked, hint)

    def connection_opened(self, listener: str) -> None:
        self.count(names.CONNECTIONS_OPENED, listener=listener)

    def connection_closed(self, listener: str) -> None:
        self.count(names.CONNECTIONS_CLOSED, listener=listener)

    def connection_refused(self, listener: str, peer: str, reason: ConnectionRefusal, detail: str) -> None:
        """A connection refused: ``reason`` its code, ``detail`` the sentence for the log."""
        self.count(names.CONNECTIONS_REFUSED, listener=listener, reason=reason)
        self._repeated(
            f"refused:{listener}:{detail}", logging.WARNING,
            f"{listener}: refused a connection from {peer}: {detail}",
        )

    def connection_idle_closed(self, listener: str, peer: str, idle_seconds: float) -> None:
        self.count(names.CONNECTIONS_IDLE_CLOSED, listener=listener)
        self._repeated(
            f"idle:{listener}", logging.INFO,
            f"{listener}: closing the connection from {peer}, silent for {idle_seconds:g} s",
        )

    def rate_limited(self, listener: str, peer: str, seconds: float) -> None:
        self.count(names.RATE_LIMITED, listener=listener)
        self._repeated(
            f"rate:{listener}", logging.INFO,
            f"{listener}: {peer} is over its rate limit: reading from it paused for {seconds:.2f} s",
        )

    def rate_limit_bucket_evicted(self, listener: str) -> None:
        """A source new to the listener's rate limits, which keep buckets for a bounded number of sources."""
        self.count(names.RATE_LIMIT_BUCKETS_EVICTED, listener=listener)
        self._repeated(
            f"rate-evicted:{listener}", logging.WARNING,
            f"{listener}: rate limits for more sources than they keep: the least recently heard one starts "
            "over with a full burst (a flood from spoofed source addresses?)",
        )

    def sender_forgotten(self) -> None:
        """A sender new to ``receiverctl senders``, which was full."""
        self.count(names.SENDERS_FORGOTTEN)
        self._repeated(
            "senders-forgotten", logging.WARNING,
            f"more than {self.senders.limit} senders: the list receiverctl senders shows forgot the one "
            "without a connection heard least recently (a flood from spoofed UDP source addresses?)",
        )

    def relp_session_broken(self, listener: str, peer: str, reason: str) -> None:
        self.count(names.RELP_SESSIONS_BROKEN, listener=listener)
        self._repeated(
            f"relp:{listener}", logging.WARNING,
            f"{listener}: ended the RELP session of {peer}: {reason}; it resends what was not acknowledged",
        )

    def relp_reading_paused(self, listener: str, peer: str, reason: RelpPause, detail: str) -> None:
        """Reading from a RELP sender paused: ``reason`` its code, ``detail`` the sentence for the log."""
        self.count(names.RELP_READING_PAUSED, listener=listener, reason=reason)
        self._repeated(
            f"relp-paused:{listener}:{reason}", logging.WARNING,
            f"{listener}: paused reading from the RELP sender {peer}: {detail}",
        )

    def relp_frame_refused(self, listener: str, peer: str, reason: RelpRefusal, detail: str) -> None:
        """A RELP frame answered 500 (or, past the session's limit, ending it): ``reason`` its code,
        ``detail`` the sentence for the log."""
        self.count(names.RELP_FRAMES_REFUSED, listener=listener, reason=reason)
        self._repeated(
            f"relp-refused:{listener}:{reason}", logging.WARNING,
            f"{listener}: refused a RELP frame from {peer}: {detail}",
        )

    # -- frames ----------------------------------------------------------

    def received(self, listener: str, frames: int, nbytes: int) -> None:
        # Called for every read: the counter keys are built once per listener.
        keys = self._received_keys.get(listener)
        if keys is None:
            labels = (("listener", listener),)
            keys = ((names.FRAMES_RECEIVED.name, labels), (names.BYTES_RECEIVED.name, labels))
            self._received_keys[listener] = keys
        counters = self.counters
        counters[keys[0]] += frames
        counters[keys[1]] += nbytes

    def deframed(self, listener: str, *, empty: int, truncated: int, incomplete: int, framing_errors: int) -> None:
        """The deframer's counters of one connection or datagram, added when it ends or changes."""
        if empty:
            self.count(names.FRAMES_EMPTY, empty, listener=listener)
        if truncated:
            self.count(names.FRAMES_TRUNCATED, truncated, listener=listener)
            self._repeated(
                f"truncated:{listener}", logging.WARNING,
                f"{listener}: a frame over max_frame_bytes was cut and flagged truncated",
                truncated,
            )
        if incomplete:
            self.count(names.FRAMES_INCOMPLETE, incomplete, listener=listener)
            self._repeated(
                f"incomplete:{listener}", logging.INFO,
                f"{listener}: a sender closed in the middle of a frame; the part that came is kept, "
                "flagged incomplete",
                incomplete,
            )
        if framing_errors:
            self.count(names.FRAMES_FRAMING_ERRORS, framing_errors, listener=listener)
            self._repeated(
                f"framing:{listener}", logging.WARNING,
                f"{listener}: frames without an octet count (an LF sender on an octet listener?) "
                "were read up to LF and flagged framing-error",
                framing_errors,
            )

    def udp_dropped(self, listener: str, reason: UdpDrop, detail: str, datagrams: int = 1) -> None:
        """UDP datagrams dropped: ``reason`` their code, ``detail`` the sentence for the log."""
        self.count(names.UDP_DATAGRAMS_DROPPED, datagrams, listener=listener, reason=reason)
        self._repeated(
            f"udp-drop:{listener}:{reason}", logging.ERROR,
            f"{listener}: dropped UDP datagrams: {detail}", datagrams,
        )

    # -- spool -----------------------------------------------------------

    def committed(self, frames: int, nbytes: int) -> None:
        self.count(names.SPOOL_SEGMENTS_COMMITTED)
        self.count(names.SPOOL_FRAMES_COMMITTED, frames)
        self.count(names.SPOOL_BYTES_COMMITTED, nbytes)

    def commit_failed(self, frames: int, error: str) -> None:
        """A spool commit raised something other than the disk errors it retries: those frames are lost."""
        self.count(names.SPOOL_COMMIT_FAILURES)
        self.count(names.SPOOL_FRAMES_LOST, frames)
        log.error("spool commit failed (%s): %d frames were NOT committed and are lost", error, frames)

    def backpressure(self, reasons: frozenset[str]) -> None:
        if reasons:
            log.warning(
                "backpressure on (%s): TCP reading paused, senders queue; UDP datagrams are dropped",
                ", ".join(sorted(reasons)),
            )
        else:
            log.info("backpressure off: reading resumed")
        self.count(names.BACKPRESSURE_CHANGES)

    def delivered(self, segments: int) -> None:
        """Retention removed segments every sink had delivered: the spool's job with them is done."""
        self.count(names.SPOOL_SEGMENTS_DELIVERED, segments)

    def discarded(self, reason: SpoolDiscard, frames: int, segments: int, delivered: bool) -> None:
        self.count(names.SPOOL_FRAMES_DISCARDED, frames, reason=reason)
        level = logging.INFO if delivered else logging.ERROR
        what = "delivered" if delivered else "NOT delivered to every sink"
        log.log(level, "spool retention (%s): removed %d segments, %d frames, %s", reason, segments, frames, what)

    def delivery_restarted_over_memory(self, why: str) -> None:
        """The delivery process and its workers held more than [limits] delivery_memory_limit_bytes."""
        log.error("%s", why)
        self.count(names.DELIVERY_MEMORY_RESTARTS)

    def quarantined(self, seq: int, reason: str, where: str) -> None:
        self.count(names.SPOOL_SEGMENTS_QUARANTINED)
        log.error("spool segment %d is damaged (%s): moved to %s; start-up goes on", seq, reason, where)
