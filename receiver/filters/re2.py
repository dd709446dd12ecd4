"""Python's regular expressions written for re2, ClickHouse's regex engine, with Python's meaning.

:func:`re2_search` re-writes a pattern from Python's own parse of it, with
every character class listed as the code points Python's ``re`` takes (``\\d``,
``\\w`` and case folding under ``(?i)`` differ between the engines). What re2
cannot say (backreferences, lookaround, Unicode ``\\b`` away from the ends) is
left out, which gives a superset; the caller (:mod:`receiver.filters.sql`)
then knows the SQL is not exact.
"""

from __future__ import annotations

import array
import functools
import importlib
import itertools
import re
import sys
import warnings
from typing import Any, Final, TypeAlias

__all__ = [
    "SURROGATE",
    "Ranges",
    "all_characters",
    "python_class",
    "re2_class",
    "re2_glob",
    "re2_search",
    "union",
]

SURROGATE: Final = re.compile("[\ud800-\udfff]")
"""A lone surrogate: no stored value holds one (rows are UTF-8)."""


_sre_parser: Any = importlib.import_module("re._parser")
_sre: Any = importlib.import_module("re._constants")

_RE2_MAX_REPEAT: Final = 1000
"""re2 refuses counts above this, and nested counts whose product is above it."""
_RE2_MAX_COST: Final = 150_000
"""Class ranges times repetition: beyond it re2 may run out of its memory budget (the query fails)."""
_RE2_NOTHING: Final = "[^\\x{0}-\\x{10ffff}]"
_CATEGORIES: Final = {
    _sre.CATEGORY_DIGIT: "\\d",
    _sre.CATEGORY_NOT_DIGIT: "\\D",
    _sre.CATEGORY_SPACE: "\\s",
    _sre.CATEGORY_NOT_SPACE: "\\S",
    _sre.CATEGORY_WORD: "\\w",
    _sre.CATEGORY_NOT_WORD: "\\W",
}
Ranges: TypeAlias = tuple[tuple[int, int], ...]


class _Untranslatable(Exception):
    """Python regex syntax this translation does not know (it then gives up: any value may match)."""


@functools.cache
def all_characters() -> str:
    """Every code point but the surrogates (which no stored value holds), in order."""
    points = array.array("I", itertools.chain(range(0xD800), range(0xE000, 0x110000)))
    return points.tobytes().decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be")


@functools.lru_cache(maxsize=4096)
def python_class(spec: str, flags: int) -> Ranges:
    """The code points Python's re matches with the one-character pattern ``spec`` under ``flags``."""
    modes = ("i" if flags & re.IGNORECASE else "") + ("a" if flags & re.ASCII else "")
    everything = all_characters()
    ranges: list[tuple[int, int]] = []
    for run in re.finditer(f"(?{modes})(?:{spec})+" if modes else f"(?:{spec})+", everything):
        first, last = ord(everything[run.start()]), ord(everything[run.end() - 1])
        if first < 0xD800 < last:  # a run across the surrogates' gap
            ranges += [(first, 0xD7FF), (0xE000, last)]
        else:
            ranges.append((first, last))
    return tuple(ranges)


def _re2_char(cp: int) -> str:
    c = chr(cp)
    if cp < 0x80:
        if c.isalnum():
            return c
        return "\\" + c if c.isprintable() and c != " " else f"\\x{{{cp:x}}}"
    return c if c.isprintable() else f"\\x{{{cp:x}}}"


def re2_class(ranges: Ranges, *, negate: bool = False) -> str:
    if not ranges:
        return "(?s:.)" if negate else _RE2_NOTHING
    if not negate and len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _re2_char(ranges[0][0])
    body = "".join(
        _re2_char(a) if a == b else f"{_re2_char(a)}-{_re2_char(b)}" for a, b in ranges
    )
    return f"[{'^' if negate else ''}{body}]"


def _re2_literal(text: str) -> str:
    return "".join(_RE2_NOTHING if SURROGATE.match(c) else _re2_char(ord(c)) for c in text)


def re2_glob(pattern: str) -> str:
    """:func:`receiver.filters.values.glob_regex` for re2: the whole value, ``*`` any run, ``?`` any one character."""
    body = "".join(
        "(?s:.*)" if part == "*" else "(?s:.)" if part == "?" else _re2_literal(part)
        for part in re.split(r"([*?])", pattern)
        if part
    )
    return f"\\A{body}\\z"


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        low, high = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if low <= high:
            out.append((low, high))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def union(*sets: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    for low, high in sorted(r for s in sets for r in s):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def re2_search(pattern: str) -> tuple[str | None, str | None]:
    """``re.search(pattern, value)`` for re2: (superset, subset) patterns, equal when exact.

    None as the superset means "any value"; as the subset, "no value" (the
    pattern was too large for re2, or used syntax it does not know).
    """
    writer = _Re2Writer()
    try:
        with warnings.catch_warnings():  # re warned (if it had to) when the filter was parsed
            warnings.simplefilter("ignore")
            parsed = _sre_parser.parse(pattern)
        text = writer.sequence(list(parsed.data), parsed.state.flags, head=True, tail=True, repeat=1)
    except (_Untranslatable, re.error, RecursionError):
        return None, None
    if writer.cost > _RE2_MAX_COST:
        return None, None
    return text, (text if writer.exact else None)


class _Re2Writer:
    """Writes one parsed Python pattern as re2 text; ``exact`` turns False where it wrote a superset."""

    def __init__(self) -> None:
        self.exact = True
        self.cost = 0

    def loose(self, superset: str) -> str:
        self.exact = False
        return superset

    def sequence(self, items: list[tuple[Any, Any]], flags: int, *, head: bool, tail: bool, repeat: int) -> str:
        out = []
        for i, (op, av) in enumerate(items):
            first, last = head and i == 0, tail and i == len(items) - 1
            if op is _sre.AT and av in (_sre.AT_BOUNDARY, _sre.AT_NON_BOUNDARY) and not flags & re.ASCII:
                out.append(self.unicode_boundary(av, items, i, flags, first=first, last=last))
            else:
                out.append(self.item(op, av, flags, head=first, tail=last, repeat=repeat))
        return "".join(out)

    def item(self, op: Any, av: Any, flags: int, *, head: bool, tail: bool, repeat: int) -> str:
        if op is _sre.ANY:
            self.cost += repeat
            return "(?s:.)" if flags & re.DOTALL else "[^\\n]"
        if op in (_sre.LITERAL, _sre.NOT_LITERAL, _sre.IN):
            ranges = self.characters(op, av, flags)
            self.cost += (len(ranges) + 1) * repeat
            return re2_class(ranges)
        if op is _sre.BRANCH:
            alternatives = [
                self.sequence(list(alt.data), flags, head=head, tail=tail, repeat=repeat) for alt in av[1]
            ]
            return "(?:" + "|".join(alternatives) + ")"
        if op is _sre.SUBPATTERN:
            _, add, remove, sub = av
            inner_flags = (flags | add) & ~remove
            return "(?:" + self.sequence(list(sub.data), inner_flags, head=head, tail=tail, repeat=repeat) + ")"
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            if op is _sre.POSSESSIVE_REPEAT:
                self.exact = False  # a possessive repeat only refuses matches the greedy one finds
            return self.repeat(av, flags, repeat)
        if op is _sre.AT:
            return self.anchor(av, flags, tail=tail)
        if op is _sre.ATOMIC_GROUP:
            self.exact = False  # likewise
            return "(?:" + self.sequence(list(av.data), flags, head=False, tail=False, repeat=repeat) + ")"
        if op in (_sre.ASSERT, _sre.ASSERT_NOT):
            return self.loose("")
        if op is _sre.GROUPREF:
            return self.loose("(?s:.*)")
        if op is _sre.GROUPREF_EXISTS:
            _, yes, no = av
            branches = [self.sequence(list(yes.data), flags, head=False, tail=False, repeat=repeat)]
            if no is not None:
                branches.append(self.sequence(list(no.data), flags, head=False, tail=False, repeat=repeat))
            return self.loose("(?:" + "|".join(branches) + ("|)" if no is None else ")"))
        raise _Untranslatable(str(op))

    def characters(self, op: Any, av: Any, flags: int) -> Ranges:
        if op is _sre.LITERAL and not flags & re.IGNORECASE:
            return () if 0xD800 <= av <= 0xDFFF else ((av, av),)
        if op is _sre.LITERAL:
            return python_class(f"\\U{av:08x}", flags & (re.IGNORECASE | re.ASCII))
        if op is _sre.NOT_LITERAL:
            return python_class(f"[^\\U{av:08x}]", flags & (re.IGNORECASE | re.ASCII))
        parts = []
        for kind, value in av:
            if kind is _sre.NEGATE:
                parts.append("^")
            elif kind is _sre.LITERAL:
                parts.append(f"\\U{value:08x}")
            elif kind is _sre.RANGE:
                parts.append(f"\\U{value[0]:08x}-\\U{value[1]:08x}")
            elif kind is _sre.CATEGORY and value in _CATEGORIES:
                parts.append(_CATEGORIES[value])
            else:
                raise _Untranslatable(str(kind))
        return python_class("[" + "".join(parts) + "]", flags & (re.IGNORECASE | re.ASCII))

    def repeat(self, av: Any, flags: int, repeat: int) -> str:
        low, high, sub = av
        unbounded = high == _sre.MAXREPEAT
        counted = (low, high) not in ((0, _sre.MAXREPEAT), (1, _sre.MAXREPEAT), (0, 1))
        count = (low if unbounded else high) if counted else 1
        if counted and (low > _RE2_MAX_REPEAT or (not unbounded and high > _RE2_MAX_REPEAT)
                        or repeat * max(count, 1) > _RE2_MAX_REPEAT):
            self.exact = False  # "at least low, or none" stands for a count re2 refuses
            inner = self.sequence(list(sub.data), flags, head=False, tail=False, repeat=repeat)
            return f"(?:{inner})" + ("*" if low == 0 else "+")
        inner = self.sequence(list(sub.data), flags, head=False, tail=False, repeat=repeat * max(count, 1))
        if (low, high) == (0, _sre.MAXREPEAT):
            suffix = "*"
        elif (low, high) == (1, _sre.MAXREPEAT):
            suffix = "+"
        elif (low, high) == (0, 1):
            suffix = "?"
        elif unbounded:
            suffix = f"{{{low},}}"
        elif low == high:
            suffix = f"{{{low}}}"
        else:
            suffix = f"{{{low},{high}}}"
        return f"(?:{inner}){suffix}"

    def anchor(self, at: Any, flags: int, *, tail: bool) -> str:
        multiline = flags & re.MULTILINE
        if at is _sre.AT_BEGINNING:
            return "(?m:^)" if multiline else "\\A"
        if at is _sre.AT_BEGINNING_STRING:
            return "\\A"
        if at is _sre.AT_END_STRING:
            return "\\z"
        if at is _sre.AT_END:
            if multiline:
                return "(?m:$)"
            # Python's $ also stands before a final newline; taking it is the same at the end.
            return "(?:\\n?\\z)" if tail else self.loose("")
        if at is _sre.AT_BOUNDARY:
            return "\\b"  # ASCII (Unicode ones go to unicode_boundary): re2's \b is the same
        if at is _sre.AT_NON_BOUNDARY:
            return "\\B"
        raise _Untranslatable(str(at))

    def unicode_boundary(self, at: Any, items: list[tuple[Any, Any]], i: int, flags: int, *,
                         first: bool, last: bool) -> str:
        """Python's Unicode \\b or \\B, which re2 lacks: written as the character beside it, at an end.

        At the start of the pattern the next item decides what the character
        before must be (and is taken, which a search allows there); at the
        end, the one before decides what follows. Elsewhere it is left out.
        """
        word = python_class("\\w", 0)
        boundary = at is _sre.AT_BOUNDARY
        for at_end, neighbour in ((False, i + 1), (True, i - 1)):
            if (last if at_end else first) and 0 <= neighbour < len(items):
                op, av = items[neighbour]
                if op not in (_sre.LITERAL, _sre.NOT_LITERAL, _sre.IN):
                    continue
                beside = self.characters(op, av, flags)
                if _intersect(beside, word) == beside:
                    beside_is_word = True
                elif not _intersect(beside, word):
                    beside_is_word = False
                else:
                    continue
                self.cost += len(word)
                if boundary == beside_is_word:  # the other side must be a non-word character or the end
                    edge = "\\z" if at_end else "\\A"
                    return f"(?:{edge}|{re2_class(word, negate=True)})"
                return re2_class(word)
        return self.loose("")


