"""From spool entries to the groups a sink sends: parse, route, group, tag.

A *group* is what one upstream request carries: records with the same
destination (logstore, table), source and sending peer, and the tags of
design.md (``__client_ip__``, ``__receive_time__``, ``__hostname__``,
``__user_defined_id__``, ``__machine_group__``, ``__pack_id__``). It maps one
to one onto an SLS LogGroup and onto a batch of rows elsewhere.

Grouping is deterministic: the same segments give the same groups in the
same order with the same pack ids, so a batch resent after a crash inside a
send carries the ``__pack_id__`` the upstream already saw and can drop (the
delivery worker records which segments it sends, so a resent batch holds
the same segments). A sink that merges a stream's groups of consecutive
batches (SLS, HTTP) sends a pack id of the merge's own, :func:`merged_pack_id`;
the worker records the batches it merges too, and a restart merges them alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from formats.parse import ParseFunction
from formats.record import Record
from formats.streamlog import STREAMLOG_TAG
from receiver.config.identity import group_tags
from receiver.spool.reader import SpoolEntry

__all__ = [
    "ColumnEncoder",
    "Group",
    "Grouping",
    "Route",
    "Router",
    "build_groups",
    "entry_records",
    "hostname_field",
    "merged_group",
    "merged_pack_id",
    "name_and_tag",
    "pack_id_prefix",
    "pack_sequence",
    "sender_pack_prefix",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Records a route takes: its streamlog tag (None: any) and filter (None: all), and where they go."""

    sink: str
    destination: str
    """The sink's logstore or table for these records."""
    tag: str | None = None
    matches: Callable[[Record], bool] | None = None
    name: str = ""
    drop: bool = False
    """Records this route takes go nowhere (counted in :attr:`Router.dropped`)."""


class Router:
    """Picks each record's route: the first whose tag and filter match, else the default.

    Like a Logtail syslog config's tag: a streamlog line goes where its tag
    says. A tag no route knows goes to the default route and is counted, never
    dropped. A filter that fails on a record (raises) cannot say whether the
    record is the route's: rather than let it fall through to whichever
    route comes next, the record goes to the default route, counted in
    :attr:`filter_errors` with the failure kept in :attr:`last_filter_error`.
    """

    def __init__(self, routes: Sequence[Route], default: Route) -> None:
        self._default = default
        # Per tag, the routes that can take its records (its own and those for any tag), in the
        # configuration's order: the first that matches wins, as the configuration reads.
        self._untagged = tuple(r for r in routes if r.tag is None)
        tags = {r.tag for r in routes if r.tag is not None}
        self._by_tag: dict[str, tuple[Route, ...]] = {
            tag: tuple(r for r in routes if r.tag in (None, tag)) for tag in tags
        }
        self.unknown_tags = 0
        """Records whose streamlog tag no route names, when some route names tags (they go to
        the default route)."""
        self.dropped = 0
        """Records a dropping route took."""
        self.filter_errors = 0
        """Records a route's filter failed on (they went to the default route)."""
        self.last_filter_error: str | None = None
        """The latest of those failures: the route and the exception."""

    @property
    def uses_filters(self) -> bool:
        """Whether some route has a filter (then only a record can say where it goes)."""
        return any(r.matches is not None for r in (*self._untagged, *(r for rs in self._by_tag.values() for r in rs)))

    def route_tag(self, tag: str | None, count: int) -> Route:
        """Where ``count`` records with streamlog tag ``tag`` go when no route has a filter, counted as
        :meth:`route` counts them."""
        candidates = self._untagged
        if tag is not None:
            known = self._by_tag.get(tag)
            if known is not None:
                candidates = known
            elif self._by_tag:
                self.unknown_tags += count
        if not candidates:
            return self._default
        route = candidates[0]
        if route.drop:
            self.dropped += count
        return route

    def route(self, record: Record) -> Route:
        tag = record.tags.get(STREAMLOG_TAG)
        candidates = self._untagged
        if tag is not None:
            known = self._by_tag.get(tag)
            if known is not None:
                candidates = known
            elif self._by_tag:  # only counted when routing by tag is in use at all
                self.unknown_tags += 1
        for route in candidates:
            if route.matches is not None:
                try:
                    matched = route.matches(record)
                except Exception as e:
                    self.filter_errors += 1
                    self.last_filter_error = f"route {route.name or route.sink!r}: {type(e).__name__}: {e}"
                    return self._default
                if not matched:
                    continue
            if route.drop:
                self.dropped += 1
            return route
        return self._default


@dataclasses.dataclass(slots=True)
class Group:
    """The records of one upstream request, with their group's identity."""

    destination: str
    source: str
    client_ip: str
    records: list[Record]
    tags: list[tuple[str, str]]
    pack_id: str
    raw_bytes: int = 0
    """Frame bytes of the records (to bound request sizes)."""
    payload: bytes | None = None
    """The sink's encoding of the records, when a worker process made it; ``records`` is then
    empty (they stay in that process) and ``record_count`` says how many there were."""
    record_count: int = 0
    receive_time_ns: int = 0
    """When the group's first frame was received (for receipt-to-acknowledged latency)."""
    rows: list[tuple[int, Sequence[int]]] = dataclasses.field(default_factory=list)
    """A group built from columns (:func:`receiver.deliver.column_groups.build_column_groups`): its records as rows of the
    batch's chunks, (chunk index, rows in order: a range or a list); ``records`` is then
    empty and ``record_count`` says how many there are."""

    @property
    def count(self) -> int:
        """How many records the group carries."""
        return self.record_count if self.payload is not None or self.rows else len(self.records)


def pack_id_prefix(spool_id: str, sink: str) -> str:
    """16 hex digits naming this spool and sink: what each sender's pack-id prefix is made from."""
    return hashlib.sha1(f"{spool_id}/{sink}".encode()).hexdigest()[:16].upper()


def sender_pack_prefix(pack_prefix: str, client_ip: str) -> str:
    """The pack-id prefix of one sender's groups: 16 hex digits.

    Logtail writes ``__pack_id__`` as ``PREFIX-SEQ``: one prefix per stream
    of logs (a file it tails) and SEQ, in hex, increasing pack after pack, so
    the Log Service console shows a line's context as the lines of the packs
    with the same prefix before and after it. A sender is our stream.
    """
    return hashlib.sha1(f"{pack_prefix}/{client_ip}".encode()).hexdigest()[:16].upper()


def pack_sequence(first_seq: int, index: int) -> int:
    """The number of a batch's ``index``-th group: increasing pack after pack, the same on every resend.

    Batches start at increasing segment numbers, and a batch has fewer than
    2**32 groups (they are made of at most a few MiB of frames).
    """
    return (first_seq << 32) | index


def merged_pack_id(first: str, parts: int) -> str | None:
    """The pack id of one request merging ``parts`` consecutive groups of a stream, the first of which
    is ``first``: its number with bit 31 set and ``parts`` in bits 24-30. None when that cannot be told
    apart (a group index of 2**24 or more, more than 127 parts): send the groups one by one.

    Never a single group's pack id, nor that of a merge of another length: an upstream that drops
    a pack id it has seen (an HTTP collector's Idempotency-Key, say) would otherwise drop, after a
    crash, a merge that holds more than what it saw. A merge's parts are the stream's next ``parts``
    groups from ``first``, so the same id is always the same records.
    """
    prefix, _, number = first.rpartition("-")
    sequence = int(number, 16)
    if sequence & 0xFFFFFFFF >= 1 << 24 or not 1 < parts < 128:
        return None
    return f"{prefix}-{sequence | 1 << 31 | parts << 24:X}"


def merged_group(
    groups: Sequence[Group], join_payloads: Callable[[list[tuple[str, str]]], bytes | None]
) -> Group | None:
    """One stream's consecutive ``groups`` as one group: their records in order under the first's
    destination, source and tags, with a pack id of the merge's own (:func:`merged_pack_id`, in the
    tags too) and the earliest receive time. Encoded groups give the payload ``join_payloads`` makes
    of theirs for the merged tags; None when it cannot, when some are encoded and some not, or when
    the pack id cannot be told apart (the worker then sends them one by one)."""
    first = groups[0]
    pack_id = merged_pack_id(first.pack_id, len(groups))
    if pack_id is None:
        return None
    tags = [(key, pack_id if key == "__pack_id__" else value) for key, value in first.tags]
    count = sum(g.count for g in groups)
    raw_bytes = sum(g.raw_bytes for g in groups)
    received = min((g.receive_time_ns for g in groups if g.receive_time_ns), default=0)
    if all(g.payload is not None and not g.records for g in groups):
        payload = join_payloads(tags)
        if payload is None:
            return None
        return dataclasses.replace(
            first, payload=payload, records=[], rows=[], record_count=count, raw_bytes=raw_bytes,
            receive_time_ns=received, pack_id=pack_id, tags=tags,
        )
    if all(g.payload is None and not g.rows for g in groups):
        return dataclasses.replace(
            first, records=[r for g in groups for r in g.records], record_count=count, raw_bytes=raw_bytes,
            receive_time_ns=received, pack_id=pack_id, tags=tags,
        )
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class Grouping:
    """How one batch's records become one sink's groups: their bounds, names and tags."""

    sink: str
    hostname: str
    """The appliance's (``__hostname__``)."""
    identities: Sequence[str]
    machine_groups: Callable[[str, str], tuple[str, ...]]
    """The machine groups of a sender: (its address, the host its first record names)."""
    pack_prefix: str
    first_seq: int
    """The batch's first segment (pack ids are numbered from it)."""
    max_records: int
    max_bytes: int


def entry_records(
    entry: SpoolEntry, parse: ParseFunction, frames: Sequence[bytes] | None = None
) -> Iterator[tuple[bytes, Record]]:
    """Each frame of ``entry`` (``frames``, when the caller has made them bytes already) with its record
    (the deframer's flags in front of the parser's)."""
    flags_of = entry.frame_flags
    for i, frame in enumerate(entry.frames if frames is None else frames):
        record = parse(frame, entry.peer, entry.receive_time_ns)
        if flags_of:
            record.with_flags(flags_of.get(i, ()))
        yield frame, record


def build_groups(
    entries: Iterable[SpoolEntry],
    grouping: Grouping,
    *,
    parsers: Mapping[str, ParseFunction],
    default_parser: ParseFunction,
    router: Router,
) -> list[Group]:
    """The groups ``grouping.sink`` sends for ``entries`` (segments from ``grouping.first_seq`` on), in
    arrival order.

    A group holds at most ``max_records`` records and ``max_bytes`` frame
    bytes; records routed to other sinks are left out.
    """
    sink, max_records, max_bytes = grouping.sink, grouping.max_records, grouping.max_bytes
    open_groups: dict[tuple[str, str, str], Group] = {}
    done: list[Group] = []
    receive_s: dict[int, int] = {}  # id(group) -> earliest receive time
    for entry in entries:
        peer = entry.peer
        seconds = entry.receive_time_ns // 1_000_000_000
        for frame, record in entry_records(entry, parsers.get(entry.listener, default_parser)):
            route = router.route(record)
            if route.sink != sink:
                continue
            key = (route.destination, record.source, peer)
            group = open_groups.get(key)
            if group is not None and (len(group.records) >= max_records or group.raw_bytes + len(frame) > max_bytes):
                done.append(group)
                group = None
            if group is None:
                group = Group(route.destination, record.source, peer, [], [], "", receive_time_ns=entry.receive_time_ns)
                open_groups[key] = group
                receive_s[id(group)] = seconds
            group.records.append(record)
            group.raw_bytes += len(frame)
    done.extend(open_groups.values())
    return name_and_tag(done, receive_s, lambda group: hostname_field(group.records[0]), grouping)


def hostname_field(record: Record) -> str:
    """The host a record names itself, for machine groups that match on hostnames."""
    return record.get("_hostname_") or record.get("hostname") or ""


def name_and_tag(
    done: list[Group], receive_s: dict[int, int], first_hostname: Callable[[Group], str], grouping: Grouping
) -> list[Group]:
    """``done`` ordered by first arrival (so delivery follows arrival per sender), named and tagged."""
    pack_prefix, first_seq = grouping.pack_prefix, grouping.first_seq
    order = {id(g): n for n, g in enumerate(done)}
    done.sort(key=lambda g: (receive_s[id(g)], order[id(g)]))
    prefixes: dict[str, str] = {}
    for index, group in enumerate(done):
        prefix = prefixes.get(group.client_ip)
        if prefix is None:
            prefix = prefixes[group.client_ip] = sender_pack_prefix(pack_prefix, group.client_ip)
        group.pack_id = f"{prefix}-{pack_sequence(first_seq, index):X}"
        group.tags = group_tags(
            client_ip=group.client_ip,
            receive_time_s=receive_s[id(group)],
            hostname=grouping.hostname,
            identities=grouping.identities,
            machine_groups=grouping.machine_groups(group.client_ip, first_hostname(group)),
            pack_id=group.pack_id,
        )
    return done


@dataclasses.dataclass(frozen=True, slots=True)
class ColumnEncoder:
    """How a sink encodes a group built from columns (module-level functions: workers are sent them)."""

    prepare: Callable[[Sequence[Any]], Any]
    """What the sink makes of a batch's chunks (lines read as columns, or frames parsed as records: each a
    ``StreamlogColumns``, a ``RecordRows`` or ``LayoutParts`` of them, of receiver/deliver/column_groups.py,
    which this module leaves out of its imports so that Arrow stays out of processes that never build
    from columns)
    before its groups take their rows from it; None when it cannot (the batch is then built from
    records)."""
    encode: Callable[[Group, Any], bytes]
    """A group's payload, given what ``prepare`` made of its batch."""
