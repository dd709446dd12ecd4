"""Text from senders, made safe to show to a person: on one line, with nothing a terminal obeys.

A log line is written by whoever sends it. Shown raw, its control
characters (C0 and C1: ESC, CSI...) drive the operator's terminal, a CR or
LF forges lines, and the bidirectional overrides (U+202E...) make text read
differently from what it is. :func:`escape_unprintable` shows every such
character as an escape (``\\x1b``, ``\\u202e``), and leaves everything else,
all scripts included, as it is.
"""

from __future__ import annotations

__all__ = ["escape_unprintable", "escape_unprintable_json"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(c: str) -> str:
    named = _NAMED.get(c)
    if named is not None:
        return named
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def escape_unprintable(text: str) -> str:
    """``text`` with each character that is not printable (``str.isprintable``: controls, format
    characters such as the direction overrides, separators other than the space) as an escape."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def escape_unprintable_json(document: str) -> str:
    """A JSON text with every unprintable character inside its strings as a ``\\uXXXX`` escape.

    The JSON means the same (any character may be escaped in a string), and
    printed it cannot drive a terminal: ``json.dumps(..., ensure_ascii=False)``
    escapes only C0 controls.
    """
    if document.isprintable():
        return document
    out = []
    for c in document:
        if c.isprintable():
            out.append(c)
            continue
        n = ord(c)
        if n < 0x10000:
            out.append(f"\\u{n:04x}")
        else:  # a surrogate pair, as JSON writes characters beyond the BMP
            n -= 0x10000
            out.append(f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}")
    return "".join(out)
