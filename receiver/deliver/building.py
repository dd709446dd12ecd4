"""From spool segments to a sink's groups, in the delivery process or in worker processes.

Parsing and encoding cost most of delivery's CPU, and one Python process
uses one core. So every sink has its batches decoded, parsed, grouped and
encoded in a pool of worker processes, several batches at once, while its
sending thread sends them in order: the encoding is the request body (SLS,
HTTP, ClickHouse) or the rows of one insert (the local store).

A worker process holds a :class:`BatchBuilder` made from the configuration
(parsers, routes, identities, machine groups) and gets each task as the
segments' bytes, so nothing but bytes crosses between processes: the
encoded groups come back with their records left behind (``payload`` set,
``records`` empty), a large batch's payloads in a file in shared memory
rather than through the pipe (receiver/deliver/shared_payloads.py).
Building is deterministic, so the sending side can build a batch again
in-process when it needs the records themselves (to keep a rejected group
as a dead letter).

A sink that can encode from columns (:class:`ColumnEncoder`: the local
store, SLS, HTTP) has batches of streamlog lines built without records: the lines are
read a column at a time (formats/streamlog_columns.py), grouped as rows
(receiver/deliver/column_groups.py) and encoded from the columns, at a third of
the cost. RFC 3164 and RFC 5424 lines of the usual shapes are read into
columns too (formats/rfc3164_columns.py, formats/rfc5424_columns.py), a part
per layout (with a pid, without; with SD, without). A sender's frames that
cannot be read so (flagged, odd lines) are parsed as records inside the
batch; a batch whose routes have filters is built from records. Either way
the result is the same.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing
import os
import re
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from formats.parse import Format, ParseFunction
from formats.rfc3164 import Rfc3164Parser
from formats.rfc5424 import Rfc5424Parser
from formats.streamlog import StreamlogParser, format_table
from receiver.config.identity import Identities, MachineGroups, appliance_hostname
from receiver.config.model import Config
from receiver.deliver import shared_payloads
from receiver.deliver.batches import (
    ColumnEncoder,
    Group,
    Grouping,
    Route,
    Router,
    build_groups,
    entry_records,
)
from receiver.deliver.parsing import (
    ParserFactory,
    listener_parsers,
    rfc3164_parser,
    rfc5424_parser,
    streamlog_reads_as_columns,
)
from receiver.deliver.registry import default_destination
from receiver.filters.expression import parse_filter
from receiver.runtime.process import process_running, set_up_process
from receiver.spool.reader import SpoolEntry
from receiver.spool.segment import FrameRun, SegmentError, SegmentFrames, decode_segment

if TYPE_CHECKING:  # (Arrow is loaded only by the processes that build from columns)
    import pyarrow as pa

    from receiver.deliver.column_groups import ColumnChunk, LayoutParts, Part

__all__ = [
    "BatchBuilder",
    "Built",
    "Segments",
    "SinkPlan",
    "build_in_worker",
    "decode_segments",
    "parsers_for",
    "router_for",
    "start_pool",
    "warm_pool",
    "worker_modules",
]

log = logging.getLogger("receiver.deliver")

Segments = Sequence[tuple[int, bytes]]
"""Spool segments as (sequence number, stored bytes)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SinkPlan:
    """What building one sink's groups takes besides the configuration (picklable)."""

    sink: str
    pack_prefix: str
    max_records: int
    max_bytes: int
    encoder: Callable[[Group], bytes] | None = None
    """What the sink sends made of a group (a module-level function or a partial of one, so
    worker processes can be sent it); None builds groups of records in the sending process."""
    column_encoder: ColumnEncoder | None = None
    """The same payloads made from columns, for batches of lines read as columns: no record is made."""


@dataclasses.dataclass(slots=True)
class Built:
    """One batch's groups, and what building it noticed."""

    groups: list[Group]
    damaged: list[tuple[int, str]]
    """Segments that failed their checksum: (sequence number, why). The daemon quarantines them."""
    unknown_tags: int
    """Records whose streamlog tag no route names (they went to the default route)."""
    dropped: int = 0
    """Records a route with ``drop = true`` took."""
    filter_errors: int = 0
    """Records a route's filter failed on (sent to the default route)."""
    last_filter_error: str | None = None


def parsers_for(config: Config) -> tuple[dict[str, ParseFunction], ParseFunction]:
    """One parse function per listener (its format, with the parse profiles that apply to its senders),
    and one for frames of listeners since removed."""
    factory = ParserFactory(
        config.parse.streamlog_formats,
        leading_space=config.parse.streamlog_leading_space,
        strict_rfc5424=config.parse.rfc5424_strict,
    )
    return listener_parsers(
        {listener.name: listener.format for listener in config.listeners},
        config.parse.settings, config.parse.profiles, factory,
    )


def streamlog_parsers_for(config: Config) -> tuple[dict[str, StreamlogParser | None], StreamlogParser | None]:
    """The streamlog parser :func:`parsers_for` gives each listener, and the one for frames of listeners
    since removed: what reads columns of lines. None where lines are not read as columns: a listener that
    reads no streamlog, or whose settings may add fields to a line (a payload grammar)."""
    parser = StreamlogParser(
        format_table(config.parse.streamlog_formats), leading_space=config.parse.streamlog_leading_space
    )
    settings, profiles = config.parse.settings, config.parse.profiles
    by_listener = {
        listener.name: parser
        if listener.format in ("auto", "streamlog") and streamlog_reads_as_columns(listener.name, settings, profiles)
        else None
        for listener in config.listeners
    }
    return by_listener, parser if streamlog_reads_as_columns(None, settings, profiles) else None


def rfc3164_parsers_for(config: Config) -> tuple[dict[str, Rfc3164Parser | None], Rfc3164Parser | None]:
    """The RFC 3164 parser :func:`parsers_for`'s function for each listener hands its RFC 3164 frames to,
    and the one for frames of listeners since removed: what reads them as columns. None where they are
    not read as columns (:func:`receiver.deliver.parsing.rfc3164_parser`)."""
    settings, profiles = config.parse.settings, config.parse.profiles
    by_listener = {
        listener.name: rfc3164_parser(listener.name, listener.format, settings, profiles)
        for listener in config.listeners
    }
    return by_listener, rfc3164_parser(None, "auto", settings, profiles)


Rfc5424Reading = tuple[Rfc5424Parser, bool]
"""The RFC 5424 parser a listener's frames go to, and whether all of them do (format ``rfc5424``) or
only those auto-detection takes for RFC 5424 (``auto``)."""


def rfc5424_parsers_for(config: Config) -> tuple[dict[str, Rfc5424Reading | None], Rfc5424Reading | None]:
    """As :func:`rfc3164_parsers_for`, for RFC 5424 frames
    (:func:`receiver.deliver.parsing.rfc5424_parser`)."""
    settings, profiles, strict = config.parse.settings, config.parse.profiles, config.parse.rfc5424_strict

    def reading(listener: str | None, format: Format) -> Rfc5424Reading | None:
        parser = rfc5424_parser(listener, format, settings, profiles, strict=strict)
        return None if parser is None else (parser, format == "rfc5424")

    return {listener.name: reading(listener.name, listener.format) for listener in config.listeners}, reading(
        None, "auto"
    )


def router_for(config: Config) -> Router:
    sinks = {sink.name: sink for sink in config.sinks}

    def destination(sink_name: str, chosen: str | None) -> str:
        return chosen or default_destination(sinks[sink_name])

    routes = []
    for route in config.routes:
        # evaluate, not matches: the router must see a filter that fails (it sends the record to the default route).
        matches = parse_filter(route.filter).evaluate if route.filter else None
        if route.drop:
            routes.append(Route("", "", route.tag, matches, route.name, drop=True))
        else:
            routes.append(Route(route.sink, destination(route.sink, route.destination), route.tag, matches, route.name))
    default = Route(config.deliver.default_sink, destination(config.deliver.default_sink, None), name="default")
    return Router(routes, default)


def decode_segments(segments: Segments) -> tuple[list[SpoolEntry], list[tuple[int, str]]]:
    """The entries of the intact segments, and the damaged ones with why."""
    entries: list[SpoolEntry] = []
    damaged: list[tuple[int, str]] = []
    for seq, blob in segments:
        try:
            decoded = decode_segment(blob, in_place=True)  # frames read where they lie (FrameRun)
        except SegmentError as e:
            damaged.append((seq, str(e)))
            continue
        entries.extend(
            SpoolEntry(seq, d.receive_time_ns, d.peer, d.port, d.listener, d.transport, d.frames, d.frame_flags)
            for d in decoded
        )
    return entries, damaged


class BatchBuilder:
    """Everything a configuration says about turning frames into groups: parsers, routes, tags."""

    def __init__(self, config: Config) -> None:
        self.parsers, self.default_parser = parsers_for(config)
        self.router = router_for(config)
        self.identities = Identities(config.identity.user_defined_id_file, clock=time.monotonic)
        self.machine_groups = MachineGroups(config.machine_groups)
        self.hostname = appliance_hostname()
        self.streamlog_parsers, self.default_streamlog_parser = streamlog_parsers_for(config)
        self.rfc3164_parsers, self.default_rfc3164_parser = rfc3164_parsers_for(config)
        self.rfc5424_parsers, self.default_rfc5424_parser = rfc5424_parsers_for(config)
        self.column_batches = 0
        """Batches built from columns (the others were built from records)."""

    def build(self, plan: SinkPlan, first_seq: int, segments: Segments, *, encode: bool = False) -> Built:
        """The groups ``plan.sink`` sends for ``segments`` (the first is ``first_seq``).

        With ``encode`` (and an encoder) each group carries its payload instead of its records.
        """
        entries, damaged = decode_segments(segments)
        router = self.router
        unknown_before, dropped_before, errors_before = router.unknown_tags, router.dropped, router.filter_errors
        groups = None
        if encode and plan.column_encoder is not None and not router.uses_filters:
            groups = self._build_from_columns(plan, plan.column_encoder, first_seq, entries)
        if groups is not None:
            self.column_batches += 1
            return Built(groups, damaged, router.unknown_tags - unknown_before, router.dropped - dropped_before)
        if not entries:  # the column road let them go before it failed (rare): read the frames again
            entries, _ = decode_segments(segments)
        groups = build_groups(
            entries, self._grouping(plan, first_seq), parsers=self.parsers, default_parser=self.default_parser,
            router=self.router,
        )
        if encode and plan.encoder is not None:
            for group in groups:
                try:
                    payload = plan.encoder(group)
                except Exception as e:  # the sink meets it again in send() and answers it (dead letter)
                    log.warning("%s: group %s kept as records: encoding failed (%s)", plan.sink, group.pack_id, e)
                    continue
                group.payload = payload
                group.record_count = len(group.records)
                group.records = []
        errors = router.filter_errors - errors_before
        return Built(
            groups, damaged, router.unknown_tags - unknown_before, router.dropped - dropped_before,
            errors, router.last_filter_error if errors else None,
        )

    def _grouping(self, plan: SinkPlan, first_seq: int) -> Grouping:
        return Grouping(
            plan.sink, self.hostname, self.identities.current(), self.machine_groups.of, plan.pack_prefix,
            first_seq, plan.max_records, plan.max_bytes,
        )

    def _build_from_columns(
        self, plan: SinkPlan, encoder: ColumnEncoder, first_seq: int, entries: list[SpoolEntry]
    ) -> list[Group] | None:
        """The encoded groups :meth:`build` makes of ``entries``, made from columns (frames that cannot
        be read so are parsed as records and encoded by the sink's ``prepare``); None (nothing counted,
        nothing changed) when the sink cannot encode some of them so.

        ``entries`` is emptied once the sink has the batch's columns: their frames, as many Python
        objects as lines, are not needed to group and encode, when the payloads pile up (the caller
        decodes the segments again in the rare case this then answers None).
        """
        # (Arrow is loaded here only)
        from receiver.deliver.column_groups import BatchColumns, build_column_groups

        # Consecutive entries of one sender and listener are read as one chunk: an entry is one read
        # of a connection (a few hundred lines), and each chunk costs some thirty Arrow calls.
        segments: dict[int, pa.BinaryArray] = {}  # each segment's frames as one Arrow array, made once
        chunks = [
            self._read_chunk(listener, peer, list(same), segments)
            for (listener, peer), same in itertools.groupby(
                (entry for entry in entries if entry.frames), key=lambda entry: (entry.listener, entry.peer)
            )
        ]
        prepared = encoder.prepare([chunk.columns for chunk in chunks])
        if prepared is None:
            return None
        entries.clear()
        router = self.router
        counted = router.unknown_tags, router.dropped
        groups = build_column_groups(chunks, self._grouping(plan, first_seq), router=router)
        if isinstance(prepared, BatchColumns):
            prepared = prepared.in_group_order(groups)
        del chunks  # (what the sink encodes from is in ``prepared``: the chunks' own columns go first)
        try:
            for group in groups:
                group.payload = encoder.encode(group, prepared)
                group.rows = []
        except Exception as e:  # the record path keeps a group it cannot encode as records, for the sink to answer
            log.warning("%s: building from columns failed (%s); building from records", plan.sink, e)
            router.unknown_tags, router.dropped = counted
            return None
        return groups

    def _read_chunk(
        self, listener: str, peer: str, run: Sequence[SpoolEntry], segments: dict[int, pa.BinaryArray]
    ) -> ColumnChunk:
        """The frames of ``run`` (consecutive entries of one sender and listener) as one chunk: read as
        columns where they can be, else parsed as records. ``segments``: the Arrow arrays of the
        batch's segments made so far (:func:`_frames_array`)."""
        import pyarrow.compute as pc

        from formats.streamlog_columns import parse_streamlog_columns
        from receiver.deliver.column_groups import ColumnChunk, RecordRows

        starts = list(itertools.accumulate((len(entry.frames) for entry in run[:-1]), initial=0))
        listed: list[bytes] = []

        def frames() -> list[bytes]:
            """The run's frames as bytes objects, made when some reading needs them (once)."""
            if not listed:
                for entry in run:
                    listed.extend(entry.frames)
            return listed

        parser = self.streamlog_parsers.get(listener, self.default_streamlog_parser)
        parse = self.parsers.get(listener, self.default_parser)
        rfc3164 = self.rfc3164_parsers.get(listener, self.default_rfc3164_parser)
        rfc5424 = self.rfc5424_parsers.get(listener, self.default_rfc5424_parser)
        columns: Part | LayoutParts | None = None
        flagged = any(entry.frame_flags for entry in run)
        binary = _frames_array(run, segments) if not flagged and (parser is not None or rfc5424 is not None) else None
        # An auto listener reads a frame that starts with "<" as syslog, whatever the versions say.
        if parser is not None and not flagged and (
            not any(version.startswith("<") for version in parser.versions) or not (
                pc.any(pc.starts_with(binary, b"<")).as_py() if binary is not None
                else any(f[:1] == b"<" for f in frames())
            )
        ):
            columns = parse_streamlog_columns(parser, frames() if binary is None else binary, peer)
        if columns is None and not flagged and (rfc5424 is not None or rfc3164 is not None):
            received = [entry.receive_time_ns for entry in run for _ in range(len(entry.frames))]
            if rfc5424 is not None:
                columns = _rfc5424_chunk(rfc5424, rfc3164, parse, frames, binary, received, peer)
            if columns is None and rfc3164 is not None:
                columns = _rfc3164_chunk(rfc3164, parse, frames(), received, peer)
        if columns is None:  # these frames are read as the record road reads them
            every = frames()
            records = [
                record for entry, start in zip(run, starts, strict=True)
                for _, record in entry_records(entry, parse, every[start : start + len(entry.frames)])
            ]
            columns = RecordRows.of(records, every)
        return ColumnChunk(columns, peer, starts, [entry.receive_time_ns for entry in run])


def _frames_array(run: Sequence[SpoolEntry], segments: dict[int, pa.BinaryArray]) -> pa.BinaryArray | None:
    """The frames of ``run`` as one Arrow array, read where they lie in their segments' data (no
    object a frame); None when some entry holds them as a list. ``segments``: each segment's
    array by the id of its :class:`~receiver.spool.segment.SegmentFrames`, made here once."""
    import pyarrow as pa

    pieces: list[tuple[pa.BinaryArray, int, int]] = []  # (segment's array, first frame, frames)
    for entry in run:
        frames = entry.frames
        if not isinstance(frames, FrameRun):
            return None
        whole = segments.get(id(frames.segment))
        if whole is None:
            made = _segment_array(frames.segment)
            if made is None:
                return None
            whole = segments[id(frames.segment)] = made
        if pieces and pieces[-1][0] is whole and sum(pieces[-1][1:]) == frames.first:  # the next entry's
            pieces[-1] = (whole, pieces[-1][1], pieces[-1][2] + len(frames))
        else:
            pieces.append((whole, frames.first, len(frames)))
    arrays = [whole.slice(first, count) for whole, first, count in pieces]
    if not arrays:
        return None
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


def _segment_array(segment: SegmentFrames) -> pa.BinaryArray | None:
    """Every frame of a segment as one Arrow array over its data (not copied); None past 2 GiB."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(segment.data) >= 1 << 31:  # (a binary array's offsets are 32-bit)
        return None
    n = len(segment.lengths)
    lengths = pa.Array.from_buffers(pa.uint32(), n, [None, pa.py_buffer(segment.lengths)])
    ends = pc.cumulative_sum(lengths.cast(pa.int64())).cast(pa.int32())
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), ends])
    return pa.BinaryArray.from_buffers(pa.binary(), n, [None, offsets.buffers()[1], pa.py_buffer(segment.data)])


def _rfc3164_chunk(
    parser: Rfc3164Parser, parse: ParseFunction, frames: Sequence[bytes], received: Sequence[int], peer: str
) -> Part | LayoutParts | None:
    """A chunk's RFC 3164 lines of the usual shape read as columns, the other frames parsed by ``parse``
    (the listener's function, which gives RFC 3164 frames to ``parser``), as one part each; None when
    no line reads so. ``received``: each frame's receive time; the frames carry no flags."""
    from receiver.deliver.column_groups import LayoutParts

    parts = _rfc3164_parts(parser, parse, frames, received, range(len(frames)), peer)
    if parts is None:
        return None
    if len(parts) == 1:
        return parts[0][0]  # one part holds every row, in its place already
    return LayoutParts.of(parts)


def _rfc3164_parts(
    parser: Rfc3164Parser | None, parse: ParseFunction, frames: Sequence[bytes], received: Sequence[int],
    rows: Sequence[int], peer: str,
) -> list[tuple[Part, pa.Int64Array]] | None:
    """A chunk's frames ``rows`` (ascending) as parts, each with its rows' places in the chunk: RFC 3164
    lines of the usual shape read as columns by ``parser``, the others parsed by ``parse``; with no
    ``parser``, all of them parsed. None when ``parser`` reads none of them."""
    import pyarrow as pa

    from formats.rfc3164_columns import parse_rfc3164_columns
    from receiver.deliver.column_groups import RecordRows

    parts: list[tuple[Part, pa.Int64Array]] = []
    unread: Sequence[int] = rows
    if parser is not None:
        whole = len(rows) == len(frames)
        read = parse_rfc3164_columns(
            parser, frames if whole else [frames[row] for row in rows], peer,
            received if whole else [received[row] for row in rows],
        )
        if read is None:
            return None
        if whole:
            parts += read.parts
            unread = read.unread
        else:
            at = pa.array(rows, pa.int64())
            parts += [(part, at.take(positions)) for part, positions in read.parts]
            unread = [rows[row] for row in read.unread]
    if unread:
        records = [parse(frames[row], peer, received[row]) for row in unread]
        parts.append((RecordRows.of(records, [frames[row] for row in unread]), pa.array(unread, pa.int64())))
    return parts


_AUTO_RFC5424 = re.compile(rb"<[^>]{0,3}>1 ")
"""What auto-detection (formats/parse.py) gives to the RFC 5424 parser: a frame whose first ``>`` is
at 1..4 and is followed by ``1 `` (a regex, so a chunk is tested by one map in C, or one Arrow call:
Arrow reads a binary array's regex byte by byte, as Python's bytes regexes do)."""
_AUTO_RFC5424_ARROW = "^" + _AUTO_RFC5424.pattern.decode()


def _rfc5424_chunk(
    reading: Rfc5424Reading, rfc3164: Rfc3164Parser | None, parse: ParseFunction,
    listed: Callable[[], list[bytes]], binary: pa.BinaryArray | None, received: Sequence[int], peer: str,
) -> Part | LayoutParts | None:
    """A chunk's frames that ``parse`` gives to the RFC 5424 parser (all of them, or those auto-detection
    takes) read as columns, a part a layout, and the others as :func:`_rfc3164_chunk` reads them; None
    when there are none, or when one would be a record with flags (the chunk then goes the RFC 3164
    way, which parses them as records). ``received``: each frame's receive time; the frames carry no flags.

    ``binary``: the frames as one Arrow array read where they lie, if they could be; when the parser
    takes every frame, the columns are read from it, and ``listed()`` (the frames as bytes objects, a
    Python object a line) is not made."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from formats.rfc5424_columns import parse_rfc5424_columns
    from receiver.deliver.column_groups import LayoutParts

    parser, every = reading
    if every or (binary is not None and pc.all(pc.match_substring_regex(binary, _AUTO_RFC5424_ARROW)).as_py()):
        mine: Sequence[int] = range(len(received))
        others: list[int] = []
    else:
        taken = list(map(_AUTO_RFC5424.match, listed()))
        if all(taken):
            mine, others = range(len(taken)), []
        else:
            mine = [row for row, rfc5424 in enumerate(taken) if rfc5424]
            others = [row for row, rfc5424 in enumerate(taken) if not rfc5424]
            if not mine:
                return None
    if not others:
        read = parse_rfc5424_columns(parser, listed() if binary is None else binary, peer, received)
        if read is None:
            return None
        if len(read) == 1:
            return read[0]  # one layout, every row in its place already
        return LayoutParts.of([(part, part.rows) for part in read])
    frames = listed()
    read = parse_rfc5424_columns(parser, [frames[row] for row in mine], peer, [received[row] for row in mine])
    if read is None:
        return None
    at = pa.array(mine, pa.int64())
    parts: list[tuple[Part, pa.Int64Array]] = [(part, at.take(part.rows)) for part in read]
    found = None if rfc3164 is None else _rfc3164_parts(rfc3164, parse, frames, received, others, peer)
    if found is None:  # no RFC 3164 reader, or it read none of them: all parsed
        found = _rfc3164_parts(None, parse, frames, received, others, peer)
    assert found is not None
    return LayoutParts.of([*parts, *found])


# -- the worker processes --------------------------------------------------------

_worker_builder: BatchBuilder | None = None
_delivery_pid = 0
"""In a worker process: the delivery process it builds for (the reader of its payload files)."""


_KEPT_FREE_BYTES = 32 << 20
"""What a build worker's C allocator keeps of the memory it frees, and the size from which it maps an
allocation of its own (glibc's ``M_TRIM_THRESHOLD`` and ``M_MMAP_THRESHOLD``; glibc's largest)."""


def _init_worker(config: Config, delivery_pid: int, reuse_memory: bool) -> None:
    global _worker_builder, _delivery_pid
    # Ctrl-C and SIGTERM are the delivery process's to handle: it stops the pool when it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    set_up_process(config)
    if reuse_memory:
        _reuse_memory()
    _worker_builder = BatchBuilder(config)
    _delivery_pid = delivery_pid
    _exit_with(delivery_pid)


def _reuse_memory() -> None:
    """Build each batch in the memory the last one freed: Arrow on the C allocator, which keeps up to
    :data:`_KEPT_FREE_BYTES` of what it frees, instead of Arrow's jemalloc, which gave a batch's pages
    back a second later, and glibc's defaults, which map and unmap the larger buffers.

    A build took 0.4 page faults a line (each a fresh page the kernel zeroes and charges), a quarter
    of a worker's CPU under a flood; now 0.01. SLS's build went from 2.84 to 2.08 us a line (one
    process, a 42k-line batch), end to end 265-285k -> 284-299k msgs/s (delivery_bench --sinks sls,
    three rounds alternating, 2026-12-07); a worker holds 25-45 MB more between batches.
    """
    import ctypes

    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"  # for Arrow loaded later, in this worker
    arrow = sys.modules.get("pyarrow")  # loaded already (the forkserver's preload): told directly
    if arrow is not None:
        arrow.set_memory_pool(arrow.system_memory_pool())
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc's; another C library keeps its own ways
    if mallopt is not None:
        m_trim_threshold, m_mmap_threshold = -1, -3
        mallopt(m_trim_threshold, _KEPT_FREE_BYTES)
        mallopt(m_mmap_threshold, _KEPT_FREE_BYTES)


def _exit_with(pid: int) -> None:
    """End this worker as soon as process ``pid`` (the delivery process) has ended, however it ended.

    A pool worker waits on a queue whose writing end it holds itself, so it
    would never see its parent go: after a kill -9 of the delivery process
    the workers (and the forkserver, which lives while they do) would stay
    forever, one set per crash.
    """
    try:
        watched = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel), or it has ended already
        if not process_running(pid):
            os._exit(0)
        return

    def watch() -> None:
        select.select([watched], [], [])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-delivery", daemon=True).start()


def build_in_worker(plan: SinkPlan, first_seq: int, segments: Segments) -> Built:
    """A pool task: :meth:`BatchBuilder.build` with encoding, in a worker process; its payloads cross to
    the delivery process in shared memory (:class:`_SharedBuilt`)."""
    assert _worker_builder is not None, "not a worker process of start_pool"
    built = _worker_builder.build(plan, first_seq, segments, encode=True)
    return _SharedBuilt(**{field.name: getattr(built, field.name) for field in dataclasses.fields(Built)},
                        reader=_delivery_pid)


@dataclasses.dataclass(slots=True)
class _SharedBuilt(Built):
    """A :class:`Built` that, pickled, leaves its payloads in a shared-memory file
    (receiver/deliver/shared_payloads.py) and is unpickled as a plain Built that has them back."""

    reader: int = 0
    """The delivery process, which unpickles it."""

    def __reduce__(self) -> tuple[Callable[..., Built], tuple[Any, ...]]:
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(Built)}
        payloads = [group.payload for group in self.groups if group.payload is not None]
        if sum(len(payload) for payload in payloads) >= shared_payloads.MIN_BYTES:
            name = shared_payloads.write_payloads(payloads, self.reader)
            if name is not None:
                fields["groups"] = [  # b"": a payload to put back, in order
                    dataclasses.replace(group, payload=b"") if group.payload is not None else group
                    for group in self.groups
                ]
                return _built_from_shared, (name, [len(payload) for payload in payloads], fields)
        return _built, (fields,)


def _built(fields: dict[str, Any]) -> Built:
    return Built(**fields)


def _built_from_shared(name: str, sizes: list[int], fields: dict[str, Any]) -> Built:
    payloads = iter(shared_payloads.read_payloads(name, sizes))
    for group in fields["groups"]:
        if group.payload is not None:
            group.payload = next(payloads)
    return Built(**fields)


def start_pool(
    config: Config, workers: int, *, preload: Sequence[str] = (), reuse_memory: bool = True
) -> ProcessPoolExecutor:
    """``workers`` processes that build and encode batches for ``config``, none started yet
    (:func:`warm_pool` starts them); each on allocators that reuse a batch's memory for the next
    (:func:`_reuse_memory`) unless told not to (an operator chose Arrow's allocator).

    forkserver, not fork: the delivery process has threads by the time a
    worker must be replaced, and forking a threaded process can copy a held lock.
    The forkserver imports ``preload`` (:func:`worker_modules`) once, so each
    worker starts with Arrow and the sinks' encoders loaded, sharing their
    pages, instead of importing them (about 0.7 CPU-seconds) on its first batch.
    Loading Arrow starts a native thread in the forkserver (jemalloc's
    background thread), which forks safely: jemalloc takes its locks around a
    fork (pthread_atfork). NumPy's OpenBLAS would start another, for nothing
    here: one BLAS thread means none.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read when the forkserver loads NumPy
    shared_payloads.remove_stale()  # what the workers of a delivery process that died had written
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["receiver.deliver.building", *preload])
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(config, os.getpid(), reuse_memory))


def warm_pool(pool: Executor, workers: int) -> None:
    """Start ``pool``'s ``workers`` processes now, before the first batch waits for them.

    The pool starts a process only for a task that finds none idle, so one
    empty task each starts them all; this returns once they are forked, not
    once they are ready (their initializer runs on its own).
    """
    for _ in range(workers):
        pool.submit(_ready)


def _ready() -> None:
    """The empty task :func:`warm_pool` starts a worker with."""


_COLUMN_ROAD = (
    "formats.streamlog_columns", "formats.rfc3164_columns", "formats.rfc5424_columns", "receiver.deliver.column_groups"
)
"""What building from columns imports (Arrow with it) besides a sink's own encoder."""


def worker_modules(encoders: Sequence[tuple[Callable[[Group], bytes] | None, ColumnEncoder | None]]) -> list[str]:
    """The modules worker processes need for these (payload, column) encoders: where each function
    lives, and the column road's when some sink encodes from columns."""
    modules: dict[str, None] = {}
    for payload, columns in encoders:
        functions = [payload] if columns is None else [payload, columns.prepare, columns.encode]
        for function in functions:
            if function is not None:
                modules[getattr(function, "func", function).__module__] = None  # a partial's function
        if columns is not None:
            modules.update(dict.fromkeys(_COLUMN_ROAD))
    return list(modules)
