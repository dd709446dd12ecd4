"""A filter tree compiled into a Python predicate: small closures, run on every routed record.

:func:`compile_predicate` turns the tree once into a tree of closures; the
field readers below find where a field sits once per record layout, so a
record costs a few dictionary lookups and comparisons. It also gathers the
words that every matching message holds (:meth:`Filter.required_words
<receiver.filters.expression.Filter.required_words>`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from typing import Final, TypeAlias, cast

from formats.columns import columns_of, lookup
from formats.record import Record
from formats.streamlog import STREAMLOG_TAG
from receiver.filters.nodes import And, Comparison, FilterNode, Not, TextSearch
from receiver.filters.values import (
    ORDER,
    SEVERITY_FIELDS,
    glob_regex,
    is_word_char,
    marks_and_private_use,
    read_number,
    read_severity,
    time_seconds,
)

__all__ = ["Compiled", "RecordTest", "compile_predicate", "field_reader", "match_all", "message_of", "word_class"]

RecordTest: TypeAlias = Callable[[Record], bool]
"""A compiled test of one record."""


def match_all(record: Record) -> bool:
    """The test of the empty filter (:data:`receiver.filters.nodes.MATCH_ALL`)."""
    return True


# -- Compiled nodes -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled subexpression: its test, and the words every match's message holds."""

    test: RecordTest
    words: tuple[str, ...] = ()


def compile_predicate(node: FilterNode) -> Compiled:
    """The tree compiled into closures (the tree is checked: this never raises)."""
    if isinstance(node, Comparison):
        return _comparison_node(node)
    if isinstance(node, TextSearch):
        return _fulltext_node(node.text, node.wildcard)
    if isinstance(node, Not):
        return _not(compile_predicate(node.term))
    if isinstance(node, And):
        return _all([compile_predicate(t) for t in node.terms]) if node.terms else Compiled(match_all)
    return _any([compile_predicate(t) for t in node.terms])


def _not(node: Compiled) -> Compiled:
    test = node.test

    def negated(record: Record) -> bool:
        return not test(record)

    return Compiled(negated)


def _all(nodes: list[Compiled]) -> Compiled:
    words = tuple(dict.fromkeys(w for n in nodes for w in n.words))
    tests = tuple(n.test for n in nodes)
    if len(tests) == 2:  # the common case, without a loop
        first, second = tests

        def both(record: Record) -> bool:
            return first(record) and second(record)

        return Compiled(both, words)

    def every(record: Record) -> bool:
        # A plain loop: all() over a generator costs a frame per record.
        for test in tests:  # noqa: SIM110
            if not test(record):
                return False
        return True

    return Compiled(every, words)


def _any(nodes: list[Compiled]) -> Compiled:
    tests = tuple(n.test for n in nodes)
    if len(tests) == 2:
        first, second = tests

        def either(record: Record) -> bool:
            return first(record) or second(record)

        return Compiled(either)

    def some(record: Record) -> bool:
        for test in tests:  # noqa: SIM110  (as in _all: no generator per record)
            if test(record):
                return True
        return False

    return Compiled(some)


# -- Reading a record -----------------------------------------------------------

# Layouts are few and their keys tuples are shared by every record of one
# layout, so where a field sits is worked out once per layout (by asking
# formats.columns on a probe record, which keeps its rules in one place) and
# remembered by the tuple's identity. The cache holds the tuple itself, so an
# id is never reused while its entry lives.
_CACHE_LIMIT: Final = 512
_SOURCE: Final = -1  # the field's value is record.source
_COMPUTED: Final = -2  # ask formats.columns.lookup per record (severity from pri-text...)
_ABSENT: Final = -3  # the layout never has it (used for the message: "")


def _probe(keys: tuple[str, ...]) -> Record:
    return Record(0, 0, keys, [f"\x00{i}" for i in range(len(keys))], "\x00s", {})


def _slot(value: str | None) -> int | None:
    """The probe's answer as a slot: an index, _SOURCE, or None when it is neither."""
    if value is None or not value.startswith("\x00"):
        return None
    return _SOURCE if value == "\x00s" else int(value[1:])


# Severity and facility of a record without such a field come from its
# pri-text (formats.columns.lookup says so), so per layout they are a function
# of that one value: remembered per pri-text, they cost a dict lookup instead
# of computing every column of the record (4 us -> 0.3 us per streamlog record).
_PRI_TEXT: Final = "pri-text"
_PRI_FAMILIES: Final = (
    frozenset({"severity", "_severity_", "syslogseverity"}),
    frozenset({"facility", "_facility_", "syslogfacility"}),
)
_FROM_PRI_TEXT: Final = -4


def field_reader(name: str) -> Callable[[Record], str | None]:
    """``lookup(record, name)``, with the position resolved once per layout."""
    cache: dict[int, tuple[tuple[str, ...], int, int]] = {}
    by_pri_text: dict[str, str | None] = {}
    family = next((f for f in _PRI_FAMILIES if name in f), None)

    def plan(keys: tuple[str, ...]) -> tuple[tuple[str, ...], int, int]:
        slot = _slot(lookup(_probe(keys), name))
        if slot is not None:
            return keys, slot, -1
        if family is not None and _PRI_TEXT in keys and family.isdisjoint(keys):
            return keys, _FROM_PRI_TEXT, keys.index(_PRI_TEXT)
        return keys, _COMPUTED, -1

    def read(record: Record) -> str | None:
        keys = record.keys
        entry = cache.get(id(keys))
        if entry is None or entry[0] is not keys:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            entry = cache[id(keys)] = plan(keys)
        slot = entry[1]
        if slot >= 0:
            return record.values[slot]
        if slot == _FROM_PRI_TEXT:
            pri_text = record.values[entry[2]]
            try:
                return by_pri_text[pri_text]
            except KeyError:
                if len(by_pri_text) >= _CACHE_LIMIT:
                    by_pri_text.clear()
                value = by_pri_text[pri_text] = lookup(record, name)
                return value
        if slot == _SOURCE:
            return record.source
        return lookup(record, name)

    return read


_MESSAGE_SLOTS: dict[int, tuple[tuple[str, ...], int]] = {}


def message_of(record: Record) -> str:
    """``columns_of(record).message``, without computing the other columns."""
    keys = record.keys
    entry = _MESSAGE_SLOTS.get(id(keys))
    if entry is None or entry[0] is not keys:
        slot = _slot(columns_of(_probe(keys)).message)
        if len(_MESSAGE_SLOTS) >= _CACHE_LIMIT:
            _MESSAGE_SLOTS.clear()
        entry = _MESSAGE_SLOTS[id(keys)] = (keys, _ABSENT if slot is None else slot)
    slot = entry[1]
    if slot >= 0:
        return record.values[slot]
    return record.source if slot == _SOURCE else ""


def _source(record: Record) -> str | None:
    return record.source


def _tag(record: Record) -> str | None:
    return record.tags.get(STREAMLOG_TAG)


def _time_text(record: Record) -> str | None:
    return str(record.time)


# -- Comparisons ----------------------------------------------------------------


def _string_test(read: Callable[[Record], str | None], c: Comparison) -> RecordTest:
    """A test for = != ~ on one string value."""
    if c.op == "~":
        search = re.compile(c.value).search

        def found(record: Record) -> bool:
            v = read(record)
            return v is not None and search(v) is not None

        return found

    if c.wildcard:
        fullmatch = glob_regex(c.value).fullmatch

        def equal(record: Record) -> bool:
            v = read(record)
            return v is not None and fullmatch(v) is not None

    elif c.field in SEVERITY_FIELDS and read_severity(c.value) >= 0:
        wanted_text = c.value
        wanted = read_severity(wanted_text)

        def equal(record: Record) -> bool:
            v = read(record)
            return v is not None and (v == wanted_text or read_severity(v) == wanted)

    else:
        wanted_text = c.value

        def equal(record: Record) -> bool:
            return read(record) == wanted_text

    if c.op == "=":
        return equal

    def unequal(record: Record) -> bool:
        return not equal(record)

    return unequal


def _flag_test(c: Comparison) -> RecordTest:
    """``flag`` compares with each of the record's flags; ``flag=truncated`` also takes ``truncated:N``."""
    if c.op == "~":
        search = re.compile(c.value).search

        def one(flag: str) -> bool:
            return search(flag) is not None

    elif c.wildcard:
        fullmatch = glob_regex(c.value).fullmatch

        def one(flag: str) -> bool:
            return fullmatch(flag) is not None

    else:
        wanted = c.value
        prefix = wanted + ":"

        def one(flag: str) -> bool:
            return flag == wanted or flag.startswith(prefix)

    def has(record: Record) -> bool:
        return any(one(flag) for flag in record.flags)

    if c.op == "!=":

        def lacks(record: Record) -> bool:
            return not has(record)

        return lacks
    return has


def _order_test(c: Comparison) -> RecordTest:
    """A test for < <= > >=, numeric (severity names allowed on the severity fields)."""
    field, compare = c.field, ORDER[c.op]
    if field in SEVERITY_FIELDS:
        read = field_reader(field)
        wanted = read_severity(c.value)
        # Severity values are a handful of strings: remember each one's verdict.
        verdicts: dict[str, bool] = {}

        def ordered(record: Record) -> bool:
            v = read(record)
            if v is None:
                return False
            try:
                return verdicts[v]
            except KeyError:
                n = read_severity(v)
                verdict = n >= 0 and compare(n, wanted)
                if len(verdicts) < _CACHE_LIMIT:
                    verdicts[v] = verdict
                return verdict

        return ordered

    limit = cast(float, read_number(c.value))
    if field == "time":

        def at(record: Record) -> bool:
            return compare(record.time, limit)

        return at

    read_text = _source if field == "source" else _tag if field == "tag" else field_reader(field)

    def numeric(record: Record) -> bool:
        v = read_text(record)
        if v is None:
            return False
        n = read_number(v)
        return n is not None and compare(n, limit)

    return numeric


def _comparison_node(c: Comparison) -> Compiled:
    if c.field == "flag":
        return Compiled(_flag_test(c))
    if c.op in ORDER:
        return Compiled(_order_test(c))
    seconds = time_seconds(c)
    if seconds is not None:
        wanted = seconds
        if c.op == "=":
            return Compiled(lambda record: record.time == wanted)
        return Compiled(lambda record: record.time != wanted)
    read: Callable[[Record], str | None]
    if c.field == "source":
        read = _source
    elif c.field == "tag":
        read = _tag
    elif c.field == "time":
        read = _time_text
    else:
        read = field_reader(c.field)
    return Compiled(_string_test(read, c))


# -- Full-text terms ------------------------------------------------------------


@functools.cache
def word_class() -> str:
    """A regex alternation matching one word character (as :func:`is_word_char`)."""
    extra = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in marks_and_private_use()
    )
    return f"(?:[^\\W_]|[{extra}])"


def _fulltext_node(term: str, wildcard: bool) -> Compiled:
    """A case-insensitive search of the message for ``term`` on word boundaries."""
    low = term.lower()
    pieces = [p for p in re.split(r"([*?])", low) if p] if wildcard else ([low] if low else [])
    if not pieces:
        return Compiled(match_all)
    first, last = pieces[0], pieces[-1]
    bounded_start = not (wildcard and first in "*?") and is_word_char(first[0])
    bounded_end = not (wildcard and last in "*?") and is_word_char(last[-1])
    test: RecordTest
    if not wildcard:
        test = _literal_search(low, bounded_start, bounded_end)
    else:
        word = word_class()
        # The search is unanchored, so a "*" at either end adds nothing but work.
        inner = pieces[:]
        while inner and inner[0] == "*":
            del inner[0]
        while inner and inner[-1] == "*":
            del inner[-1]
        pattern = "".join(".*" if p == "*" else "." if p == "?" else re.escape(p) for p in inner)
        if bounded_start:
            pattern = f"(?<!{word})" + pattern
        if bounded_end:
            pattern += f"(?!{word})"
        search = re.compile(pattern, re.DOTALL).search

        def test(record: Record) -> bool:
            return search(message_of(record).lower()) is not None

    words: list[str] = []
    for i, piece in enumerate(pieces):
        if wildcard and piece in "*?":
            continue
        for run in re.finditer(r"[a-z0-9]+", piece):
            # A word counts only when it is a whole token wherever the term
            # matches: bounded inside the term by non-word characters, or at
            # an end of the term (where the pattern asserts a boundary), but
            # never next to a wildcard.
            start, end = run.span()
            if start > 0 and is_word_char(piece[start - 1]):
                continue
            if end < len(piece) and is_word_char(piece[end]):
                continue
            if (start == 0 and i > 0) or (end == len(piece) and i < len(pieces) - 1):
                continue
            words.append(run[0])
    return Compiled(test, tuple(dict.fromkeys(words)))


def _literal_search(low: str, bounded_start: bool, bounded_end: bool) -> RecordTest:
    """``low`` in the lower-cased message, with word boundaries where asked.

    ``str.find`` rejects most messages in one C call; the boundary checks in
    Python run only where the term occurs.
    """
    if not bounded_start and not bounded_end:

        def contains(record: Record) -> bool:
            return low in message_of(record).lower()

        return contains
    length = len(low)

    def found(record: Record) -> bool:
        text = message_of(record).lower()
        at = text.find(low)
        while at >= 0:
            # Inline checks for ASCII neighbours (the usual case) spare a call each.
            if bounded_start and at > 0:
                c = text[at - 1]
                if c.isalnum() or (c > "\x7f" and is_word_char(c)):
                    at = text.find(low, at + 1)
                    continue
            end = at + length
            if bounded_end and end < len(text):
                c = text[end]
                if c.isalnum() or (c > "\x7f" and is_word_char(c)):
                    at = text.find(low, at + 1)
                    continue
            return True
        return False

    return found

