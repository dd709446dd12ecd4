"""One sink's delivery loop: segments past its cursor, to the upstream, cursor forward.

Each sink has its own worker (a thread in the delivery process) and its own
cursor in the spool, so a slow or dead upstream never holds back another
sink. The loop:

1. read the segments after the cursor (a bounded batch of them);
2. turn them into groups (:func:`receiver.deliver.batches.build_groups`);
3. send each group until the upstream's answer settles it: accepted; rejected
   for good (written to the dead-letter area, inspectable and replayable);
   or, for any transient answer, retried with backoff and jitter, honouring
   Retry-After, for as long as it takes (the spool absorbs meanwhile);
4. move the cursor past the batch: only now may retention treat those
   segments as delivered.

Before step 3 the batches about to be sent (one, or several merged) are
recorded in the spool, and a crash inside step 3 resends exactly those
segments after restart, merged as they were, with the same ``__pack_id__``s
(grouping is deterministic) naming the same records, so the upstream can drop
what it already has; nothing accepted is sent again otherwise.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from receiver.deliver.batches import Group
from receiver.deliver.building import Built, Segments
from receiver.deliver.dead_letters import DamagedDeadLetterError, DeadLetters
from receiver.deliver.outcomes import OutcomeKind, SendOutcome, Sink
from receiver.deliver.stats import Histogram
from receiver.spool.segment import SegmentError, read_summary
from receiver.spool.store import SpoolStore
from receiver.telemetry.throttle import LogThrottle

__all__ = ["RAW_BYTES_PER_SEGMENT", "SEGMENTS_PER_BATCH", "SinkWorker", "WorkerStats", "full_jitter_backoff"]

log = logging.getLogger("receiver.deliver")

_REPLAY_CHECK_SECONDS = 1.0
_SUCCESSES_PER_STEP = 8
SEGMENTS_PER_BATCH = 8
"""How many spool segments a batch reads, unless the sink or ``[deliver]`` says otherwise."""
RAW_BYTES_PER_SEGMENT = 512 * 1024
"""Segment body bytes (uncompressed: frames and envelopes) a batch reads at most, per segment it may
read: the default ``segment_max_bytes``. Under a flood group commit makes segments of up to 16 times
that, so a count of segments alone would let a batch's lines, and the memory that builds them, grow
with the rate; this keeps a batch of 16 segments near 8 MiB of log text whatever the rate or how well
the lines compress. Not the configured ``segment_max_bytes``: smaller segments (64 KiB) would make
every batch a few thousand lines, and each of the local store's batches a part of its own."""


@dataclasses.dataclass(slots=True)
class WorkerStats:
    delivered_records: int = 0
    delivered_groups: int = 0
    retried: int = 0
    dead_lettered_records: int = 0
    last_success_ns: int | None = None
    last_error: str | None = None
    backoff_until_ns: int | None = None
    latency: Histogram = dataclasses.field(default_factory=Histogram)
    """Records by receipt-to-acknowledged time."""


@dataclasses.dataclass(slots=True)
class _Pending:
    """A batch read from the spool, being built."""

    first_seq: int
    last_seq: int
    blobs: list[tuple[int, bytes]]
    built: Future[Built]


class SinkWorker:
    """Runs one sink's loop until ``stop`` is set."""

    def __init__(
        self,
        sink: Sink,
        store: SpoolStore,
        *,
        build_batch: Callable[[int, Segments], Future[Built]],
        rebuild: Callable[[int, Segments], Built],
        dead_letters: DeadLetters,
        backoff: Callable[[int, OutcomeKind], float],
        segments_per_batch: int = SEGMENTS_PER_BATCH,
        bytes_per_segment: int = RAW_BYTES_PER_SEGMENT,
        poll_seconds: float = 0.05,
        max_concurrency: int = 1,
        batches_ahead: int = 1,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.sink = sink
        self._store = store
        self._build_batch = build_batch
        self._rebuild = rebuild
        self._batches_ahead = max(1, batches_ahead)
        self._dead_letters = dead_letters
        self._backoff = backoff
        self._segments_per_batch = segments_per_batch
        self._max_batch_bytes = segments_per_batch * bytes_per_segment
        self._poll = poll_seconds
        self._clock_ns = clock_ns
        self.stats = WorkerStats()
        self.damaged_segments = 0
        self.unknown_tags = 0
        self.dropped = 0
        """Records routes with ``drop = true`` took (every sink's worker counts the same ones)."""
        self.damaged_dead_letters = 0
        """Replay files that were not dead letters, moved to ``<sink>/damaged/``."""
        self.filter_errors = 0
        """Records a route's filter failed on (every sink's worker counts the same ones)."""
        self._log_throttle = LogThrottle(time.monotonic)  # every failing record is counted; logged once a minute
        self._replays_due = 0.0
        self._replayed: set[Path] = set()  # replayed files that could not be removed: never sent twice
        self._carried: tuple[int, bytes] | None = None  # a segment read that the next batch starts with
        self._merge: Callable[[Sequence[Group]], Group | None] | None = getattr(sink, "merge", None)
        """A sink's merge of one stream's groups into one request (SLS, HTTP), when it has one."""
        self.max_concurrency = max(1, max_concurrency)
        self.concurrency = self.max_concurrency
        """Requests in flight now: halved on quota answers, raised by one after a run of successes."""
        self._successes = 0
        self._lock = threading.Lock()
        self._slots = threading.Condition()  # requests on the wire, at most ``concurrency``
        self._sending = 0
        self._pool = (
            ThreadPoolExecutor(self.max_concurrency, thread_name_prefix=f"send-{sink.name}")
            if self.max_concurrency > 1 else None
        )

    def run(self, stop: threading.Event) -> None:
        """The loop; returns when ``stop`` is set (between sends, never mid-request).

        Up to ``batches_ahead`` batches are being built (on a thread, or in
        worker processes) while the oldest is sent: parsing and encoding
        overlap the upstream's round trips, and with worker processes they use
        the other cores. Batches are sent, and the cursor moved, in order.
        """
        name = self.sink.name
        read_to = self._store.cursor(name)
        # What was being sent when the receiver stopped: those batches again, segment for segment and
        # merged as they were, so each pack id names the records it named then.
        recorded = collections.deque(self._recorded_in_flight(read_to))
        merge_exactly = len(recorded)
        log.info("%s: delivering from segment %d%s", name, read_to + 1,
                 f" (again the {merge_exactly} batch(es) in flight)" if recorded else "")
        pending: collections.deque[_Pending] = collections.deque()
        while not stop.is_set():
            self._replay_dead_letters(stop)
            while recorded or len(pending) < self._batches_ahead:  # (every recorded batch, to merge them)
                segments = self._read_recorded(*recorded.popleft()) if recorded else self._read(read_to)
                if segments is None:
                    break
                first_seq, last_seq, blobs = segments
                pending.append(_Pending(first_seq, last_seq, blobs, self._build_batch(first_seq, blobs)))
                read_to = last_seq
            if not pending:
                stop.wait(self._poll)
                continue
            batch = pending.popleft()
            built = batch.built.result()
            self._note(built)
            recover: Callable[[Group], Sequence[Group]] = functools.partial(self._records_of, batch)
            groups = built.groups
            ready = [(batch, built)]
            if self._merge is not None:
                # Batches built while the oldest was: their groups of a stream go as one request.
                while pending and (len(ready) < merge_exactly or (not merge_exactly and pending[0].built.done())):
                    batch = pending.popleft()
                    built = batch.built.result()
                    self._note(built)
                    ready.append((batch, built))
                if len(ready) > 1:
                    groups, recover = self._merged(ready, self._merge)
            merge_exactly = 0
            in_flight = [(sent.first_seq, sent.last_seq) for sent, _ in ready]
            if not self._persist(
                "record the batches in flight", functools.partial(self._store.set_in_flight, name, in_flight), stop
            ):
                break
            deliver = self._deliver_batch if hasattr(self.sink, "send_batch") else self._deliver_all
            if not deliver(groups, stop, recover):
                break  # stopping: the cursor stays, the batches in flight are resent with the same pack ids
            if not self._persist("save the cursor", functools.partial(self._store.set_cursor, name, batch.last_seq), stop):
                break  # stopping before the cursor could be written: as above
        for batch in pending:
            batch.built.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _persist(self, what: str, write: Callable[[], None], stop: threading.Event) -> bool:
        """Write delivery's progress to the spool (the cursor, the batches in flight); retried while the
        spool's disk is full. False when stopping first.

        Moving on without it would be worse than waiting: without the cursor the batches after it
        would be sent, and all of them again after a restart; without the batches in flight a restart
        could send other records under pack ids the upstream has seen.
        """
        delay = 0.1
        failures = 0
        while not stop.is_set():
            try:
                write()
                if failures:
                    log.info("%s: could %s again after %d failures", self.sink.name, what, failures)
                return True
            except (sqlite3.Error, OSError) as e:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.error("%s: cannot %s (%s; is the spool's disk full?); delivery waits and "
                              "retries (%d failures)", self.sink.name, what, e, failures)
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
        return False

    def _recorded_in_flight(self, cursor: int) -> list[tuple[int, int]]:
        """The batches in flight the spool recorded for this sink, if they still follow ``cursor`` (one
        after the other); none otherwise."""
        batches = self._store.in_flight(self.sink.name)
        if not batches or batches[0][0] <= cursor or any(
            later[0] != earlier[1] + 1 for earlier, later in itertools.pairwise(batches)
        ):
            return []
        return batches

    def snapshot(self) -> dict[str, object]:
        """This sink's counters and state, for the stats file (receiver/deliver/stats.py)."""
        with self._lock:
            stats = self.stats
            return {
                "delivered_records": stats.delivered_records, "delivered_groups": stats.delivered_groups,
                "retried": stats.retried, "dead_lettered_records": stats.dead_lettered_records,
                "last_success_ns": stats.last_success_ns, "last_error": stats.last_error,
                "backoff_until_ns": stats.backoff_until_ns, "latency": stats.latency.to_dict(),
                "concurrency": self.concurrency, "max_concurrency": self.max_concurrency,
                "damaged_segments": self.damaged_segments, "unknown_tags": self.unknown_tags,
                "dropped": self.dropped, "damaged_dead_letters": self.damaged_dead_letters,
                "filter_errors": self.filter_errors,
            }

    def _note(self, built: Built) -> None:
        self.unknown_tags += built.unknown_tags
        self.dropped += built.dropped
        if built.filter_errors:
            self.filter_errors += built.filter_errors
            failed = self._log_throttle.due("filter-errors", built.filter_errors)
            if failed:
                log.error(
                    "%s: a route's filter failed on %d records (%s); they went to the default sink instead, "
                    "never to another route", self.sink.name, failed, built.last_filter_error,
                )
        for seq, why in built.damaged:
            self.damaged_segments += 1
            log.error("%s: segment %d is damaged (%s); skipped, the daemon quarantines it", self.sink.name, seq, why)

    def _records_of(self, batch: _Pending, group: Group) -> list[Group]:
        """``group`` with its records: as it is, or built again in this process when it came encoded
        from a worker."""
        if group.payload is None:
            return [group]
        for candidate in self._rebuild(batch.first_seq, batch.blobs).groups:
            if candidate.pack_id == group.pack_id:
                return [candidate]
        raise LookupError(f"group {group.pack_id} is not in segments {batch.first_seq}..{batch.last_seq}")

    def _merged(
        self, ready: Sequence[tuple[_Pending, Built]], merge: Callable[[Sequence[Group]], Group | None]
    ) -> tuple[list[Group], Callable[[Group], Sequence[Group]]]:
        """The groups of consecutive built batches, each stream's merged into as few requests as the
        sink's bounds allow (``max_records``, ``max_bytes``), in order; and how to get any of them back
        as groups with records (a merged one as its parts', for dead letters).

        A batch's group per stream is what one request carries, so a fleet of many hosts, each a
        stream, makes many small requests a batch: thousands of hosts made 52 requests a thousand
        lines, and the sending, not the building, bounded delivery. Merging only what is built
        already adds no wait.
        """
        runs: dict[tuple[str, str, str], tuple[list[tuple[Group, _Pending]], list[int]]] = {}
        order: list[list[tuple[Group, _Pending]]] = []
        max_records, max_bytes = self.sink.max_records, self.sink.max_bytes
        for batch, built in ready:
            for group in built.groups:
                stream = (group.client_ip, group.source, group.destination)
                run, size = runs.get(stream, (None, [0, 0]))  # size: records, frame bytes
                if run is None or size[0] + group.count > max_records or size[1] + group.raw_bytes > max_bytes:
                    run, size = [], [0, 0]
                    runs[stream] = run, size
                    order.append(run)
                run.append((group, batch))
                size[0] += group.count
                size[1] += group.raw_bytes
        groups: list[Group] = []
        parts: dict[str, list[tuple[Group, _Pending]]] = {}
        for run in order:
            merged = merge([g for g, _ in run]) if len(run) > 1 else None
            if merged is None:  # one group, or groups the sink cannot merge: each as it is
                for group, batch in run:
                    groups.append(group)
                    parts[group.pack_id] = [(group, batch)]
            else:
                groups.append(merged)
                parts[merged.pack_id] = run

        def recover(group: Group) -> list[Group]:
            return [whole for part, batch in parts[group.pack_id] for whole in self._records_of(batch, part)]

        return groups, recover

    def _deliver_all(
        self, groups: Sequence[Group], stop: threading.Event, recover: Callable[[Group], Sequence[Group]] | None = None
    ) -> bool:
        """Send every group until settled, up to ``concurrency`` at once; False when stopping first.

        Groups of one stream (a sender's records of one source to one destination) are never in
        flight together, so each stream's records reach the upstream in the order they arrived;
        a relay's sources go side by side.
        """
        if self._pool is None:
            return all(self._deliver(group, stop, recover) for group in groups)
        pending = list(groups)
        in_flight: dict[Future[bool], tuple[str, str, str]] = {}
        settled = True
        while pending or in_flight:
            busy = set(in_flight.values())
            i = 0
            while settled and i < len(pending) and len(in_flight) < self.concurrency:
                group = pending[i]
                stream = (group.client_ip, group.source, group.destination)
                if stream in busy:
                    i += 1
                    continue
                del pending[i]
                busy.add(stream)
                in_flight[self._pool.submit(self._deliver, group, stop, recover)] = stream
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                del in_flight[future]
                settled = future.result() and settled
        return settled and not pending

    def _replay_dead_letters(self, stop: threading.Event) -> None:
        """Send the dead letters an operator asked to replay (``receiverctl spool replay``)."""
        now = time.monotonic()
        if now < self._replays_due:
            return
        self._replays_due = now + _REPLAY_CHECK_SECONDS
        for path in self._dead_letters.replays(self.sink.name):
            if path in self._replayed:
                continue
            try:
                group = self._dead_letters.load(path)
            except DamagedDeadLetterError as e:
                self._set_aside(path, str(e))
                continue
            except OSError as e:
                log.error("%s: cannot replay %s: %s; left where it is", self.sink.name, path, e)
                self._replayed.add(path)  # tried again by the next delivery process, not every second
                continue
            log.info("%s: replaying %d records of %s", self.sink.name, group.count, group.pack_id)
            if not self._deliver(group, stop):
                return  # stopping: the file stays queued
            try:
                path.unlink(missing_ok=True)  # accepted, or kept again as a new dead letter
            except OSError as e:
                # Never send it again: remember it for this process, and say how to clear it.
                self._replayed.add(path)
                log.error("%s: replayed %s but cannot remove it (%s); remove it by hand (it was sent)",
                          self.sink.name, path, e)

    def _set_aside(self, path: Path, why: str) -> None:
        """A replay file that is not a dead letter: moved out of the way, counted, and the others go on."""
        with self._lock:
            self.damaged_dead_letters += 1
        try:
            where = self._dead_letters.set_aside(path, why)
        except OSError as e:
            self._replayed.add(path)
            log.error("%s: %s is not a dead letter (%s) and cannot be moved aside (%s); skipped",
                      self.sink.name, path, why, e)
            return
        log.error("%s: %s is not a dead letter (%s); moved to %s, nothing of it was sent",
                  self.sink.name, path, why, where)

    def _send(
        self, what: Any, stop: threading.Event, send: Callable[[Any], SendOutcome] | None = None
    ) -> SendOutcome | None:
        """One request (``send(what)``, the sink's ``send`` by default), once fewer than ``concurrency``
        are on the wire; None when stopping first.

        Every attempt takes a slot, retries included: lowering ``concurrency``
        on a quota answer then holds back the groups already retrying too,
        not only the ones not yet started.
        """
        with self._slots:
            while self._sending >= self.concurrency:
                if stop.is_set():
                    return None
                self._slots.wait(0.5)
            self._sending += 1
        try:
            return (send or self.sink.send)(what)
        finally:
            with self._slots:
                self._sending -= 1
                self._slots.notify()

    def _adapt(self, kind: OutcomeKind) -> None:
        """Fewer requests in flight while the upstream says we send too much; more again as it recovers."""
        if self._pool is None:
            return
        with self._lock:
            if kind == "quota":
                self.concurrency = max(1, self.concurrency // 2)
                self._successes = 0
            elif kind == "ok":
                self._successes += 1
                if self._successes >= _SUCCESSES_PER_STEP and self.concurrency < self.max_concurrency:
                    self.concurrency += 1
                    self._successes = 0

    def _read_recorded(self, first: int, last: int) -> tuple[int, int, list[tuple[int, bytes]]]:
        """Segments ``first`` to ``last`` as stored, as :meth:`_read` gives them: a batch that was in flight."""
        self._carried = None  # (a segment read for a batch read anew)
        blobs = [(seq, blob) for seq in range(first, last + 1) if (blob := self._store.get(seq)) is not None]
        return first, last, blobs

    def _read(self, after: int) -> tuple[int, int, list[tuple[int, bytes]]] | None:
        """The next segments after ``after``, as stored: (first, last, [(seq, bytes)]); None when there are none.

        At most ``segments_per_batch`` segments and, but for the first, no more body bytes than
        ``segments_per_batch`` times ``bytes_per_segment`` (:data:`RAW_BYTES_PER_SEGMENT`): a
        segment that would go over is kept for the next batch (read once).
        """
        store = self._store
        meta = store.refresh()
        start = max(after + 1, meta.first_seq)
        stop = min(meta.next_seq, start + self._segments_per_batch)
        if start >= stop:
            return None
        limit = self._max_batch_bytes
        blobs: list[tuple[int, bytes]] = []
        last = start - 1
        size = 0
        for seq in range(start, stop):
            carried, self._carried = self._carried, None
            blob = carried[1] if carried is not None and carried[0] == seq else store.get(seq)
            if blob is not None:  # None: quarantined or removed by retention meanwhile
                body = _body_bytes(blob)
                if blobs and size + body > limit:
                    self._carried = (seq, blob)
                    break
                blobs.append((seq, blob))
                size += body
            last = seq
        return start, last, blobs

    def _deliver(
        self, group: Group, stop: threading.Event, recover: Callable[[Group], Sequence[Group]] | None = None
    ) -> bool:
        """Send until settled; False when asked to stop first."""
        return self._settle([group], lambda: self._send(group, stop), stop, recover)

    def _deliver_batch(
        self, groups: Sequence[Group], stop: threading.Event, recover: Callable[[Group], Sequence[Group]] | None
    ) -> bool:
        """A batch's groups in one request, for a sink that takes them so (``send_batch``: the embedded
        store inserts a batch as one part); settled as one, dead-lettered group by group."""
        if not groups:
            return True
        send_batch = self.sink.send_batch  # type: ignore[attr-defined]
        return self._settle(groups, lambda: self._send(groups, stop, send=send_batch), stop, recover)

    def _delivered(self, groups: Sequence[Group]) -> None:
        """Count ``groups`` as accepted by the upstream."""
        if not groups:
            return
        stats = self.stats
        with self._lock:
            now = self._clock_ns()
            stats.delivered_records += sum(group.count for group in groups)
            stats.delivered_groups += len(groups)
            stats.last_success_ns = now
            stats.backoff_until_ns = None
            for group in groups:
                if group.receive_time_ns:
                    stats.latency.observe((now - group.receive_time_ns) / 1e9, group.count)

    def _settle(
        self,
        groups: Sequence[Group],
        send: Callable[[], SendOutcome | None],
        stop: threading.Event,
        recover: Callable[[Group], Sequence[Group]] | None,
    ) -> bool:
        """Send ``groups`` (one request) until the upstream's answer settles them; False when stopping first."""
        attempt = 0
        stats = self.stats
        while not stop.is_set():
            outcome = send()
            if outcome is None:
                break
            self._adapt(outcome.kind)
            if outcome.kind == "ok":
                self._delivered(groups)
                return True
            if outcome.kind == "permanent":
                # A batch's groups the upstream stored before it refused the rest are delivered: kept
                # as dead letters too, a replay would store them twice.
                refused = [group for group in groups if group.pack_id not in outcome.stored]
                try:
                    places = [
                        self._dead_letters.keep(self.sink.name, whole, outcome.reason)
                        for group in refused
                        for whole in (recover(group) if recover is not None else [group])
                    ]
                except (OSError, LookupError) as e:
                    # Never drop what cannot be kept: the groups stay in the spool and are retried.
                    outcome = SendOutcome("retry", f"{outcome.reason}; and keeping it as a dead letter failed: {e}")
                else:
                    self._delivered([group for group in groups if group.pack_id in outcome.stored])
                    rejected = sum(group.count for group in refused)
                    with self._lock:
                        stats.dead_lettered_records += rejected
                        stats.last_error = outcome.reason
                    if places:
                        log.error(
                            "%s: the upstream rejected %d records for good (%s); kept in %s for inspection and replay",
                            self.sink.name, rejected, outcome.reason,
                            places[0] if len(places) == 1 else f"{len(places)} files in {places[0].parent}",
                        )
                    return True
            attempt += 1
            delay = self._backoff(attempt, outcome.kind)
            if outcome.retry_after_seconds is not None:
                delay = max(delay, outcome.retry_after_seconds)
            with self._lock:
                stats.retried += 1
                stats.last_error = outcome.reason
                stats.backoff_until_ns = self._clock_ns() + int(delay * 1e9)
            level = logging.WARNING if attempt in (1, 10) or attempt % 1000 == 0 else logging.DEBUG
            log.log(
                level, "%s: %s (%s); retry %d in %.1f s, the spool keeps everything meanwhile",
                self.sink.name, outcome.kind, outcome.reason, attempt, delay,
            )
            stop.wait(delay)
        return False


def full_jitter_backoff(rng: random.Random | None = None) -> Callable[[int, OutcomeKind], float]:
    """Exponential backoff with full jitter (0.5 s doubling to 30 s); quota answers start at 3 s, up to 60 s."""
    rng = rng or random.Random()

    def delay(attempt: int, kind: OutcomeKind) -> float:
        if kind == "quota":
            return min(60.0, 3.0 * 2 ** (attempt - 1)) + rng.uniform(0, 4)
        if kind == "clock-skew" and attempt == 1:
            return 0.0  # the sink corrected its clock offset: at once
        return rng.uniform(0, min(30.0, 0.5 * 2 ** (attempt - 1)))

    return delay


def _body_bytes(blob: bytes) -> int:
    """A stored segment's body bytes from its header; its stored size when it has none (damaged:
    building quarantines it)."""
    try:
        return read_summary(blob).raw_bytes
    except SegmentError:
        return len(blob)
