"""Groups built from columns: a batch's streamlog and syslog lines as rows of Arrow columns, never as records.

:func:`build_column_groups` makes of a batch the groups
:func:`receiver.deliver.batches.build_groups` makes, with the same names and
tags, each holding rows of the batch's chunks instead of records; a sink's
:class:`~receiver.deliver.batches.ColumnEncoder` then encodes a group from
:class:`BatchColumns`. Only worker processes of sinks that encode from
columns load this (and Arrow with it).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from formats.record import Record
from formats.rfc5424_columns import Rfc5424Columns
from formats.streamlog import STREAMLOG_TAG
from formats.streamlog_columns import StreamlogColumns
from receiver.deliver.batches import Group, Grouping, Router, hostname_field, name_and_tag

__all__ = ["BatchColumns", "ColumnChunk", "LayoutParts", "Part", "RecordRows", "build_column_groups"]


@dataclasses.dataclass(frozen=True, slots=True)
class BatchColumns:
    """What a :class:`ColumnEncoder` prepares: columns of a batch's chunks laid one after the other."""

    columns: dict[str, pa.Array]
    starts: list[int]
    """Each chunk's first row in ``columns``."""

    @classmethod
    def of(
        cls, chunks: Sequence[Part | LayoutParts], columns_of: Callable[[Part], dict[str, pa.Array] | None],
    ) -> BatchColumns | None:
        """What ``columns_of`` makes of each of a batch's chunks, one chunk after the other (a sink's
        ``prepare``; a chunk of several layouts is made a part at a time); None for no chunk, or when
        it makes nothing of one (the batch is then built from records)."""
        made = []
        for chunk in chunks:
            columns = chunk.columns_by(columns_of) if isinstance(chunk, LayoutParts) else columns_of(chunk)
            if columns is None:
                return None
            made.append(columns)
        if not made:
            return None
        starts = list(itertools.accumulate((len(chunk) for chunk in chunks[:-1]), initial=0))
        if len(made) == 1:
            return cls(dict(made[0]), starts)
        return cls({name: pa.concat_arrays([columns[name] for columns in made]) for name in made[0]}, starts)

    def in_group_order(self, groups: Sequence[Group]) -> BatchColumns:
        """These columns with ``groups``' rows laid out one group after the other, and each group's
        ``rows`` pointed at its own run of them, so that :meth:`rows_of` slices instead of picking.

        A relay's lines alternate between senders, so a batch of one peer's lines makes a group a
        sender, each picking its rows from every column: with a hundred senders that was most of
        the local store's encoding. Here each column is picked from once for the whole batch.
        """
        if all(len(group.rows) == 1 and _is_run(group.rows[0][1]) for group in groups):
            return self  # each group's rows are one run already (one sender, or a sender a chunk)
        starts = self.starts
        picks = pa.array(itertools.chain.from_iterable(
            _absolute(starts[chunk], rows) for group in groups for chunk, rows in group.rows
        ), pa.int64())
        at = 0
        for group in groups:
            group.rows = [(0, range(at, at + group.record_count))]
            at += group.record_count
        return BatchColumns({name: array.take(picks) for name, array in self.columns.items()}, [0])

    def rows_of(self, group: Group) -> dict[str, pa.Array]:
        """Each column's rows of ``group``, in order: a slice of each, once :meth:`in_group_order` has
        laid the batch's groups out (ValueError for a group whose rows are not one run)."""
        (chunk, rows), *others = group.rows
        if others or not isinstance(rows, range) or rows.step != 1:
            raise ValueError(f"group {group.pack_id}: its rows are not one run (lay the batch out in group order)")
        start = self.starts[chunk] + rows.start
        return {name: array.slice(start, len(rows)) for name, array in self.columns.items()}


def _is_run(rows: Sequence[int]) -> bool:
    return isinstance(rows, range) and rows.step == 1


def _absolute(start: int, rows: Sequence[int]) -> Iterable[int]:
    """A chunk's ``rows`` as rows of the batch's columns, where the chunk's first is ``start``."""
    if _is_run(rows):
        assert isinstance(rows, range)
        return range(start + rows.start, start + rows.stop)
    return (start + row for row in rows)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordRows:
    """Frames that could not be read as columns (syslog, flagged, odd lines), parsed one by one: a
    chunk's rows as records, with the columns grouping needs."""

    records: list[Record]
    source: pa.StringArray
    tag: pa.StringArray
    """The streamlog tag, null for a record without one."""
    frame_bytes: pa.Int32Array

    @classmethod
    def of(cls, records: list[Record], frames: Sequence[bytes]) -> RecordRows:
        return cls(
            records,
            pa.array([record.source for record in records], pa.string()),
            pa.array([record.tags.get(STREAMLOG_TAG) for record in records], pa.string()),
            pa.array([len(frame) for frame in frames], pa.int32()),
        )

    def __len__(self) -> int:
        return len(self.records)


Part = StreamlogColumns | Rfc5424Columns | RecordRows
"""Rows of one layout read as columns, or frames parsed as records."""


@dataclasses.dataclass(frozen=True, slots=True)
class LayoutParts:
    """A chunk whose rows are of several layouts (a sender's kernel lines without a pid among sshd's
    with one, RFC 5424 lines with SD among others without, and the frames parsed as records), a part each: each part's rows, where they are in the
    chunk, and the columns grouping needs for the whole chunk, in its order."""

    parts: tuple[Part, ...]
    positions: tuple[pa.Int64Array, ...]
    """Each part's rows' places in the chunk, ascending; together every row once."""
    order: pa.Int64Array
    """For each row of the chunk, its row in the parts laid one after the other."""
    source: pa.StringArray
    tag: pa.StringArray
    frame_bytes: pa.Int32Array

    @classmethod
    def of(cls, parts: Sequence[tuple[Part, pa.Int64Array]]) -> LayoutParts:
        # Where each row of the parts laid end to end belongs is a permutation; sorting by it inverts it.
        order = pc.sort_indices(pa.concat_arrays([positions for _, positions in parts]))
        chunk = [part for part, _ in parts]
        return cls(
            tuple(chunk), tuple(positions for _, positions in parts), order,
            *(pa.concat_arrays([getattr(part, name) for part in chunk]).take(order)
              for name in ("source", "tag", "frame_bytes")),
        )

    def columns_by(self, columns_of: Callable[[Part], dict[str, pa.Array] | None]) -> dict[str, pa.Array] | None:
        """What ``columns_of`` makes of each part, in the chunk's order; None if it makes nothing of one."""
        made = []
        for part in self.parts:
            columns = columns_of(part)
            if columns is None:
                return None
            made.append(columns)
        return {name: pa.concat_arrays([columns[name] for columns in made]).take(self.order) for name in made[0]}

    def part_of(self, row: int) -> tuple[Part, int]:
        """The part holding the chunk's ``row``, and the row's place in it."""
        at = self.order[row].as_py()
        for part in self.parts:
            if at < len(part):
                return part, at
            at -= len(part)
        raise IndexError(row)

    def __len__(self) -> int:
        return len(self.order)


@dataclasses.dataclass(frozen=True, slots=True)
class ColumnChunk:
    """The frames of consecutive spool entries from one peer, read into columns (or, where they cannot
    be, parsed as records): what :func:`build_column_groups` groups."""

    columns: Part | LayoutParts
    peer: str
    entry_starts: list[int]
    """The first row of each entry."""
    receive_times_ns: list[int]
    """When each entry was received."""

    def receive_time_ns(self, row: int) -> int:
        """When the entry holding ``row`` was received."""
        return self.receive_times_ns[bisect.bisect_right(self.entry_starts, row) - 1]


def _rows_by_key(
    columns: Part | LayoutParts, destinations: Mapping[str | None, str | None]
) -> list[tuple[str | None, str, Sequence[int]]]:
    """A chunk's rows by group key (destination, from the tag, and source), in order, the keys in the
    order of their first row."""
    if len(destinations) == 1 and pc.count_distinct(columns.source).as_py() == 1:
        return [(next(iter(destinations.values())), columns.source[0].as_py(), range(len(columns)))]
    # One number a key, then a stable sort by it: each key's rows in order, in C.
    tags = pc.dictionary_encode(columns.tag)
    sources = pc.dictionary_encode(columns.source)
    numbered: dict[str | None, int] = {}
    destination_of_tag = [
        numbered.setdefault(destinations.get(tag), len(numbered)) for tag in (*tags.dictionary.to_pylist(), None)
    ]  # (the last for records without a tag, whose index is null)
    width = len(sources.dictionary)
    tag_index = pc.fill_null(tags.indices, len(destination_of_tag) - 1)
    key_ids = pc.add(
        pc.multiply(pc.take(pa.array(destination_of_tag, pa.int64()), tag_index), width),
        pc.cast(sources.indices, pa.int64()),
    )
    order = pc.array_sort_indices(key_ids)
    runs = pc.run_end_encode(pc.take(key_ids, order))
    rows_in_order = order.to_pylist()
    destination_names, source_names = list(numbered), sources.dictionary.to_pylist()
    found = []
    start = 0
    for end, key_id in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
        rows = rows_in_order[start:end]
        found.append((rows[0], destination_names[key_id // width], source_names[key_id % width], rows))
        start = end
    found.sort(key=lambda key: key[0])
    return [(destination, source, rows) for _, destination, source, rows in found]


def build_column_groups(chunks: Sequence[ColumnChunk], grouping: Grouping, *, router: Router) -> list[Group]:
    """The groups :func:`build_groups` makes of the same entries, when every entry is a chunk and no
    route has a filter: the same groups, names and tags, with ``rows`` instead of ``records``.

    A chunk's rows are taken a group key (destination, source, peer) at a
    time, many rows at once, by build_groups' own rule: a group closes when it
    holds ``max_records`` or the next row would take it past ``max_bytes``, and
    a new group takes its first row whatever its size. Groups are then put in
    the order build_groups leaves them in (closed ones by the row that closed
    them, then the open ones by when their key first came), and a test holds
    the two functions to the same groups.
    """
    sink, max_records, max_bytes = grouping.sink, grouping.max_records, grouping.max_bytes
    open_groups: dict[tuple[str, str, str], Group] = {}
    closed: list[tuple[tuple[int, int], Group]] = []
    receive_s: dict[int, int] = {}
    for index, chunk in enumerate(chunks):
        columns = chunk.columns
        peer = chunk.peer
        destinations: dict[str | None, str | None] = {}
        for counted in pc.value_counts(columns.tag).to_pylist():
            route = router.route_tag(counted["values"], counted["counts"])
            destinations[counted["values"]] = route.destination if route.sink == sink and not route.drop else None
        sizes = columns.frame_bytes.to_pylist()
        for destination, source, rows in _rows_by_key(columns, destinations):
            if destination is None:
                continue
            key = (destination, source, peer)
            group = open_groups.get(key)
            at = 0
            while at < len(rows):
                row = rows[at]
                if group is None or group.record_count >= max_records or group.raw_bytes + sizes[row] > max_bytes:
                    if group is not None:
                        closed.append(((index, row), group))
                    received = chunk.receive_time_ns(row)
                    group = Group(destination, source, peer, [], [], "", receive_time_ns=received)
                    open_groups[key] = group  # (a key keeps its place: the first group's)
                    receive_s[id(group)] = received // 1_000_000_000
                room = rows[at : at + max_records - group.record_count]
                sums = list(itertools.accumulate((sizes[r] for r in room), initial=group.raw_bytes))
                taken = max(bisect.bisect_right(sums, max_bytes) - 1, 1)  # a new group's first row always fits
                group.rows.append((index, room[:taken]))
                group.record_count += taken
                group.raw_bytes = sums[taken]
                at += taken
    closed.sort(key=lambda item: item[0])
    done = [group for _, group in closed]
    done.extend(open_groups.values())

    def first_hostname(group: Group) -> str:
        chunk_index, rows = group.rows[0]
        columns, row = chunks[chunk_index].columns, rows[0]
        if isinstance(columns, LayoutParts):
            columns, row = columns.part_of(row)
        if isinstance(columns, RecordRows):
            return hostname_field(columns.records[row])
        return hostname_field(Record(0, 0, columns.keys, columns.values[row].as_py(), "", {}))

    return name_and_tag(done, receive_s, first_hostname, grouping)
