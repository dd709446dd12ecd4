"""How the filter language reads a value: numbers, severities, wildcards, times, word characters.

The grammar checks a comparison with these when it parses it, and the Python
predicate (:mod:`receiver.filters.predicate`) and the ClickHouse SQL
(:mod:`receiver.filters.sql`) both compile from them, so the three agree on
what a value means.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import unicodedata
from collections.abc import Callable
from typing import Final

from formats.columns import severity_number
from receiver.filters.nodes import Comparison

__all__ = [
    "ORDER",
    "SEVERITY_FIELDS",
    "glob_regex",
    "is_word_char",
    "marks_and_private_use",
    "read_number",
    "read_severity",
    "time_seconds",
]

SEVERITY_FIELDS: Final = frozenset({"severity", "_severity_", "syslogseverity"})
"""The fields where a severity name stands for its number (``_severity_<=warning``)."""

ORDER: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
"""The operators that compare numbers, and what each one means."""


def read_severity(text: str) -> int:
    """:func:`formats.columns.severity_number`, but -1 where it raises.

    It takes any Unicode digit for a number and then fails on ``int("¹")``.
    """
    try:
        return severity_number(text)
    except ValueError:
        return -1


_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def read_number(text: str) -> float | None:
    """A decimal number (int when it is one), or None. Never raises."""
    if _NUMBER_RE.fullmatch(text) is None:
        return None
    try:
        return int(text)
    except ValueError:  # a fraction or exponent, or more digits than int() accepts
        return float(text)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Shell-style ``*`` and ``?`` (nothing else is special), matched against the whole value."""
    body = "".join(
        ".*" if part == "*" else "." if part == "?" else re.escape(part)
        for part in re.split(r"([*?])", pattern)
        if part
    )
    return re.compile(body, re.DOTALL)


def time_seconds(c: Comparison) -> float | None:
    """The second that ``time=`` or ``time!=`` names (``time=1795323666.0`` is that second too)."""
    if c.field != "time" or c.wildcard or c.op not in ("=", "!="):
        return None
    return read_number(c.value)


# -- Word characters ------------------------------------------------------------

# What counts as part of a word when deciding whether a term starts or ends
# on a word boundary. FTS5's unicode61 tokenizer keeps letters, digits and
# private-use characters in tokens, and folds combining marks into the letter
# before them ("e" + U+0301 is the token "e"), so a mark glues its
# neighbours together too: "rror" must not be found in "e\u0301rror", or the
# index would disagree with matches().
_PRIVATE_USE: Final = ((0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD))


def is_word_char(c: str) -> bool:
    """Whether ``c`` is part of a word as FTS5's unicode61 tokenizer sees it (see above)."""
    if c.isalnum():
        return True
    category = unicodedata.category(c)
    return category[0] == "M" or category == "Co"


@functools.cache
def marks_and_private_use() -> tuple[tuple[int, int], ...]:
    """The code point ranges of combining marks and private use: the word characters beyond alnum.

    Built on first use (about 30 ms): combining marks live in the first two
    planes and plane 14; private use areas are fixed by Unicode.
    """
    ranges: list[tuple[int, int]] = list(_PRIVATE_USE)
    start = -1
    for cp in itertools.chain(range(0x20000), range(0xE0000, 0xE1000)):
        mark = unicodedata.category(chr(cp))[0] == "M"
        if mark and start < 0:
            start = cp
        elif not mark and start >= 0:
            ranges.append((start, cp - 1))
            start = -1
    return tuple(ranges)

