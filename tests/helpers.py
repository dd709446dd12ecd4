"""Helpers shared by the tests: fixtures on disk, chunked replays, generated filters."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from formats.framing import StreamDeframer
from receiver.deliver.building import BatchBuilder, Built, Segments, SinkPlan

WIRE_SAMPLES = Path(__file__).parent / "fixtures" / "wire-samples"


def wire_sample(name: str) -> bytes:
    """The bytes of one captured TCP connection (``*.bin``)."""
    return (WIRE_SAMPLES / name).read_bytes()


def wire_datagrams(name: str) -> list[bytes]:
    """The datagrams of a UDP capture (``*.records``: ``<len>\\n<payload>\\n`` each)."""
    data = (WIRE_SAMPLES / name).read_bytes()
    out = []
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        n = int(data[pos:nl])
        out.append(data[nl + 1 : nl + 1 + n])
        pos = nl + 1 + n + 1
    return out


def chunks(data: bytes, size: int) -> Iterable[bytes]:
    """``data`` cut into pieces of ``size`` bytes."""
    return (data[i : i + size] for i in range(0, len(data), size))


def deframe(data: bytes | Iterable[bytes], **options: object) -> tuple[list[bytes], StreamDeframer]:
    """Every frame of a stream fed whole (bytes) or in the given pieces, and the deframer."""
    deframer = StreamDeframer(**options)  # type: ignore[arg-type]
    frames: list[bytes] = []
    for piece in [data] if isinstance(data, bytes) else data:
        frames += deframer.feed(piece)
    frames += deframer.finish()
    return frames, deframer


@st.composite
def filter_expressions(draw: st.DrawFn, terms: st.SearchStrategy[str], depth: int = 3) -> str:
    """Filter texts (receiver/filters/expression.py) joining ``terms`` with and, or, not, juxtaposition and parentheses."""
    if depth == 0 or draw(st.booleans()):
        return draw(terms)
    shape = draw(st.sampled_from(["and", "or", "not", "juxta", "paren"]))
    if shape == "not":
        return "not " + draw(filter_expressions(terms, depth - 1))
    if shape == "paren":
        return "(" + draw(filter_expressions(terms, depth - 1)) + ")"
    left, right = draw(filter_expressions(terms, depth - 1)), draw(filter_expressions(terms, depth - 1))
    return f"{left} {'' if shape == 'juxta' else shape + ' '}{right}"


def encoding_builders(builder: BatchBuilder, plan: SinkPlan) -> dict[str, Any]:
    """A SinkWorker's ``build_batch`` (groups encoded, as a worker process makes them) and ``rebuild``
    (groups of records) for ``plan``, both done at once in the calling thread."""

    def build_batch(first: int, segments: Segments) -> Future[Built]:
        future: Future[Built] = Future()
        future.set_result(builder.build(plan, first, segments, encode=True))
        return future

    def rebuild(first: int, segments: Segments) -> Built:
        return builder.build(plan, first, segments)

    return {"build_batch": build_batch, "rebuild": rebuild}
