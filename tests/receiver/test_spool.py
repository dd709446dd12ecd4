"""The spool: segment codec, store, group-commit writer, backpressure gate."""

from __future__ import annotations

import contextlib
import pickle
import random
import sqlite3
from pathlib import Path
from typing import Any

import diskcache
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.framing import FlaggedFrame
from receiver.spool import SpoolReader
from receiver.spool import writer as writer_module
from receiver.spool.gate import BackpressureGate
from receiver.spool.segment import Entry, SegmentError, decode_segment, encode_segment, read_summary
from receiver.spool.store import RefusedValueError, SpoolDamagedError, SpoolStore
from tests.support.spool import NOW_NS, Harness, entry

NOISE = random.Random(1)  # incompressible frames, so stored bytes are predictable


class TestSegment:
    def test_round_trip(self) -> None:
        """If entries with flags, IPv6 peers and UTF-8 names are encoded, then decoding gives them back."""
        entries = [
            Entry(1, "2001:db8::1", 514, "tcp-é", "tcp", [b"a", FlaggedFrame(b"bb", ("truncated:70000",)), b"c"],
                  {1: ("truncated:70000",)}),
            Entry(2, "10.0.0.2", 0, "udp", "udp", [b"\x00\xff" * 100]),
        ]
        decoded = decode_segment(encode_segment(entries))
        assert decoded[0].frames == [b"a", b"bb", b"c"]
        assert decoded[0].frame_flags == {1: ("truncated:70000",)}
        assert (decoded[0].peer, decoded[0].listener, decoded[0].transport) == ("2001:db8::1", "tcp-é", "tcp")
        assert decoded[1] == Entry(2, "10.0.0.2", 0, "udp", "udp", [b"\x00\xff" * 100])

    def test_summary_without_decompressing(self) -> None:
        """If a segment is written, then its header tells frames, entries and time range."""
        blob = encode_segment([entry([b"x"] * 3, at=5), entry([b"y"], at=9)])
        summary = read_summary(blob)
        assert (summary.frames, summary.entries, summary.first_receive_time_ns, summary.last_receive_time_ns) == (4, 2, 5, 9)

    @pytest.mark.parametrize("position", [0, 4, 9, 30, -1])
    def test_damage_is_detected(self, position: int) -> None:
        """If any byte of a segment changes, then decoding refuses it."""
        blob = bytearray(encode_segment([entry([b"hello world"] * 10)]))
        blob[position] ^= 0x40
        with pytest.raises(SegmentError):
            decode_segment(bytes(blob))

    @settings(max_examples=200, deadline=None)
    @given(
        frames=st.lists(st.lists(st.binary(max_size=300), max_size=20), min_size=1, max_size=5),
        times=st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=5, max_size=5),
    )
    def test_round_trip_property(self, frames: list[list[bytes]], times: list[int]) -> None:
        """If any frames are encoded, then they decode to the same bytes in the same order."""
        entries = [Entry(t, "::1", 1, "l", "udp", f) for t, f in zip(times, frames, strict=False)]
        assert [e.frames for e in decode_segment(encode_segment(entries))] == frames
        in_place = decode_segment(encode_segment(entries), in_place=True)
        assert [list(e.frames) for e in in_place] == frames
        for got, want in zip(in_place, frames, strict=True):
            assert len(got.frames) == len(want)
            assert [got.frames[i] for i in range(-len(want), len(want))] == want + want
            assert got.frames[1:3] == want[1:3]
            with pytest.raises(IndexError):
                got.frames[len(want)]

    @settings(max_examples=300, deadline=None)
    @given(garbage=st.binary(max_size=200))
    def test_garbage_never_crashes(self, garbage: bytes) -> None:
        """If arbitrary bytes are decoded, then only SegmentError can come out."""
        for blob in (garbage, b"RSG1" + garbage):
            for in_place in (False, True):
                with contextlib.suppress(SegmentError):
                    decode_segment(blob, in_place=in_place)


class TestStore:
    def test_a_failed_commit_leaves_the_counters_as_they_were(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If a commit fails (a full disk), then the counters and the next sequence number are those of
        before it, in memory and after a reopen: the segment that was not stored is not counted."""
        store = SpoolStore(tmp_path / "spool")
        blob = encode_segment([entry([b"f"] * 3)])
        store.append(blob, read_summary(blob))
        real_set = store._cache.set
        failures = iter([True])

        def failing_set(key: object, value: object, *args: object, **kwargs: object) -> bool:
            if key == "meta" and next(failures, False):
                raise sqlite3.OperationalError("database or disk is full")
            return bool(real_set(key, value, *args, **kwargs))

        monkeypatch.setattr(store._cache, "set", failing_set)
        with pytest.raises(sqlite3.OperationalError):
            store.append(blob, read_summary(blob))
        assert (store.meta.next_seq, store.meta.segments, store.meta.frames) == (2, 1, 3)
        assert store.append(blob, read_summary(blob)) == 2  # the retry takes the same number
        store.close()
        meta = SpoolStore(tmp_path / "spool").meta
        assert (meta.next_seq, meta.segments, meta.frames, meta.frames_written) == (3, 2, 6, 6)

    def test_append_and_reopen(self, tmp_path: Path) -> None:
        """If segments are committed and the store reopened, then they and the counters are there."""
        store = SpoolStore(tmp_path / "spool")
        for i in range(3):
            blob = encode_segment([entry([b"f"] * (i + 1), at=100 + i)])
            assert store.append(blob, read_summary(blob)) == i + 1
        store.close()
        again = SpoolStore(tmp_path / "spool")
        meta = again.meta
        assert (meta.first_seq, meta.next_seq, meta.segments, meta.frames) == (1, 4, 3, 6)
        assert (meta.oldest_receive_time_ns, meta.newest_receive_time_ns) == (100, 102)
        assert list(again.sequence_numbers()) == [1, 2, 3]

    def test_delete_oldest_counts_undelivered(self, tmp_path: Path) -> None:
        """If the oldest segment is removed undelivered, then it is counted as discarded."""
        store = SpoolStore(tmp_path / "spool")
        for at in (10, 20):
            blob = encode_segment([entry([b"f", b"g"], at=at)])
            store.append(blob, read_summary(blob))
        store.delete_oldest(delivered=False)
        assert (store.meta.first_seq, store.meta.frames, store.meta.discarded_frames) == (2, 2, 2)
        assert (store.meta.segments, store.meta.oldest_receive_time_ns) == (1, 20)
        store.delete_oldest(delivered=True)
        assert (store.meta.frames, store.meta.discarded_frames, store.meta.stored_bytes) == (0, 2, 0)
        assert (store.meta.segments, store.meta.oldest_receive_time_ns, store.meta.newest_receive_time_ns) == (0, None, None)

    def test_cursors(self, tmp_path: Path) -> None:
        """If sinks record cursors, then they persist per sink."""
        store = SpoolStore(tmp_path / "spool")
        store.set_cursor("sls", 7)
        store.set_cursor("local", 3)
        assert store.cursor("sls") == 7
        assert store.cursor("nobody") == 0
        assert store.cursors() == {"sls": 7, "local": 3}

    def test_batches_in_flight_are_kept_until_the_cursor_passes_them(self, tmp_path: Path) -> None:
        """If a sink records the batches it is sending, then they are read back (by another reader too)
        until its cursor passes the last; forgetting the sink forgets them; a damaged record reads as none."""
        store = SpoolStore(tmp_path)
        store.set_cursor("sls", 4)
        store.set_in_flight("sls", [(5, 6), (7, 9)])
        store.set_in_flight("http", [(5, 5)])
        assert SpoolStore(tmp_path, readonly=True).in_flight("sls") == [(5, 6), (7, 9)]
        store.set_cursor("sls", 6)  # not past the last batch yet
        assert store.in_flight("sls") == [(5, 6), (7, 9)]
        store.set_cursor("sls", 9)
        assert store.in_flight("sls") == [] and store.in_flight("http") == [(5, 5)]
        store.delete_cursor("http")
        assert store.in_flight("http") == []
        store._cache.set("in-flight", '{"sls": [[5, 4]], "http": "x"}')
        assert store.in_flight("sls") == [] and store.in_flight("http") == []
        store._cache.set("in-flight", "not json")
        assert store.in_flight("sls") == []

    def test_cursors_are_read_in_one_lookup(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the cursors are read (every status call and metrics scrape), then no key of the spool is
        scanned: the cost does not grow with the backlog."""
        store = SpoolStore(tmp_path / "spool")
        blob = encode_segment([entry([b"f"])])
        for _ in range(50):
            store.append(blob, read_summary(blob))
        store.set_cursor("sls", 7)

        def no_scan(*args: object, **kwargs: object) -> object:
            raise AssertionError("cursors() scanned the spool's keys")

        monkeypatch.setattr(store._cache, "iterkeys", no_scan)
        monkeypatch.setattr(store._cache, "__iter__", no_scan, raising=False)
        assert store.cursors() == {"sls": 7}
        store.delete_cursor("sls")
        assert store.cursors() == {}

    def test_cursors_of_an_older_spool_are_moved_at_open(self, tmp_path: Path) -> None:
        """If a spool kept its cursors one key per sink (older releases), then the daemon's open moves them
        all into one, and retention and readers see every one of them."""
        SpoolStore(tmp_path / "spool").close()
        with diskcache.Cache(str(tmp_path / "spool")) as older:  # as an older release wrote them
            older.delete("cursors")
            older.set("cursor:sls", 7)
            older.set("cursor:local", 3)
        assert SpoolStore(tmp_path / "spool", readonly=True).cursors() == {}  # a reader does not move them
        again = SpoolStore(tmp_path / "spool")
        assert again.cursors() == {"sls": 7, "local": 3}
        assert "cursor:sls" not in again._cache

    def test_damaged_database_is_moved_aside(self, tmp_path: Path) -> None:
        """If the spool database is not a database, then it is moved aside and an empty spool starts."""
        spool = tmp_path / "spool"
        spool.mkdir()
        (spool / "cache.db").write_bytes(b"this is not sqlite" * 1000)
        with pytest.raises(SpoolDamagedError, match="moved to"):
            SpoolStore(spool)
        moved = [p for p in tmp_path.iterdir() if p.name.startswith("spool.damaged-")]
        assert len(moved) == 1 and (moved[0] / "cache.db").exists()
        assert SpoolStore(spool).meta.next_seq == 1

    def test_a_pickled_segment_is_refused_as_damage(self, tmp_path: Path) -> None:
        """If a row of the spool says it holds a pickle (written by anything but the receiver), then
        reading it never unpickles it: the segment reads as damaged and the daemon quarantines it."""
        h = Harness(tmp_path)
        for frame in (b"one", b"two", b"three"):
            h.writer.append(entry([frame]), 3)
            h.clock.advance(0.01)
        h.store.close()
        witness = tmp_path / "unpickled"
        payload = pickle.dumps(_Touch(str(witness)))
        db = sqlite3.connect(tmp_path / "spool" / "cache.db")
        db.execute("UPDATE Cache SET value = ?, mode = 4 WHERE key = 2", (payload,))
        db.commit()
        db.close()
        with SpoolReader(tmp_path / "spool") as reader:
            assert [f for e in reader.entries() for f in e.frames] == [b"one", b"three"]
            assert reader.damaged_seen == 1
        again = Harness(tmp_path)
        again.writer.start()
        assert again.store.meta.quarantined_segments == 1
        assert again.frames() == [b"one", b"three"]
        assert not witness.exists()

    @pytest.mark.parametrize("key", ["meta", "cursors", "spool-id"])
    def test_pickled_bookkeeping_is_never_unpickled(self, tmp_path: Path, key: str) -> None:
        """If the counters, the cursors or the spool's id say they hold a pickle, then no reader and no
        writer unpickles them: the counters are damage (the spool is moved aside), the others are
        read as absent."""
        store = SpoolStore(tmp_path / "spool")
        blob = encode_segment([entry([b"f"])])
        store.append(blob, read_summary(blob))
        store.set_cursor("sls", 1)
        store.spool_id()
        store.close()
        witness = tmp_path / "unpickled"
        db = sqlite3.connect(tmp_path / "spool" / "cache.db")
        changed = db.execute("UPDATE Cache SET value = ?, mode = 4 WHERE key = ?", (pickle.dumps(_Touch(str(witness))), key))
        assert changed.rowcount == 1
        db.commit()
        db.close()
        with contextlib.suppress(RefusedValueError):
            reader = SpoolStore(tmp_path / "spool", readonly=True)
            reader.cursors()
            reader.spool_id()
        with contextlib.suppress(SpoolDamagedError):
            SpoolStore(tmp_path / "spool").spool_id()
        assert not witness.exists()

    def test_a_row_naming_a_file_is_refused(self, tmp_path: Path) -> None:
        """If a row says its value is in a file (diskcache's large values), then the spool does not open
        the file it names: a spool writer could otherwise make root's ``receiverctl spool`` read any file."""
        secret = tmp_path / "secret"
        secret.write_bytes(b"RSG1 not yours")
        store = SpoolStore(tmp_path / "spool")
        blob = encode_segment([entry([b"f"])])
        store.append(blob, read_summary(blob))
        store.close()
        db = sqlite3.connect(tmp_path / "spool" / "cache.db")
        db.execute("UPDATE Cache SET value = NULL, mode = 2, filename = ? WHERE key = 1", (str(secret),))
        db.commit()
        db.close()
        assert SpoolStore(tmp_path / "spool", readonly=True).get(1) == b""

    def test_only_bytes_and_text_are_written(self, tmp_path: Path) -> None:
        """If anything but bytes or str is given to the spool's database, then it refuses to store it."""
        store = SpoolStore(tmp_path / "spool")
        with pytest.raises(TypeError):
            store._cache.set("x", {"a": 1})
        with pytest.raises(TypeError):
            store._cache.set(("tuple", "key"), b"")

    def test_reader_needs_a_spool(self, tmp_path: Path) -> None:
        """If a reader is pointed at a directory without a spool, then it says so and creates nothing."""
        with pytest.raises(FileNotFoundError, match="no spool here"):
            SpoolReader(tmp_path / "nothing")
        assert not (tmp_path / "nothing").exists()


class _Touch:
    """Unpickling this creates a file: the witness that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


class TestWriter:
    def test_commit_after_delay(self, tmp_path: Path) -> None:
        """If frames are appended, then they are committed once the group-commit delay passes, not before."""
        h = Harness(tmp_path, segment_max_delay_ms=5)
        h.writer.append(entry([b"a", b"b"]), 2)
        assert h.store.meta.frames == 0
        h.clock.advance(0.004)
        assert h.store.meta.frames == 0
        h.clock.advance(0.002)
        assert h.frames() == [b"a", b"b"]

    def test_commit_at_size(self, tmp_path: Path) -> None:
        """If the open segment reaches segment_max_bytes, then it is committed at once."""
        h = Harness(tmp_path, segment_max_bytes=4096)
        h.writer.append(entry([b"x" * 5000]), 5000)
        assert h.store.meta.frames == 1

    def test_segments_grow_while_a_commit_is_in_flight(self, tmp_path: Path) -> None:
        """If the writer is busy, then later appends join one segment sealed when it is free."""
        h = Harness(tmp_path, segment_max_bytes=4096)
        h.runner.hold = True
        h.writer.append(entry([b"1" * 5000]), 5000)  # sealed: commit in flight
        for i in range(5):
            h.writer.append(entry([bytes([50 + i]) * 5000]), 5000)  # accumulate
        assert len(h.runner.held) == 1
        h.runner.release_one()  # first commit done: the five are sealed as one
        assert len(h.runner.held) == 1
        h.runner.release_one()
        assert h.store.meta.next_seq - h.store.meta.first_seq == 2
        assert len(h.frames()) == 6

    def test_when_committed(self, tmp_path: Path) -> None:
        """If a caller waits for commit, then it fires only after its frames are durable."""
        h = Harness(tmp_path)
        h.runner.hold = True
        h.writer.append(entry([b"a"]), 1)
        fired: list[None] = []
        h.writer.when_committed().addCallback(fired.append)
        assert fired == []
        h.runner.release_one()
        assert fired == [None]
        assert h.store.meta.frames == 1

    def test_after_commit_waits_for_the_group_commit_without_sealing_early(self, tmp_path: Path) -> None:
        """If a caller asks to be called after commit, then it is called once its frames are committed,
        in the order asked, the open segment is not sealed early, and with nothing pending at once."""
        h = Harness(tmp_path, segment_max_delay_ms=5)
        called: list[str] = []
        h.writer.after_commit(lambda: called.append("nothing pending"))
        assert called == ["nothing pending"]
        h.runner.hold = True
        h.writer.append(entry([b"a"]), 1)
        h.writer.after_commit(lambda: called.append("a"))
        h.writer.append(entry([b"b"]), 1)
        h.writer.after_commit(lambda: called.append("a b"))
        h.clock.advance(0.004)
        assert not h.runner.held  # still open: the delay has not passed
        h.clock.advance(0.002)
        assert len(h.runner.held) == 1 and called == ["nothing pending"]
        h.writer.after_commit(lambda: called.append("sealed, in flight"))
        h.runner.release_one()
        assert called == ["nothing pending", "a", "a b", "sealed, in flight"]
        assert h.store.meta.frames == 2

    def test_after_commit_soon_seals_at_the_next_reactor_turn(self, tmp_path: Path) -> None:
        """If a caller asks to be called soon after commit, then the open segment is sealed at the next
        turn of the reactor, not after the group-commit delay, and appends of the same turn share it."""
        h = Harness(tmp_path, segment_max_delay_ms=5000)
        called: list[str] = []
        h.writer.append(entry([b"a"]), 1)
        h.writer.after_commit(lambda: called.append("a"), soon=True)
        h.writer.append(entry([b"b"]), 1)  # the same turn: the same segment
        h.writer.after_commit(lambda: called.append("b"), soon=True)
        assert called == []
        h.clock.advance(0)
        assert called == ["a", "b"]
        assert h.store.meta.segments == 1 and h.store.meta.frames == 2

    def test_after_commit_is_never_called_for_a_failed_commit(self, tmp_path: Path) -> None:
        """If the commit holding the frames fails, then the callback is not called: it is a promise of storage."""
        h = Harness(tmp_path)
        h.runner.hold = True
        h.writer.append(entry([b"a"]), 1)
        called: list[str] = []
        h.writer.after_commit(lambda: called.append("a"))
        h.writer.when_committed()  # seal
        _, d = h.runner.held.pop(0)
        d.errback(OSError("disk gone"))
        assert called == []

    def test_a_commit_that_raises_leaves_the_books_right(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If a commit raises something the writer does not retry (a bug, not the disk), then its frames
        are counted and logged as lost, its callbacks are not called, the memory held for it is released
        and the next segments commit as usual."""
        h = Harness(tmp_path, memory_high_watermark_bytes=8, memory_low_watermark_bytes=4)
        real_append = h.store.append
        failures = [ValueError("a bug")]

        def buggy(blob: bytes, summary: Any) -> int:
            if failures:
                raise failures.pop()
            return real_append(blob, summary)

        monkeypatch.setattr(h.store, "append", buggy)
        called: list[str] = []
        h.writer.append(entry([b"lost", b"too"]), 10)
        assert h.gate.reasons == {"memory"}
        h.writer.after_commit(lambda: called.append("lost"))
        h.clock.advance(0.01)
        assert called == [] and h.gate.reasons == set()
        assert h.telemetry.value("receiver_spool_frames_lost_total") == 2
        assert h.telemetry.value("receiver_spool_commit_failures_total") == 1
        h.writer.append(entry([b"kept"]), 4)
        h.writer.after_commit(lambda: called.append("kept"))
        h.clock.advance(0.01)
        assert called == ["kept"] and h.frames() == [b"kept"]
        assert h.writer._in_flight == 0 and h.writer._pending_bytes == 0

    def test_memory_watermarks(self, tmp_path: Path) -> None:
        """If uncommitted frames pass the memory high watermark, then the gate holds until below the low one."""
        h = Harness(tmp_path, segment_max_bytes=4096, memory_high_watermark_bytes=20_000, memory_low_watermark_bytes=5_000)
        h.runner.hold = True
        for _ in range(5):
            h.writer.append(entry([b"z" * 5000]), 5000)
        assert h.gate.reasons == {"memory"}
        assert not h.writer.accepting
        while h.runner.held:
            h.runner.release_one()
        assert not h.gate.closed

    def test_disk_watermarks(self, tmp_path: Path) -> None:
        """If stored bytes reach the high percentage of max_bytes, then the gate holds for 'disk'."""
        h = Harness(tmp_path, segment_max_bytes=4096, max_bytes=10_000, high_watermark_percent=50, low_watermark_percent=10)
        h.writer.append(entry([NOISE.randbytes(10240)]), 10240)
        assert h.gate.reasons == {"disk"}

    def test_retention_by_age(self, tmp_path: Path) -> None:
        """If segments are older than max_age_hours, then retention removes them and counts the frames."""
        h = Harness(tmp_path, max_age_hours=1)
        h.writer.start()
        h.writer.append(entry([b"old"] * 3, at=NOW_NS), 9)
        h.clock.advance(0.01)
        h.wall_ns = NOW_NS + 2 * 3600 * 10**9
        h.writer.append(entry([b"new"], at=h.wall_ns), 3)
        h.clock.advance(10)
        assert h.frames() == [b"new"]
        assert h.store.meta.discarded_frames == 3
        assert h.telemetry.value("receiver_spool_frames_discarded_total", reason="age") == 3

    def test_delivered_segments_are_removed(self, tmp_path: Path) -> None:
        """If every sink's cursor has passed a segment, then retention removes it without counting a discard."""
        h = Harness(tmp_path)
        h.writer.start()
        for frame in (b"a", b"b", b"c"):
            h.writer.append(entry([frame]), 1)
            h.clock.advance(0.01)
        h.store.set_cursor("local", 2)
        h.store.set_cursor("sls", 1)
        h.clock.advance(10)
        assert h.frames() == [b"b", b"c"]
        h.store.set_cursor("sls", 2)
        h.clock.advance(10)
        assert h.frames() == [b"c"]
        assert h.store.meta.discarded_frames == 0
        assert h.telemetry.value("receiver_spool_segments_delivered_total") == 2

    def test_retention_goes_in_steps_that_let_commits_through(self, tmp_path: Path) -> None:
        """If a retention pass has more delivered segments to remove than one step takes, then it removes them a
        step at a time, and a commit sealed meanwhile waits for one step, not for the whole pass."""
        step = writer_module._RETENTION_STEP_SEGMENTS
        h = Harness(tmp_path)
        h.writer.start()
        for n in range(2 * step + 5):
            h.writer.append(entry([b"%d" % n]), 1)
            h.clock.advance(0.01)
        h.store.set_cursor("local", 2 * step + 5)
        h.runner.hold = True
        h.clock.advance(10)  # the pass's first step, held on the writer thread
        committed: list[str] = []
        h.writer.append(entry([b"new"]), 3)
        h.writer.after_commit(lambda: committed.append("new"))
        h.writer.when_committed()  # sealed while the step runs: its commit comes next
        h.runner.release_one()
        assert h.store.meta.segments == step + 5
        h.clock.advance(0)  # the reactor chains the next step, after the commit
        h.runner.release_one()
        assert committed == ["new"] and h.store.meta.segments == step + 6
        h.runner.hold = False
        h.runner.release_one()  # the second step
        h.clock.advance(0)  # the third, the last: nothing delivered is left
        assert h.frames() == [b"new"] and not h.writer._retaining
        assert h.telemetry.value("receiver_spool_segments_delivered_total") == 2 * step + 5

    def test_no_retention_step_starts_after_close(self, tmp_path: Path) -> None:
        """If the writer closes while a retention pass has steps to go, then no further step runs on the store."""
        step = writer_module._RETENTION_STEP_SEGMENTS
        h = Harness(tmp_path)
        h.writer.start()
        for n in range(step + 3):
            h.writer.append(entry([b"%d" % n]), 1)
            h.clock.advance(0.01)
        h.store.set_cursor("local", step + 3)
        h.runner.hold = True
        h.clock.advance(10)  # the first step, held on the writer thread
        h.runner.release_one()  # done: the next is asked for at the reactor's next turn
        assert h.store.meta.segments == 3
        h.writer.close()
        h.clock.advance(0)
        assert not h.runner.held and h.store.meta.segments == 3 and not h.writer._retaining

    def test_drop_oldest_when_full(self, tmp_path: Path) -> None:
        """If the spool is over max_bytes in drop-oldest mode, then the oldest segments go, counted."""
        h = Harness(tmp_path, segment_max_bytes=4096, max_bytes=6_000, when_full="drop-oldest")
        h.writer.start()
        for _ in range(4):
            h.writer.append(entry([NOISE.randbytes(4200)]), 4200)
        h.clock.advance(10)
        assert h.store.meta.stored_bytes <= 6_000
        assert h.store.meta.discarded_frames >= 1
        assert not h.gate.closed

    def test_damaged_segment_is_quarantined_at_start(self, tmp_path: Path) -> None:
        """If a committed segment is corrupted on disk, then start-up quarantines it and keeps the rest."""
        h = Harness(tmp_path)
        for frame in (b"one", b"two", b"three"):
            h.writer.append(entry([frame]), 3)
            h.clock.advance(0.01)
        h.store.close()
        db = sqlite3.connect(tmp_path / "spool" / "cache.db")
        (blob,) = db.execute("SELECT value FROM Cache WHERE key = 2").fetchone()
        damaged = bytearray(blob)
        damaged[-3] ^= 0xFF
        db.execute("UPDATE Cache SET value = ? WHERE key = 2", (bytes(damaged),))
        db.commit()
        db.close()
        again = Harness(tmp_path)
        again.writer.start()
        assert again.frames() == [b"one", b"three"]
        assert again.store.meta.quarantined_segments == 1
        assert (tmp_path / "spool" / "quarantine" / "segment-2.bin").read_bytes() == bytes(damaged)
        assert again.telemetry.value("receiver_spool_segments_quarantined_total") == 1

    def test_failed_commit_is_retried_in_order(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If a commit fails (disk full), then it is retried until it succeeds and nothing is lost or reordered."""
        h = Harness(tmp_path)
        real_append = h.store.append
        failures = [sqlite3.OperationalError("database or disk is full")]

        def flaky(blob: bytes, summary: Any) -> int:
            if failures:
                raise failures.pop()
            return real_append(blob, summary)

        monkeypatch.setattr(h.store, "append", flaky)
        monkeypatch.setattr("receiver.spool.writer.time.sleep", lambda s: None)
        h.writer.append(entry([b"first"]), 5)
        h.clock.advance(0.01)
        h.writer.append(entry([b"second"]), 6)
        h.clock.advance(0.01)
        assert h.frames() == [b"first", b"second"]


class FakeProducer:
    def __init__(self) -> None:
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


class TestGate:
    def test_pause_and_resume(self) -> None:
        """If any reason holds, then every producer is paused; only when all release are they resumed."""
        gate = BackpressureGate()
        a, b = FakeProducer(), FakeProducer()
        gate.register(a)
        gate.hold("memory")
        gate.register(b)
        assert a.paused and b.paused
        gate.hold("disk")
        gate.release("memory")
        assert a.paused
        gate.release("disk")
        assert not a.paused and not b.paused

    def test_only_resumes_what_it_paused(self) -> None:
        """If a producer was unregistered while paused, then the gate leaves it alone."""
        gate = BackpressureGate()
        a = FakeProducer()
        gate.register(a)
        gate.hold("memory")
        gate.unregister(a)
        a.paused = True
        gate.release("memory")
        assert a.paused
