"""NDJSON: the body format of the HTTP sink.

One record per line, each the compact JSON of :meth:`Record.to_dict`, so a
line reads the same as ``receiverctl parse`` output and any line-oriented
tool (``jq``, ``grep``, ClickHouse ``JSONEachRow``) can take the body as is.
Text stays UTF-8 rather than ``\\u`` escapes: smaller, and still valid JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from formats.record import Record

__all__ = ["decode_ndjson", "encode_ndjson"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_ndjson(records: Iterable[Record]) -> bytes:
    """The records as NDJSON: one compact object per line, each line ending in LF.

    Lone surrogates (never produced by the parsers) become U+FFFD rather than
    make the body invalid UTF-8.
    """
    dumps = json.dumps
    text = "".join(
        [dumps(r.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n" for r in records]
    )
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode()


def decode_ndjson(data: bytes) -> list[dict[str, Any]]:
    """The objects of an NDJSON body, for tests and tools; blank lines are skipped.

    Lines end at LF only: U+2028 and friends may sit unescaped inside strings.
    Raises :class:`ValueError` (``UnicodeDecodeError``, ``json.JSONDecodeError``,
    or a line that is not an object).
    """
    out: list[dict[str, Any]] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        value = json.loads(line.decode())
        if not isinstance(value, dict):
            raise ValueError(f"line {number} is not a JSON object")
        out.append(value)
    return out
