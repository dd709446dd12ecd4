"""Delivery: grouping and routing, and a sink's worker loop against a scripted upstream."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from formats.parse import make_parser
from formats.record import Record
from receiver.deliver.batches import (
    Group,
    Grouping,
    Route,
    Router,
    build_groups,
    merged_pack_id,
    pack_id_prefix,
    sender_pack_prefix,
)
from receiver.deliver.building import Built, Segments, decode_segments
from receiver.deliver.dead_letters import DeadLetters
from receiver.deliver.outcomes import SendOutcome
from receiver.deliver.worker import SinkWorker
from receiver.spool.reader import SpoolEntry
from receiver.spool.segment import Entry, encode_segment, read_summary
from receiver.spool.store import SpoolStore

PARSE = make_parser()
T0 = 1_795_323_666 * 10**9


def ali(tag: str, app: str, n: int) -> bytes:
    return f"0.1 {tag} 1795323666 127.0.0.1 web-1 user.notice 0 {app} 1 - message {n}".encode()


def relayed(host: int, n: int) -> bytes:
    """An ALI line of host 10.1.0.``host`` (its record's source), as a relay passes it on."""
    return f"0.1 t 1795323666 10.1.0.{host} web-{host} user.notice 0 a 1 - message {n}".encode()


def spool_entry(frames: list[bytes], *, seq: int = 1, peer: str = "10.0.0.7", at: int = T0) -> SpoolEntry:
    return SpoolEntry(seq, at, peer, 40000, "tcp", "tcp", frames, {})


def groups(
    entries: Sequence[SpoolEntry], router: Router, *, sink: str = "local", max_records: int = 100, first_seq: int = 7
) -> list[Group]:
    grouping = Grouping(
        sink, "appliance", ("fleet",), lambda ip, host: ("web",) if host.startswith("web") else (),
        "ABCDEF0123456789", first_seq, max_records, 1 << 20,
    )
    return build_groups(entries, grouping, parsers={}, default_parser=PARSE, router=router)


DEFAULT = Route("local", "local")


class TestRouter:
    def test_tag_routes_first_then_default(self) -> None:
        """If a record's streamlog tag names a route, then it takes it; other records take the default."""
        router = Router([Route("sls", "syslog", tag="sys_tag")], DEFAULT)
        assert router.route(PARSE(ali("sys_tag", "a", 1), "", T0)).sink == "sls"
        assert router.route(PARSE(b"<13>Oct 11 22:14:15 h a: m", "", T0)) is DEFAULT

    def test_unknown_tag_counted(self) -> None:
        """If routing by tag is in use and a tag is unknown, then the record goes to the default route, counted."""
        router = Router([Route("sls", "syslog", tag="sys_tag")], DEFAULT)
        assert router.route(PARSE(ali("other_tag", "a", 1), "", T0)) is DEFAULT
        assert router.unknown_tags == 1
        assert Router([], DEFAULT).route(PARSE(ali("x", "a", 1), "", T0)) is DEFAULT

    def test_dropping_route_takes_records_from_every_sink_and_counts_them(self) -> None:
        """If a dropping route matches, then no sink gets the record and the router counts it."""
        router = Router([Route("", "", tag="noisy", drop=True)], DEFAULT)
        made = groups([spool_entry([ali("noisy", "a", 1), ali("sys_tag", "a", 2)])], router)
        assert [r.get("msg") for g in made for r in g.records] == ["message 2"]
        assert router.dropped == 1

    def test_filter_decides_within_a_tag(self) -> None:
        """If a route has a filter, then only matching records take it; the next route is tried."""
        def is_alerting(record: Record) -> bool:
            return record.get("app-name") == "alerts"

        router = Router([Route("pager", "alerts", tag="sys_tag", matches=is_alerting), Route("sls", "syslog", tag="sys_tag")], DEFAULT)
        assert router.route(PARSE(ali("sys_tag", "alerts", 1), "", T0)).sink == "pager"
        assert router.route(PARSE(ali("sys_tag", "web", 1), "", T0)).sink == "sls"


    def test_a_filter_that_fails_sends_the_record_to_the_default_route_counted(self) -> None:
        """If a route's filter raises on a record, then the record goes to the default route (not to the next
        route, not nowhere), and the failure is counted with the route's name and the error."""
        def broken(record: Record) -> bool:
            raise IndexError("list index out of range")

        router = Router(
            [Route("pager", "alerts", matches=broken, name="alerts"), Route("sls", "syslog"), Route("", "", drop=True)],
            DEFAULT,
        )
        assert router.route(PARSE(ali("sys_tag", "a", 1), "", T0)) is DEFAULT
        assert router.filter_errors == 1 and router.dropped == 0
        assert router.last_filter_error == "route 'alerts': IndexError: list index out of range"

    def test_a_real_filter_on_a_malformed_record_is_a_counted_error(self) -> None:
        """If a configured filter meets a record it cannot be evaluated on (values shorter than keys), then
        routing counts it as a filter error, while tail and search just see no match."""
        from receiver.filters.expression import parse_filter

        compiled = parse_filter("app-name=alerts")
        router = Router([Route("pager", "alerts", matches=compiled.evaluate, name="alerts")], DEFAULT)
        malformed = Record(T0 // 10**9, 0, ("hostname", "app-name", "msg"), ["web-1"], "10.0.0.7", {})
        assert compiled.matches(malformed) is False
        assert router.route(malformed) is DEFAULT and router.filter_errors == 1


class TestBuildGroups:
    def test_groups_by_destination_source_and_peer(self) -> None:
        """If records differ in source or peer, then they are in different groups, each tagged."""
        router = Router([], DEFAULT)
        entries = [
            spool_entry([ali("t", "a", 1), ali("t", "a", 2)], peer="10.0.0.7"),
            spool_entry([ali("t", "a", 3)], peer="10.0.0.8", at=T0 + 1),
        ]
        made = groups(entries, router)
        assert [(g.client_ip, g.source, len(g.records)) for g in made] == [("10.0.0.7", "10.0.0.7", 2), ("10.0.0.8", "10.0.0.8", 1)]
        assert dict(made[0].tags) == {
            "__client_ip__": "10.0.0.7", "__receive_time__": "1795323666", "__hostname__": "appliance",
            "__user_defined_id__": "fleet", "__machine_group__": "web",
            "__pack_id__": f"{sender_pack_prefix('ABCDEF0123456789', '10.0.0.7')}-700000000",
        }

    def test_split_at_max_records_in_order(self) -> None:
        """If a group would exceed max_records, then it is split, arrival order kept, pack ids numbered."""
        made = groups([spool_entry([ali("t", "a", n) for n in range(5)])], Router([], DEFAULT), max_records=2)
        assert [[r.get("msg") for r in g.records] for g in made] == [["message 0", "message 1"], ["message 2", "message 3"], ["message 4"]]
        prefix = sender_pack_prefix("ABCDEF0123456789", "10.0.0.7")
        assert [g.pack_id for g in made] == [f"{prefix}-700000000", f"{prefix}-700000001", f"{prefix}-700000002"]

    def test_deterministic(self) -> None:
        """If the same segments are grouped twice (a resend after a crash), then groups and pack ids are identical."""
        entries = [spool_entry([ali("t", "a", n)], peer=f"10.0.0.{n % 3}") for n in range(10)]
        first = groups(entries, Router([], DEFAULT))
        again = groups(entries, Router([], DEFAULT))
        assert [(g.pack_id, [r.get("msg") for r in g.records]) for g in first] == [
            (g.pack_id, [r.get("msg") for r in g.records]) for g in again
        ]

    def test_other_sinks_records_left_out(self) -> None:
        """If records are routed to another sink, then this sink's groups do not hold them."""
        router = Router([Route("sls", "syslog", tag="sys_tag")], DEFAULT)
        made = groups([spool_entry([ali("sys_tag", "a", 1), b"<13>Oct 11 22:14:15 h a: local one"])], router)
        assert [r.get("_content_") for g in made for r in g.records] == ["local one"]

    def test_frame_flags_reach_records(self) -> None:
        """If a frame was truncated at ingest, then its record carries the flag."""
        entry = SpoolEntry(1, T0, "10.0.0.7", 1, "tcp", "tcp", [b"<13>Nov 20 22:14:15 h a: cut"], {0: ("truncated:70000",)})
        (group,) = groups([entry], Router([], DEFAULT))
        assert group.records[0].flags == ("truncated:70000",)

    def test_pack_ids_are_logtails_prefix_and_hex_sequence(self) -> None:
        """If groups are made batch after batch, then each pack id is Logtail's ``PREFIX-HEXSEQ``: two parts,
        one 16-hex-digit prefix per sender, and a hexadecimal number that increases pack after pack of
        that sender (what the Log Service console's context view follows)."""
        router = Router([], DEFAULT)
        seen: dict[str, list[int]] = {}
        for first_seq in (1, 2, 9, 0x10):
            entries = [spool_entry([ali("t", "a", n)], peer=f"10.0.0.{n % 3}") for n in range(7)]
            for group in groups(entries, router, max_records=2, first_seq=first_seq):
                prefix, sep, number = group.pack_id.partition("-")
                assert sep and "-" not in number and len(prefix) == 16
                assert prefix == sender_pack_prefix("ABCDEF0123456789", group.client_ip)
                seen.setdefault(prefix, []).append(int(number, 16))
        assert len(seen) == 3
        for numbers in seen.values():
            assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)

    def test_pack_id_prefix(self) -> None:
        """If the spool or the sink differ, then the pack id prefix differs; it is 16 hex digits."""
        a, b = pack_id_prefix("spool-1", "sls"), pack_id_prefix("spool-1", "local")
        assert a != b and len(a) == 16 and int(a, 16) >= 0


OK = SendOutcome("ok")


class ScriptedSink:
    """Answers with the scripted outcomes first, then 'ok'."""

    def __init__(
        self, outcomes: list[SendOutcome] | None = None, *, max_records: int = 1000,
        then: SendOutcome = OK,
    ) -> None:
        self.name = "fake"
        self.max_records = max_records
        self.max_bytes = 1 << 20
        self.outcomes = list(outcomes or [])
        self.then = then
        self.sent: list[Group] = []
        self.accepted: list[str] = []

    def send(self, group: Group) -> SendOutcome:
        self.sent.append(group)
        outcome = self.outcomes.pop(0) if self.outcomes else self.then
        if outcome.kind == "ok":
            self.accepted.extend(r.get("msg") or "" for r in group.records)
        return outcome

    def close(self) -> None:
        pass


class DedupingSink(ScriptedSink):
    """An upstream that drops a pack id it has accepted before, answering ok (as an HTTP collector does
    with Idempotency-Key): what it accepted is what it has."""

    def __init__(self, *args: Any, seen: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen = set() if seen is None else seen

    def send(self, group: Group) -> SendOutcome:
        if group.pack_id in self.seen:
            self.sent.append(group)
            return OK
        outcome = super().send(group)
        if outcome.kind == "ok":
            self.seen.add(group.pack_id)
        return outcome


def fill_spool(directory: Path, segments: int, per_segment: int) -> SpoolStore:
    store = SpoolStore(directory)
    n = 0
    for _ in range(segments):
        frames = []
        for _ in range(per_segment):
            frames.append(ali("t", "a", n))
            n += 1
        blob = encode_segment([Entry(T0, "10.0.0.7", 1, "tcp", "tcp", frames)])
        store.append(blob, read_summary(blob))
    return store


def run_until_done(worker: SinkWorker, store: SpoolStore, last_seq: int) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    for _ in range(500):
        if store.cursor(worker.sink.name) >= last_seq:
            break
        stop.wait(0.01)
    stop.set()
    thread.join(5)


def run_briefly(worker: SinkWorker, seconds: float = 0.2) -> None:
    """Run ``worker`` for ``seconds``, then stop it (as delivery stops: between sends)."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    stop.wait(seconds)
    stop.set()
    thread.join(5)


def builders(build: Callable[[list[SpoolEntry], int], list[Group]]) -> dict[str, Any]:
    """SinkWorker's build_batch and rebuild for a plain build function (done at once, in this thread)."""

    def rebuild(first: int, segments: Segments) -> Built:
        entries, damaged = decode_segments(segments)
        return Built(build(entries, first), damaged, 0)

    def build_batch(first: int, segments: Segments) -> Future[Built]:
        future: Future[Built] = Future()
        future.set_result(rebuild(first, segments))
        return future

    return {"build_batch": build_batch, "rebuild": rebuild}


def make_worker(sink: ScriptedSink, directory: Path, dead: Path, **options: Any) -> SinkWorker:
    reader = SpoolStore(directory, readonly=True)
    router = Router([], Route(sink.name, "dest"))
    return SinkWorker(
        sink, reader,
        **builders(lambda entries, first: groups(entries, router, sink=sink.name, max_records=sink.max_records, first_seq=first)),
        dead_letters=DeadLetters(dead), backoff=lambda attempt, kind: 0.0, poll_seconds=0.01,
        **{"segments_per_batch": 2, **options},
    )


class TestSinkWorker:
    def test_delivers_everything_and_moves_the_cursor(self, tmp_path: Path) -> None:
        """If the upstream accepts, then every record is delivered once, in order, and the cursor reaches the end."""
        store = fill_spool(tmp_path / "spool", 5, 3)
        sink = ScriptedSink()
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead")
        run_until_done(worker, store, 5)
        assert sink.accepted == [f"message {n}" for n in range(15)]
        assert store.cursor("fake") == 5
        assert worker.stats.delivered_records == 15

    def test_a_batch_holds_no_more_log_text_than_its_segments_may(self, tmp_path: Path) -> None:
        """If group commit made some segments far larger than others, then a batch stops before the
        segment that would take it over its bytes (kept for the next batch, never read twice or
        skipped), and a segment over the bound on its own still goes, alone."""
        store = SpoolStore(tmp_path / "spool")
        n = 0
        for size in (1, 1, 6, 1, 1, 20, 1):  # lines per segment; the middle ones are a flood's
            frames = [ali("t", "a", n + i) for i in range(size)]
            n += size
            blob = encode_segment([Entry(T0, "10.0.0.7", 1, "tcp", "tcp", frames)])
            store.append(blob, read_summary(blob))
        one_line = read_summary(store.get(1) or b"").raw_bytes
        sink = ScriptedSink()
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead", bytes_per_segment=2 * one_line)  # 4 lines a batch
        batches: list[list[int]] = []
        build_batch = worker._build_batch
        worker._build_batch = lambda first, segments: (batches.append([seq for seq, _ in segments]), build_batch(first, segments))[1]
        reads: list[int] = []
        get = worker._store.get
        worker._store.get = lambda seq: (reads.append(seq), get(seq))[1]  # type: ignore[method-assign]
        run_until_done(worker, store, 7)
        assert batches == [[1, 2], [3], [4, 5], [6], [7]]
        assert sorted(reads) == [1, 2, 3, 4, 5, 6, 7]
        assert sink.accepted == [f"message {i}" for i in range(n)]

    def test_the_snapshot_holds_every_counter_the_daemon_reads(self, tmp_path: Path) -> None:
        """If the daemon lists a sink's counters (receiverctl stats) or turns them into metrics, then the
        worker's snapshot has each of them under that name."""
        from receiver.deliver.stats import COUNTERS
        from receiver.deliver.telemetry import SINK_COUNTERS

        fill_spool(tmp_path / "spool", 1, 1)
        snapshot = make_worker(ScriptedSink(), tmp_path / "spool", tmp_path / "dead").snapshot()
        assert set(COUNTERS) | {key for _, key in SINK_COUNTERS} <= set(snapshot)

    def test_transient_failures_are_retried_not_dropped(self, tmp_path: Path) -> None:
        """If the upstream answers 5xx, quota and clock-skew, then the group is resent until accepted, once."""
        store = fill_spool(tmp_path / "spool", 1, 2)
        sink = ScriptedSink([SendOutcome("retry", "500"), SendOutcome("quota", "WriteQuotaExceed"), SendOutcome("clock-skew", "skew")])
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead")
        run_until_done(worker, store, 1)
        assert sink.accepted == ["message 0", "message 1"]
        assert len(sink.sent) == 4 and len({g.pack_id for g in sink.sent}) == 1  # same pack id on every retry
        assert worker.stats.retried == 3

    def test_permanent_rejection_goes_to_dead_letters(self, tmp_path: Path) -> None:
        """If the upstream rejects a group for good, then it is kept in the dead-letter area and delivery goes on."""
        store = fill_spool(tmp_path / "spool", 2, 1)
        sink = ScriptedSink([SendOutcome("permanent", "PostBodyInvalid")], max_records=1)
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead")
        run_until_done(worker, store, 2)
        assert sink.accepted == ["message 1"]
        (kept,) = list((tmp_path / "dead" / "fake").glob("*.ndjson"))
        header, record = (json.loads(line) for line in kept.read_text().splitlines())
        assert header["dead_letter"]["reason"] == "PostBodyInvalid"
        assert record["fields"]["msg"] == "message 0"

    def test_stopping_mid_retry_keeps_the_cursor(self, tmp_path: Path) -> None:
        """If delivery stops while a group is unaccepted, then the cursor stays so the batch is resent."""
        store = fill_spool(tmp_path / "spool", 1, 1)
        sink = ScriptedSink(then=SendOutcome("retry", "upstream down"))
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead")
        run_briefly(worker)
        assert store.cursor("fake") == 0
        assert sink.accepted == []
        assert len(sink.sent) > 1

    def test_a_restart_resends_the_batch_in_flight_as_it_was_not_with_the_segments_since(
        self, tmp_path: Path
    ) -> None:
        """If delivery stops with a batch half accepted, and the sender's next lines reach the spool
        before it starts again, then the batch is resent as it was: each pack id names the records it
        named before, so an upstream that drops pack ids it has seen (an HTTP collector's
        Idempotency-Key) gets every record exactly once; the later lines follow in their own batch."""
        store = SpoolStore(tmp_path / "spool")

        def append(*entries: Entry) -> None:
            blob = encode_segment(list(entries))
            store.append(blob, read_summary(blob))

        append(Entry(T0, "10.0.0.7", 1, "tcp", "tcp", [ali("t", "a", 0)]),
               Entry(T0, "10.0.0.8", 1, "tcp", "tcp", [ali("t", "a", 1)]))  # a group a sender
        first = DedupingSink([OK], then=SendOutcome("retry", "upstream down"))  # 10.0.0.8's: not yet
        worker = make_worker(first, tmp_path / "spool", tmp_path / "dead", segments_per_batch=4)
        run_briefly(worker)
        assert first.accepted == ["message 0"] and store.cursor("fake") == 0
        append(Entry(T0, "10.0.0.7", 1, "tcp", "tcp", [ali("t", "a", 2)]))  # the first sender goes on meanwhile
        again = DedupingSink(seen=first.seen)
        run_until_done(make_worker(again, tmp_path / "spool", tmp_path / "dead", segments_per_batch=4), store, 2)
        assert sorted(first.accepted + again.accepted) == [f"message {n}" for n in range(3)]
        assert store.cursor("fake") == 2 and store.in_flight("fake") == []

    def test_replayed_dead_letter_is_sent_again_and_removed(self, tmp_path: Path) -> None:
        """If an operator replays a dead letter, then the worker sends it with its pack id and removes the file."""
        store = fill_spool(tmp_path / "spool", 1, 1)
        sink = ScriptedSink([SendOutcome("permanent", "PostBodyInvalid")], max_records=1)
        run_until_done(make_worker(sink, tmp_path / "spool", tmp_path / "dead"), store, 1)
        letters = DeadLetters(tmp_path / "dead")
        (letter,) = letters.letters()
        assert (letter.sink, letter.records, letter.reason, letter.replay_pending) == ("fake", 1, "PostBodyInvalid", False)
        kept = letters.load(letter.path)
        assert kept.records[0].get("msg") == "message 0" and kept.tags == sink.sent[0].tags

        letters.request_replay(letter)
        assert letters.letters()[0].replay_pending
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead")
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        for _ in range(500):
            if not letters.letters():
                break
            stop.wait(0.01)
        stop.set()
        thread.join(5)
        assert letters.letters() == []
        assert sink.accepted == ["message 0"]
        assert sink.sent[-1].pack_id == letter.pack_id

    @pytest.mark.parametrize(
        "damage",
        [
            lambda lines: [lines[0], lines[1].replace('"time":', '"time":null,"was":')],  # "time": null
            lambda lines: [lines[0], "[1, 2, 3]"],  # a record that is not an object
            lambda lines: ["{\"dead_letter\": []}", lines[1]],  # a header that is not one
            lambda lines: [lines[0], lines[1][:20]],  # cut short: not JSON
        ],
    )
    def test_a_damaged_replay_file_is_set_aside_and_the_others_go_on(
        self, tmp_path: Path, damage: Callable[[list[str]], list[str]]
    ) -> None:
        """If a file queued for replay is not a dead letter (edited, cut short), then it is moved to
        ``damaged/`` with a note of why, counted, and the other replays and the spool's batches are still
        delivered: one bad file never stops delivery."""
        store = fill_spool(tmp_path / "spool", 2, 1)
        sink = ScriptedSink([SendOutcome("permanent", "x"), SendOutcome("permanent", "x")], max_records=1)
        run_until_done(make_worker(sink, tmp_path / "spool", tmp_path / "dead"), store, 2)
        letters = DeadLetters(tmp_path / "dead")
        bad, good = (letters.request_replay(letter) for letter in letters.letters())
        bad.write_text("\n".join(damage(bad.read_text().splitlines())) + "\n")
        more = fill_spool(tmp_path / "spool", 1, 1)  # and a new batch in the spool
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead")
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        for _ in range(500):
            if not good.exists() and more.cursor("fake") >= 3:
                break
            stop.wait(0.01)
        stop.set()
        thread.join(5)
        assert thread.is_alive() is False and worker.damaged_dead_letters == 1
        assert not good.exists() and not bad.exists()
        moved = tmp_path / "dead" / "fake" / "damaged" / bad.name
        assert moved.exists() and moved.with_name(moved.name + ".reason").read_text().strip()
        assert len(sink.accepted) == 2  # the good replay and the new batch
        assert [d.pack_id for d in letters.letters()] == []

    def test_listing_survives_damaged_headers(self, tmp_path: Path) -> None:
        """If a dead letter's header holds values of the wrong type, then listing still works (and shows 0)."""
        folder = tmp_path / "dead" / "fake"
        folder.mkdir(parents=True)
        (folder / "ABC-1.ndjson").write_text('{"dead_letter": {"records": null, "time_ns": "soon"}}\n')
        (letter,) = DeadLetters(tmp_path / "dead").letters()
        assert (letter.records, letter.time_ns, letter.sink) == (0, 0, "fake")

    def test_a_cursor_that_cannot_be_saved_is_retried_not_skipped(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If saving the cursor fails (the spool's disk is full), then delivery waits and retries it, and
        every record is still sent exactly once: no batch is sent past an unsaved cursor."""
        store = fill_spool(tmp_path / "spool", 4, 2)
        sink = ScriptedSink(max_records=2)
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead")
        real = SpoolStore.set_cursor
        failures = iter([True, True])

        def set_cursor(self: SpoolStore, name: str, seq: int) -> None:
            if next(failures, False):
                raise sqlite3.OperationalError("database or disk is full")
            real(self, name, seq)

        monkeypatch.setattr(SpoolStore, "set_cursor", set_cursor)
        run_until_done(worker, store, 4)
        assert store.cursor("fake") == 4
        assert sink.accepted == [f"message {i}" for i in range(8)]

    def test_replayed_dead_letter_that_cannot_be_removed_is_sent_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If a replayed file cannot be removed (a folder made by root), then it is sent once, not in a loop."""
        store = fill_spool(tmp_path / "spool", 1, 1)
        sink = ScriptedSink([SendOutcome("permanent", "PostBodyInvalid")], max_records=1)
        run_until_done(make_worker(sink, tmp_path / "spool", tmp_path / "dead"), store, 1)
        letters = DeadLetters(tmp_path / "dead")
        replay = letters.request_replay(letters.letters()[0])
        real_unlink = Path.unlink

        def unlink(path: Path, missing_ok: bool = False) -> None:
            if path == replay:
                raise PermissionError(13, "Permission denied", str(path))
            real_unlink(path, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", unlink)
        monkeypatch.setattr("receiver.deliver.worker._REPLAY_CHECK_SECONDS", 0.0)
        worker = make_worker(sink, tmp_path / "spool", tmp_path / "dead")
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        stop.wait(0.5)
        stop.set()
        thread.join(5)
        assert sink.accepted == ["message 0"]
        assert replay.exists()


class SlowSink(ScriptedSink):
    """Takes a while per request and notes how many were in flight at once, per sender and per
    stream (a sender's source) too."""

    def __init__(self, outcomes: list[SendOutcome] | None = None, *, together: int = 0) -> None:
        super().__init__(outcomes, max_records=1)
        self.lock = threading.Lock()
        self.in_flight: list[str] = []
        self.most = 0
        self.overlapping_sender = False
        self.streams: list[tuple[str, str]] = []
        self.overlapping_stream = False
        self.started = 0
        # The first ``together`` requests wait in flight until all of them are: on a loaded machine a
        # fixed pause could let one finish before another starts. Fewer in flight times out (an error).
        self._together = threading.Barrier(together) if together else None

    def send(self, group: Group) -> SendOutcome:
        with self.lock:
            self.overlapping_sender |= group.client_ip in self.in_flight
            self.overlapping_stream |= (group.client_ip, group.source) in self.streams
            self.in_flight.append(group.client_ip)
            self.streams.append((group.client_ip, group.source))
            self.most = max(self.most, len(self.in_flight))
            self.started += 1
            first = self.started <= (self._together.parties if self._together is not None else 0)
        if first and self._together is not None:
            self._together.wait(timeout=10)
        threading.Event().wait(0.02)
        with self.lock:
            self.in_flight.remove(group.client_ip)
            self.streams.remove((group.client_ip, group.source))
            return super().send(group)


def fill_spool_from_peers(directory: Path, peers: int, per_peer: int) -> SpoolStore:
    store = SpoolStore(directory)
    entries = [
        Entry(T0, f"10.0.0.{p}", 1, "tcp", "tcp", [ali("t", "a", p * 100 + i) for i in range(per_peer)])
        for p in range(peers)
    ]
    blob = encode_segment(entries)
    store.append(blob, read_summary(blob))
    return store


def assert_each_in_order(accepted: list[str], *, streams: int, each: int) -> None:
    """Each stream's messages were accepted in the order sent (stream s sent "message 100*s + i", i < ``each``)."""
    for stream in range(streams):
        expected = [f"message {stream * 100 + i}" for i in range(each)]
        assert [m for m in accepted if m in expected] == expected


class TestConcurrency:
    def make(self, sink: SlowSink, tmp_path: Path) -> SinkWorker:
        router = Router([], Route(sink.name, "dest"))
        return SinkWorker(
            sink, SpoolStore(tmp_path / "spool", readonly=True),
            **builders(lambda entries, first: groups(entries, router, sink=sink.name, max_records=1, first_seq=first)),
            dead_letters=DeadLetters(tmp_path / "dead"), backoff=lambda attempt, kind: 0.0, poll_seconds=0.01,
            max_concurrency=4,
        )

    def test_several_senders_in_flight_each_in_order(self, tmp_path: Path) -> None:
        """If groups of 4 senders wait, then up to 4 requests are in flight, never two of one sender,
        and each sender's records arrive in their order."""
        store = fill_spool_from_peers(tmp_path / "spool", 4, 5)
        sink = SlowSink(together=2)
        run_until_done(self.make(sink, tmp_path), store, 1)
        assert sink.most > 1 and not sink.overlapping_sender
        assert_each_in_order(sink.accepted, streams=4, each=5)

    def test_relay_sources_in_flight_each_in_order(self, tmp_path: Path) -> None:
        """If one peer relays the lines of 4 hosts, then their groups go in flight side by side (a relay
        is not one request at a time), never two of one host, and each host's records arrive in order."""
        store = SpoolStore(tmp_path / "spool")
        frames = [relayed(h, h * 100 + i) for i in range(5) for h in range(4)]  # the hosts interleaved
        blob = encode_segment([Entry(T0, "10.0.0.9", 1, "tcp", "tcp", frames)])
        store.append(blob, read_summary(blob))
        sink = SlowSink(together=2)
        run_until_done(self.make(sink, tmp_path), store, 1)
        assert sink.most > 1 and not sink.overlapping_stream
        assert_each_in_order(sink.accepted, streams=4, each=5)

    def test_quota_halves_concurrency(self, tmp_path: Path) -> None:
        """If the upstream answers quota errors, then fewer requests go in flight; successes raise it again."""
        store = fill_spool_from_peers(tmp_path / "spool", 4, 1)
        sink = SlowSink([SendOutcome("quota", "WriteQuotaExceed"), SendOutcome("quota", "WriteQuotaExceed")])
        worker = self.make(sink, tmp_path)
        run_until_done(worker, store, 1)
        assert worker.concurrency < worker.max_concurrency
        assert len(sink.accepted) == 4

    def test_quota_holds_back_the_groups_already_retrying(self, tmp_path: Path) -> None:
        """If every request in flight is answered with a quota error, then their retries go at most
        ``concurrency`` at a time (halved per answer: 1 here), not all at once as before."""
        store = fill_spool_from_peers(tmp_path / "spool", 4, 1)
        sink = SlowSink([SendOutcome("quota", "WriteQuotaExceed")] * 4, together=4)
        calls = 0
        most_after = 0
        send = sink.send

        def counting_send(group: Group) -> SendOutcome:
            nonlocal calls, most_after
            with sink.lock:
                calls += 1
                if calls > 4:
                    most_after = max(most_after, len(sink.in_flight) + 1)
            return send(group)

        sink.send = counting_send  # type: ignore[method-assign]
        worker = self.make(sink, tmp_path)
        run_until_done(worker, store, 1)
        assert sink.most == 4  # the first four went together
        assert most_after == 1
        assert len(sink.accepted) == 4


class MergingSink(ScriptedSink):
    """A sink that merges a stream's groups as the SLS sink does (their records, or their payloads
    joined), and notes each request."""

    def merge(self, parts: Sequence[Group]) -> Group | None:
        first = parts[0]
        pack_id = merged_pack_id(first.pack_id, len(parts))
        assert pack_id is not None
        if all(g.payload is not None for g in parts):
            return Group(first.destination, first.source, first.client_ip, [], first.tags, pack_id,
                         raw_bytes=sum(g.raw_bytes for g in parts), payload=b"+".join(g.payload or b"" for g in parts),
                         record_count=sum(g.count for g in parts))
        return Group(first.destination, first.source, first.client_ip, [r for g in parts for r in g.records],
                     first.tags, pack_id, raw_bytes=sum(g.raw_bytes for g in parts))


class TestMerging:
    """A sink that merges (SLS): the groups of batches built while the oldest was go as one request a stream."""

    def spool(self, directory: Path, batches: int, hosts: int, per_host: int) -> SpoolStore:
        """``batches`` segments, each with ``per_host`` lines of each of ``hosts`` relayed hosts."""
        store = SpoolStore(directory)
        for b in range(batches):
            frames = [relayed(h, h * 100 + b * per_host + i) for i in range(per_host) for h in range(hosts)]
            blob = encode_segment([Entry(T0, "10.0.0.9", 1, "tcp", "tcp", frames)])
            store.append(blob, read_summary(blob))
        return store

    def make(self, sink: ScriptedSink, tmp_path: Path, *, encoded: bool = False, ahead: int = 3) -> SinkWorker:
        router = Router([], Route(sink.name, "dest"))

        plain = builders(
            lambda entries, first: groups(entries, router, sink=sink.name, max_records=sink.max_records, first_seq=first)
        )

        def build_batch(first: int, segments: Segments) -> Future[Built]:
            built: Future[Built] = plain["build_batch"](first, segments)
            if encoded:  # as a worker process sends them: payloads, the records left behind (rebuild has them)
                for group in built.result().groups:
                    group.payload = "|".join(r.get("msg") or "" for r in group.records).encode()
                    group.record_count = len(group.records)
                    group.records = []
            return built

        return SinkWorker(
            sink, SpoolStore(tmp_path / "spool", readonly=True), build_batch=build_batch, rebuild=plain["rebuild"],
            dead_letters=DeadLetters(tmp_path / "dead"), backoff=lambda attempt, kind: 0.0, segments_per_batch=1,
            poll_seconds=0.01, max_concurrency=4, batches_ahead=ahead,
        )

    def test_a_streams_groups_of_built_batches_go_as_one_request(self, tmp_path: Path) -> None:
        """If three batches are built when the first is sent, then each host's lines of the three go in
        one request, in order, and the cursor moves past all three."""
        store = self.spool(tmp_path / "spool", 3, 2, 2)
        sink = MergingSink()
        run_until_done(self.make(sink, tmp_path), store, 3)
        assert len(sink.sent) == 2  # a request a host, not a host a batch (6)
        assert_each_in_order(sink.accepted, streams=2, each=6)
        assert store.cursor("fake") == 3

    def test_merging_stops_at_the_sinks_bounds(self, tmp_path: Path) -> None:
        """If a stream's groups together hold more than max_records, then they go in more requests, each
        within it, still in order."""
        store = self.spool(tmp_path / "spool", 3, 1, 2)
        sink = MergingSink(max_records=4)
        run_until_done(self.make(sink, tmp_path), store, 3)
        assert [len(g.records) for g in sink.sent] == [4, 2]
        assert_each_in_order(sink.accepted, streams=1, each=6)

    def test_a_restart_merges_the_batches_that_were_in_flight_and_no_others(self, tmp_path: Path) -> None:
        """If delivery stops while a merged request is unaccepted, and more batches are built by the
        time it starts again, then its first request merges exactly the batches it merged before, so
        it carries the same pack id and the same records."""
        store = self.spool(tmp_path / "spool", 3, 1, 2)
        before = MergingSink(then=SendOutcome("retry", "upstream down"))
        worker = self.make(before, tmp_path)
        run_briefly(worker)
        assert store.in_flight("fake") == [(1, 1), (2, 2), (3, 3)] and store.cursor("fake") == 0
        blob = encode_segment([Entry(T0, "10.0.0.9", 1, "tcp", "tcp", [relayed(0, n) for n in range(6, 10)])])
        store.append(blob, read_summary(blob))
        after = MergingSink()
        run_until_done(self.make(after, tmp_path, ahead=4), store, 4)  # four built at once this time
        assert (after.sent[0].pack_id, after.sent[0].records) == (before.sent[0].pack_id, before.sent[0].records)
        fewer = MergingSink()
        store.set_cursor("fake", 0)
        store.set_in_flight("fake", [(1, 1), (2, 2), (3, 3)])
        run_until_done(self.make(fewer, tmp_path, ahead=1), store, 4)  # (fewer built ahead than were merged)
        assert (fewer.sent[0].pack_id, fewer.sent[0].records) == (before.sent[0].pack_id, before.sent[0].records)
        assert len(after.sent[0].records) == 6
        assert_each_in_order(after.accepted, streams=1, each=10)

    @pytest.mark.parametrize("encoded", [True, False])
    def test_a_merged_request_refused_for_good_keeps_every_parts_records(self, tmp_path: Path, encoded: bool) -> None:
        """If the upstream refuses a merged request for good, then each batch's part is kept as a dead
        letter with its own records and pack id (built again from the spool when it came encoded), and
        delivery goes on."""
        store = self.spool(tmp_path / "spool", 3, 1, 1)
        sink = MergingSink([SendOutcome("permanent", "PostBodyInvalid")])
        run_until_done(self.make(sink, tmp_path, encoded=encoded), store, 3)
        assert len(sink.sent) == 1
        assert sink.sent[0].payload == (b"message 0+message 1+message 2" if encoded else None)
        kept = sorted((tmp_path / "dead" / "fake").glob("*.ndjson"))
        assert len(kept) == 3
        messages = [json.loads(path.read_text().splitlines()[1])["fields"]["msg"] for path in kept]
        assert sorted(messages) == ["message 0", "message 1", "message 2"]
        assert store.cursor("fake") == 3
