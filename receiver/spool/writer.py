"""Group commit into the spool, from the reactor, through one writer thread.

Ingest appends entries (frames plus envelope) to an open segment in memory.
The segment is sealed when it reaches ``segment_max_bytes`` or when its first
entry has waited ``segment_max_delay_ms``, then encoded, compressed and
committed on a single writer thread (lz4, crc32 and SQLite release the GIL,
so the reactor keeps reading meanwhile). Segments commit in the order they
were sealed.

This is group commit proper: while a commit is in flight the open segment
keeps filling, and is sealed as soon as the writer is free. Under load,
segments grow to what arrives during one commit (at most
``_MAX_SEGMENT_FACTOR`` times ``segment_max_bytes``), so the fixed cost of a
commit (a transaction and an fsync) is paid per few MB, not per few hundred
KB; when traffic is light they stay small and prompt. "Committed" is the promise: a commit survives a crash of the
process (``sync = "normal"``) or of the machine (``"full"``).

Memory stays bounded: above ``memory_high_watermark_bytes`` of frames not yet
committed, the gate stops TCP reading until the backlog is under the low
mark. Disk too: in ``backpressure`` mode the gate holds above the high
percentage of ``max_bytes``; in ``drop-oldest`` mode retention removes the
oldest segments instead, counted and logged.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from receiver.config.model import SpoolConfig
from receiver.spool.gate import BackpressureGate
from receiver.spool.segment import Entry, SegmentError, decode_segment, encode_segment, read_summary
from receiver.spool.store import SpoolStore
from receiver.telemetry.events import Telemetry
from receiver.telemetry.names import SpoolDiscard

__all__ = ["SpoolWriter"]

log = logging.getLogger(__name__)

T = TypeVar("T")
RunInThread = Callable[[Callable[[], Any]], "Deferred[Any]"]
"""Runs a function on the writer thread; the Deferred fires in the reactor thread."""

_VERIFY_BATCH = 64
_MAX_SEGMENT_FACTOR = 16
_COMMIT_RETRY_MAX_SECONDS = 5.0
_RETENTION_INTERVAL_SECONDS = 10.0
_RETENTION_STEP_SEGMENTS = 32
"""Segments one retention step removes on the writer thread; commits run between steps.

Removing a segment reads it and deletes its file in a transaction, about a millisecond: after a
flood of a million lines was delivered, one pass removed 584 segments and held the writer (and so
every commit, and the latency of every line read meanwhile) for half a second."""


class SpoolWriter:
    """The write side of the spool, owned by the reactor thread."""

    def __init__(
        self,
        store: SpoolStore,
        config: SpoolConfig,
        *,
        clock: IReactorTime,
        run_in_thread: RunInThread,
        gate: BackpressureGate,
        telemetry: Telemetry,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._run = run_in_thread
        self._gate = gate
        self._telemetry = telemetry
        self._wall_clock_ns = wall_clock_ns
        self._open: list[Entry] = []
        self._open_bytes = 0
        self._open_waiters: list[Callable[[], None]] = []  # to call once the open segment commits
        self._sealed_waiters: list[Callable[[], None]] | None = None  # the newest sealed segment's, until it commits
        self._seal_timer: IDelayedCall | None = None
        self._pending_bytes = 0  # appended, not yet committed
        self._in_flight = 0  # segments sealed and not yet committed
        self._seal_due = False  # the open segment should go as soon as the writer is free
        self._seal_soon = False  # a seal is asked for at the next reactor turn (after_commit soon=True)
        self._last_commit: Deferred[Any] = succeed(None)  # the tail of the commit chain
        self._retention_timer: IDelayedCall | None = None
        self._retaining = False  # a retention pass is under way, a step at a time
        self._closed = False
        self.committed_frames = 0

    # -- ingest side -------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """False while the gate holds: UDP, which cannot be paused, drops instead."""
        return not self._gate.closed

    def append(self, entry: Entry, nbytes: int) -> None:
        """Add one read's frames; committed within the group-commit window."""
        if self._closed:
            raise RuntimeError("spool writer is closed")
        self._open.append(entry)
        self._open_bytes += nbytes
        self._pending_bytes += nbytes
        if self._open_bytes >= self._config.segment_max_bytes:
            self._seal_when_free()
        elif self._seal_timer is None:
            self._seal_timer = self._clock.callLater(self._config.segment_max_delay_ms / 1000.0, self._seal_when_free)
        if self._pending_bytes > self._config.memory_high_watermark_bytes:
            self._gate.hold("memory")

    def after_commit(self, callback: Callable[[], None], *, soon: bool = False) -> None:
        """Call ``callback`` in the reactor once everything appended so far is committed.

        Never called if that commit fails (at shutdown, after its retries):
        it is how RELP acknowledges, and an acknowledgement is a promise.
        Without ``soon`` the callback waits for the group commit that was
        coming anyway. With it, the open segment is sealed once this turn of
        the reactor has read what it can (so concurrent senders still share
        the commit) and the writer is free, rather than after
        ``segment_max_delay_ms``: for a sender that waits for the answer
        before it sends more, that delay is all latency.
        """
        if self._open:
            self._open_waiters.append(callback)
            if soon and not self._seal_soon:
                self._seal_soon = True
                self._clock.callLater(0, self._seal_when_free)
        elif self._sealed_waiters is not None:
            self._sealed_waiters.append(callback)
        else:
            callback()

    def when_committed(self) -> Deferred[None]:
        """Fires once everything appended so far is committed (seals the open segment)."""
        self._seal()
        done: Deferred[None] = Deferred()

        def fire(result: object) -> object:
            done.callback(None)
            return result

        self._last_commit.addBoth(fire)
        return done

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Check the segments already on disk (in steps, between commits) and start retention."""
        self._schedule_retention()
        return self._verify_from(self._store.meta.first_seq)

    def close(self) -> Deferred[None]:
        """Commit what is open, stop timers; the store stays open for the caller to close."""
        done = self.when_committed()
        self._closed = True
        if self._retention_timer is not None and self._retention_timer.active():
            self._retention_timer.cancel()
        return done

    # -- commit chain --------------------------------------------------------

    def _seal_when_free(self) -> None:
        """Seal now if the writer is idle; otherwise let the segment grow until it is."""
        self._seal_soon = False
        if self._in_flight == 0 or self._open_bytes >= self._config.segment_max_bytes * _MAX_SEGMENT_FACTOR:
            self._seal()
        else:
            self._seal_due = True

    def _seal(self) -> None:
        if self._seal_timer is not None:
            if self._seal_timer.active():
                self._seal_timer.cancel()
            self._seal_timer = None
        if not self._open:
            return
        entries, nbytes, waiters = self._open, self._open_bytes, self._open_waiters
        self._open, self._open_bytes, self._open_waiters = [], 0, []
        self._sealed_waiters = waiters
        self._seal_due = False
        self._in_flight += 1
        frames = sum(len(e.frames) for e in entries)
        self._chain(
            lambda: self._commit(entries),
            lambda result: self._committed(result, nbytes, waiters),
            lambda failure: self._not_committed(failure, frames, nbytes, waiters),
        )

    def _chain(
        self, work: Callable[[], T], then: Callable[[T], None], failed: Callable[[Failure], None] | None = None
    ) -> None:
        """Run ``work`` on the writer thread after everything before it; ``then`` in the reactor.

        If ``work`` raises, ``failed`` gets the failure (else it is logged); either
        way the chain goes on with what comes next.
        """

        def run(_: object) -> Deferred[T]:
            return self._run(work)

        def report(failure: Failure) -> None:
            if failed is not None:
                failed(failure)
            else:
                log.error("spool writer failed: %s", failure.getTraceback())

        d = self._last_commit.addCallback(run)
        d.addCallbacks(then, report)
        d.addErrback(lambda failure: log.error("spool writer failed: %s", failure.getTraceback()))
        self._last_commit = d

    def _commit(self, entries: list[Entry]) -> tuple[int, int, int]:
        """Writer thread: encode, compress, commit. Returns (seq, frames, stored bytes).

        A failing commit (disk full, I/O error) is retried here, in order,
        until it succeeds or the writer closes: meanwhile the backlog grows
        past the memory watermark and senders are paused, nothing is dropped.
        """
        blob = encode_segment(entries)
        summary = read_summary(blob)
        delay = 0.1
        while True:
            try:
                seq = self._store.append(blob, summary)
                return seq, summary.frames, len(blob)
            except (sqlite3.Error, OSError) as e:
                if self._closed and delay >= _COMMIT_RETRY_MAX_SECONDS:
                    raise  # at shutdown, after the retries: _not_committed counts and reports the loss
                log.error("spool commit failed (%s); retrying in %.1f s, senders are paused meanwhile", e, delay)
                time.sleep(delay)
                delay = min(delay * 2, _COMMIT_RETRY_MAX_SECONDS)

    def _committed(self, result: tuple[int, int, int], nbytes: int, waiters: list[Callable[[], None]]) -> None:
        _, frames, stored = result
        self._segment_done(nbytes, waiters)
        for callback in waiters:
            try:
                callback()
            except Exception:
                log.exception("a commit callback failed")
        self.committed_frames += frames
        self._telemetry.committed(frames, stored)
        self._after_segment()

    def _not_committed(self, failure: Failure, frames: int, nbytes: int, waiters: list[Callable[[], None]]) -> None:
        """A commit that raised (a bug, or the disk at shutdown): its frames are lost, the books stay right.

        Its ``after_commit`` callbacks are never called: an acknowledgement is
        a promise of storage, so RELP senders resend those messages.
        """
        self._segment_done(nbytes, waiters)
        self._telemetry.commit_failed(frames, failure.getErrorMessage())
        log.debug("the failed commit: %s", failure.getTraceback())
        self._after_segment()

    def _segment_done(self, nbytes: int, waiters: list[Callable[[], None]]) -> None:
        """A sealed segment has left the writer, committed or not."""
        self._in_flight -= 1
        self._pending_bytes -= nbytes
        if waiters is self._sealed_waiters:
            self._sealed_waiters = None  # the newest sealed segment is done: later waiters need not wait

    def _after_segment(self) -> None:
        if self._seal_due and self._in_flight == 0:
            self._seal()
        if self._pending_bytes <= self._config.memory_low_watermark_bytes:
            self._gate.release("memory")
        self._check_disk()

    # -- disk limits and retention -------------------------------------------

    def _check_disk(self) -> None:
        config = self._config
        if config.when_full != "backpressure":
            return
        used = self._store.meta.stored_bytes
        if used >= config.max_bytes * config.high_watermark_percent / 100:
            self._gate.hold("disk")
        elif used < config.max_bytes * config.low_watermark_percent / 100:
            self._gate.release("disk")

    def _schedule_retention(self) -> None:
        self._retention_timer = self._clock.callLater(_RETENTION_INTERVAL_SECONDS, self._retention_tick)

    def _retention_tick(self) -> None:
        if self._closed:
            return
        if not self._retaining:  # else the pass under way goes on until it is done
            self._retention_step()
        self._schedule_retention()

    def _retention_step(self) -> None:
        if self._closed:  # a step asked for before close: the store is the caller's to close now
            self._retaining = False
            return
        self._retaining = True
        self._chain(self._apply_retention, self._retained, self._retention_failed)

    def _retention_failed(self, failure: Failure) -> None:
        self._retaining = False  # the next tick tries again
        log.error("spool retention failed: %s", failure.getTraceback())

    def _apply_retention(self) -> tuple[list[tuple[str, int, int, bool]], bool]:
        """Writer thread: remove segments delivered, past their age, or the oldest when over size, at most
        :data:`_RETENTION_STEP_SEGMENTS` of them. Returns what went, and whether more may go."""
        store, config = self._store, self._config
        oldest_allowed = self._wall_clock_ns() - int(config.max_age_hours * 3600 * 1e9)
        cursors = store.cursors()
        removed: dict[tuple[str, bool], list[int]] = {}
        more = False
        while store.meta.first_seq < store.meta.next_seq:
            if sum(segments for segments, _ in removed.values()) == _RETENTION_STEP_SEGMENTS:
                more = True
                break
            seq = store.meta.first_seq
            blob = store.get(seq)
            if blob is None:
                break
            try:
                summary = read_summary(blob)
            except SegmentError:
                break  # verification quarantines it
            delivered = bool(cursors) and all(c >= seq for c in cursors.values())
            if delivered:
                reason = "delivered"  # every sink has it: the spool's job is done
            elif summary.last_receive_time_ns < oldest_allowed:
                reason = "age"
            elif config.when_full == "drop-oldest" and store.meta.stored_bytes > config.max_bytes:
                reason = "size"
            else:
                break
            store.delete_oldest(delivered=delivered)
            tally = removed.setdefault((reason, delivered), [0, 0])
            tally[0] += 1
            tally[1] += summary.frames
        went = [(reason, segments, frames, delivered) for (reason, delivered), (segments, frames) in removed.items()]
        return went, more

    def _retained(self, result: tuple[list[tuple[str, int, int, bool]], bool]) -> None:
        removed, more = result
        try:
            for reason, segments, frames, delivered in removed:
                if reason == "delivered":
                    self._telemetry.delivered(segments)
                else:
                    self._telemetry.discarded(SpoolDiscard(reason), frames, segments, delivered)
            self._check_disk()
        finally:  # whatever the counting did, the pass goes on or ends: never stuck "under way"
            if more and not self._closed:
                # The next step after the commits sealed meanwhile (the reactor's next turn chains it).
                self._clock.callLater(0, self._retention_step)
            else:
                self._retaining = False

    # -- verification of what was there at start ------------------------------

    def _verify_from(self, start: int) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        end = self._store.meta.next_seq

        def step(seq: int) -> None:
            if seq >= end or self._closed:
                done.callback(None)
                return

            def checked(quarantined: list[tuple[int, str, str]]) -> None:
                for bad_seq, reason, where in quarantined:
                    self._telemetry.quarantined(bad_seq, reason, where)
                step(seq + _VERIFY_BATCH)

            self._chain(lambda: self._verify(seq, min(end, seq + _VERIFY_BATCH)), checked)

        step(start)
        return done

    def _verify(self, start: int, stop: int) -> list[tuple[int, str, str]]:
        """Writer thread: quarantine damaged segments in [start, stop); says which."""
        quarantined = []
        for seq in range(start, stop):
            blob = self._store.get(seq)
            if blob is None:
                continue
            try:
                decode_segment(blob)
            except SegmentError as e:
                quarantined.append((seq, str(e), str(self._store.quarantine(seq, str(e)))))
        return quarantined
