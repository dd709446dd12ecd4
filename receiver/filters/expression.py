r"""Filter expressions: the one grammar of routes, ``receiverctl tail --filter`` and ``search``.

An operator writes the same expression in all three places::

    app-name=todo-list and _severity_<=warning
    host=web-* (timeout or "connection reset") not flag=truncated

Grammar (keywords are case-insensitive; ``not`` binds tighter than ``and``,
``and`` tighter than ``or``; terms side by side without an operator are
joined by ``and``)::

    filter  := [ or ]                       empty or blank: matches every record
    or      := and ( "or" and )*
    and     := unary ( ["and"] unary )*
    unary   := "not"* atom
    atom    := "(" or ")" | comparison | "phrase" | word
    comparison := field op value            spaces around op are allowed
    op      := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"

* A field name is letters, digits and ``_ - . $ !`` (rsyslog property names
  such as ``app-name`` or ``$!foo``). Its value comes from
  :func:`formats.columns.lookup`, so ``_severity_`` works on streamlog
  records (from ``pri-text``), ``app-name`` on RFC 5424 records, and the
  column names ``host app severity facility message`` on every record.
  Four names are special: ``source`` (the record's source address), ``tag``
  (its streamlog tag), ``flag`` (its flags; ``flag=truncated`` matches
  ``truncated:70000`` too) and ``time`` (whole seconds since the epoch).
* A value is bare (no spaces, parentheses, quotes or operator characters,
  and not a keyword) or double-quoted, where ``\"`` is a quote and ``\\`` a
  backslash; any other backslash stays as written, so ``msg~"\d+"`` works.
* ``=`` and ``!=`` compare strings exactly; a missing field is unequal to
  everything (``=`` false, ``!=`` true). An unquoted value holding ``*`` or
  ``?`` is a shell-style wildcard over the whole value (``host=web-*``); a
  quoted one is literal. On the severity fields (``severity``,
  ``_severity_``, ``syslogseverity``) a name equals its number
  (``_severity_=err`` is ``_severity_=3``).
* ``< <= > >=`` compare numbers; the severity fields also take names
  (``_severity_<=warning``: as severe as a warning or more, since smaller is
  more severe). A record whose value is missing or not a number does not
  match. A value that is not a number is an error when the filter is parsed.
* ``~`` is a Python regular expression searched anywhere in the value
  (case-sensitive; ``(?i)`` makes it not).
* A word or a "quoted phrase" alone searches the message text
  (:func:`formats.columns.columns_of`'s ``message``) case-insensitively,
  and matches where it starts and ends on word boundaries, as a search
  engine does: ``disk`` finds "Disk full" but not "diskette". A word with
  an unquoted ``*`` or ``?`` is a wildcard pattern inside the message
  (``disk*`` finds "diskette", ``*tmp*`` finds "/var/tmpfs"). Words are
  runs of letters and digits, as SQLite FTS5's ``unicode61`` tokenizer
  splits them; matching on word boundaries is what makes
  :meth:`Filter.required_words` a sound index pre-filter.

Parsing gives a small immutable tree (:attr:`Filter.tree`: :class:`And`,
:class:`Or`, :class:`Not`, :class:`Comparison`, :class:`TextSearch`), which
is compiled once into a tree of small closures (routes call
:attr:`Filter.evaluate` for every record) and, on demand, into ClickHouse
SQL over the table of receiver/deliver/sinks/clickhouse.py
(:meth:`Filter.to_clickhouse`; the section "ClickHouse SQL" below says
what is exact there and how).
"""

from __future__ import annotations

import array
import dataclasses
import functools
import importlib
import itertools
import math
import operator
import re
import sys
import unicodedata
import warnings
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any, Final, NoReturn, TypeAlias, cast

import pyparsing as pp

# The tables are read, not copied, so the SQL follows formats.columns' equivalences.
from formats.columns import (
    APP_KEYS,
    EQUIVALENT_KEYS,
    FACILITY_KEYS,
    HOST_KEYS,
    MESSAGE_KEYS,
    SEVERITY_BY_NAME,
    SEVERITY_KEYS,
    columns_of,
    lookup,
    severity_number,
)
from formats.record import Record
from formats.streamlog import STREAMLOG_TAG

__all__ = [
    "CLICKHOUSE_18_16",
    "And",
    "ClickHouseCondition",
    "ClickHouseDialect",
    "Comparison",
    "Filter",
    "FilterError",
    "FilterNode",
    "Not",
    "Or",
    "TextSearch",
    "parse_filter",
    "sql_string",
]

_Test = Callable[[Record], bool]

_MAX_NESTING: Final = 32
"""Parentheses deeper than this are refused: the grammar recurses per level."""

_SEVERITY_FIELDS: Final = frozenset({"severity", "_severity_", "syslogseverity"})


# -- The public face ------------------------------------------------------------


class FilterError(ValueError):
    """A filter expression that cannot be parsed or compiled.

    The message says what was expected, names the line and column, and shows
    the text with a caret under the spot. ``reason`` is the first part alone,
    ``position`` the 0-based offset into ``text``.
    """

    def __init__(self, reason: str, text: str, position: int) -> None:
        position = max(0, min(position, len(text)))
        self.reason = reason
        self.text = text
        self.position = position
        line_start = text.rfind("\n", 0, position) + 1
        line_end = text.find("\n", position)
        self.line = text.count("\n", 0, position) + 1
        self.column = position - line_start + 1
        where = (
            f"column {self.column}"
            if "\n" not in text
            else f"line {self.line}, column {self.column}"
        )
        shown = "".join(
            c if c.isprintable() or c == "\t" else "?"
            for c in text[line_start : len(text) if line_end < 0 else line_end]
        )
        caret = "".join("\t" if c == "\t" else " " for c in shown[: self.column - 1])
        super().__init__(f"filter: {reason} at {where}\n  {shown}\n  {caret}^")


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``: ``op`` is one of ``= != < <= > >= ~``, ``value`` has its escapes resolved."""

    field: str
    op: str
    value: str
    quoted: bool = False
    """Whether the value was written in double quotes (then ``*`` and ``?`` are plain characters)."""

    @property
    def wildcard(self) -> bool:
        """An unquoted value holding ``*`` or ``?``: a shell-style pattern for ``=`` and ``!=``."""
        return _is_glob(self.value, self.quoted)


def _is_glob(text: str, quoted: bool) -> bool:
    """Whether a value as written is a shell-style pattern: unquoted, with ``*`` or ``?`` in it."""
    return not quoted and ("*" in text or "?" in text)


@dataclasses.dataclass(frozen=True, slots=True)
class TextSearch:
    """A word or "phrase" searched in the message; ``wildcard`` for an unquoted word with ``*`` or ``?``."""

    text: str
    wildcard: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class And:
    """Every term holds; no terms at all (the empty filter) matches every record."""

    terms: tuple[FilterNode, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Or:
    """Some term holds."""

    terms: tuple[FilterNode, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Not:
    """The term does not hold (the parser cancels ``not not``)."""

    term: FilterNode


FilterNode: TypeAlias = Comparison | TextSearch | And | Or | Not
"""A node of the parse tree. ``And`` and ``Or`` have two terms or more, except the empty ``And``."""

_MATCH_ALL: Final = And(())


def _match_all(record: Record) -> bool:
    return True


class Filter:
    """A compiled filter expression: ``Filter(text)`` is ``parse_filter(text)``.

    ``matches(record) -> bool`` is the compiled expression, stored as a plain
    function (not a method, which would cost a bound call per record); it
    never raises, and a record it cannot be evaluated on does not match
    (what ``tail`` and ``search`` want). ``evaluate`` is the same test
    unguarded: it raises where ``matches`` says no, for callers that must
    tell "no" from "could not tell" (routing: a record whose route cannot
    be decided goes to the default route, counted, not to the next one).
    ``text`` is the source as given and ``tree`` its parse tree. Empty or
    blank text matches every record. Filters are immutable, and equal and
    hashed by their text.
    """

    __slots__ = ("_words", "evaluate", "matches", "text", "tree")

    text: str
    tree: FilterNode
    matches: _Test
    evaluate: _Test
    _words: tuple[str, ...]

    def __init__(self, text: str) -> None:
        """Parse and compile ``text``; raises :class:`FilterError` saying where it is wrong."""
        tree = _parse(text)
        compiled = _closure(tree)
        test, words = compiled.test, compiled.words

        def matches(record: Record) -> bool:
            try:
                return test(record)
            except Exception:  # a malformed record (values shorter than keys...) is no match
                return False

        object.__setattr__(self, "text", text)
        object.__setattr__(self, "tree", tree)
        object.__setattr__(self, "matches", test if test is _match_all else matches)
        object.__setattr__(self, "evaluate", test)
        object.__setattr__(self, "_words", words)

    def required_words(self) -> tuple[str, ...]:
        """Lower-cased words that the message of every matching record contains.

        They come from the full-text terms that the top-level ``and`` joins
        (``not`` and ``or`` contribute none), in order of first appearance,
        and are whole words as SQLite FTS5's ``unicode61`` tokenizer splits a
        message, so an FTS5 query for all of them (each one double-quoted,
        since ``AND``/``OR``/``NEAR`` are FTS5 syntax) never misses a record
        that :attr:`matches` accepts. Only words of ASCII letters and digits
        are given: for them Python's and SQLite's case folding agree. Empty
        when the filter requires no word; run :attr:`matches` on every
        candidate either way, since the words are necessary, not sufficient.
        """
        return self._words

    def to_clickhouse(self, dialect: ClickHouseDialect) -> ClickHouseCondition:
        """This filter as a boolean SQL expression over the ClickHouse sink's table, for ``dialect``.

        The condition reads the columns of
        :data:`receiver.deliver.sinks.clickhouse.CREATE_TABLE` and selects the rows
        whose records :attr:`matches` takes, with the same field
        equivalences and "missing" rules. Where the two engines can read a
        term differently (see "ClickHouse SQL" below), the SQL selects a
        superset and ``exact`` is False: run :attr:`matches` on what it
        returns. Every value is quoted, whatever the filter text holds.
        """
        if not isinstance(dialect, ClickHouseDialect):
            raise TypeError(f"dialect must be a ClickHouseDialect, not {type(dialect).__name__}")
        upper, lower = _sql_of(self.tree)  # the same for every release today: see ClickHouseDialect
        return ClickHouseCondition(upper, upper == lower)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Filter is immutable; parse a new one instead of setting {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Filter is immutable; cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return self.text == other.text

    def __hash__(self) -> int:
        return hash((Filter, self.text))

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


def parse_filter(text: str) -> Filter:
    """The compiled filter of ``text``; :class:`FilterError` says where it is wrong.

    Empty or blank text gives the filter that matches every record. Nothing
    but :class:`FilterError` is raised, whatever the text.
    """
    return Filter(text)


def _parse(text: str) -> FilterNode:
    """The parse tree of ``text``."""
    if not text.strip():
        return _MATCH_ALL
    _check_nesting(text)
    try:
        tokens = _FILTER.parse_string(_plain_spaces(text), parse_all=True)
    except _Problem as problem:
        raise FilterError(problem.message, text, problem.loc) from None
    except pp.ParseBaseException as exc:  # not reached by design; kept as a safety net
        raise FilterError(f"cannot read the filter ({exc.msg})", text, exc.loc) from None
    except RecursionError:
        raise FilterError("the filter is nested too deeply; simplify it", text, 0) from None
    return cast(FilterNode, tokens[0])


# -- Compiled nodes -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Node:
    """A compiled subexpression: its test, and the words every match's message holds."""

    test: _Test
    words: tuple[str, ...] = ()


def _closure(node: FilterNode) -> _Node:
    """The tree compiled into closures (the tree is checked: this never raises)."""
    if isinstance(node, Comparison):
        return _comparison_node(node)
    if isinstance(node, TextSearch):
        return _fulltext_node(node.text, node.wildcard)
    if isinstance(node, Not):
        return _not(_closure(node.term))
    if isinstance(node, And):
        return _all([_closure(t) for t in node.terms]) if node.terms else _Node(_match_all)
    return _any([_closure(t) for t in node.terms])


def _not(node: _Node) -> _Node:
    test = node.test

    def negated(record: Record) -> bool:
        return not test(record)

    return _Node(negated)


def _all(nodes: list[_Node]) -> _Node:
    words = tuple(dict.fromkeys(w for n in nodes for w in n.words))
    tests = tuple(n.test for n in nodes)
    if len(tests) == 2:  # the common case, without a loop
        first, second = tests

        def both(record: Record) -> bool:
            return first(record) and second(record)

        return _Node(both, words)

    def every(record: Record) -> bool:
        # A plain loop: all() over a generator costs a frame per record.
        for test in tests:  # noqa: SIM110
            if not test(record):
                return False
        return True

    return _Node(every, words)


def _any(nodes: list[_Node]) -> _Node:
    tests = tuple(n.test for n in nodes)
    if len(tests) == 2:
        first, second = tests

        def either(record: Record) -> bool:
            return first(record) or second(record)

        return _Node(either)

    def some(record: Record) -> bool:
        for test in tests:  # noqa: SIM110  (as in _all: no generator per record)
            if test(record):
                return True
        return False

    return _Node(some)


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


def _field_reader(name: str) -> Callable[[Record], str | None]:
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


def _message_of(record: Record) -> str:
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


def _time_number(record: Record) -> float | None:
    return record.time


def _severity(text: str) -> int:
    """:func:`formats.columns.severity_number`, but -1 where it raises.

    It takes any Unicode digit for a number and then fails on ``int("¹")``.
    """
    try:
        return severity_number(text)
    except ValueError:
        return -1


_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _number(text: str) -> float | None:
    """A decimal number (int when it is one), or None. Never raises."""
    if _NUMBER_RE.fullmatch(text) is None:
        return None
    try:
        return int(text)
    except ValueError:  # a fraction or exponent, or more digits than int() accepts
        return float(text)


# -- Comparisons ----------------------------------------------------------------

_ORDER: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Shell-style ``*`` and ``?`` (nothing else is special), matched against the whole value."""
    body = "".join(
        ".*" if part == "*" else "." if part == "?" else re.escape(part)
        for part in re.split(r"([*?])", pattern)
        if part
    )
    return re.compile(body, re.DOTALL)


def _regex(value: _Value) -> re.Pattern[str]:
    """The compiled ``~`` pattern; a bad one is an error pointing into it."""
    try:
        return re.compile(value.text)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        # re.error knows where in the pattern it stopped; exact unless escapes precede it.
        offset = getattr(exc, "pos", None) or 0
        raise _Problem(
            value.loc + (1 if value.quoted else 0) + offset,
            f"the regular expression {value.text!r} is not valid ({getattr(exc, 'msg', exc)})",
        ) from None


def _check_comparison(field: str, written: _Op, value: _Value) -> None:
    """Refuse what no record could be compared by: the tree holds only comparisons that compile."""
    op = written.text
    if field == "flag" and op in _ORDER:
        raise _Problem(
            written.end - len(op),
            f'flags are names, so "flag" takes =, != or ~, not "{op}"',
        )
    if op in _ORDER:
        if field in _SEVERITY_FIELDS:
            if _severity(value.text) < 0:
                raise _Problem(
                    value.loc,
                    f'expected a severity after "{op}" (0..7, or a name such as err, warning, '
                    f"info), found {value.text!r}",
                )
        elif _number(value.text) is None:
            raise _Problem(
                value.loc,
                f'"{op}" compares numbers, but {value.text!r} is not one; use = or ~ to compare text',
            )
    elif op == "~":
        _regex(value)


def _string_test(read: Callable[[Record], str | None], c: Comparison) -> _Test:
    """A test for = != ~ on one string value."""
    if c.op == "~":
        search = re.compile(c.value).search

        def found(record: Record) -> bool:
            v = read(record)
            return v is not None and search(v) is not None

        return found

    if c.wildcard:
        fullmatch = _glob_regex(c.value).fullmatch

        def equal(record: Record) -> bool:
            v = read(record)
            return v is not None and fullmatch(v) is not None

    elif c.field in _SEVERITY_FIELDS and _severity(c.value) >= 0:
        wanted_text = c.value
        wanted = _severity(wanted_text)

        def equal(record: Record) -> bool:
            v = read(record)
            return v is not None and (v == wanted_text or _severity(v) == wanted)

    else:
        wanted_text = c.value

        def equal(record: Record) -> bool:
            return read(record) == wanted_text

    if c.op == "=":
        return equal

    def unequal(record: Record) -> bool:
        return not equal(record)

    return unequal


def _flag_test(c: Comparison) -> _Test:
    """``flag`` compares with each of the record's flags; ``flag=truncated`` also takes ``truncated:N``."""
    if c.op == "~":
        search = re.compile(c.value).search

        def one(flag: str) -> bool:
            return search(flag) is not None

    elif c.wildcard:
        fullmatch = _glob_regex(c.value).fullmatch

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


def _order_test(c: Comparison) -> _Test:
    """A test for < <= > >=, numeric (severity names allowed on the severity fields)."""
    field, compare = c.field, _ORDER[c.op]
    if field in _SEVERITY_FIELDS:
        read = _field_reader(field)
        wanted = _severity(c.value)
        # Severity values are a handful of strings: remember each one's verdict.
        verdicts: dict[str, bool] = {}

        def ordered(record: Record) -> bool:
            v = read(record)
            if v is None:
                return False
            try:
                return verdicts[v]
            except KeyError:
                n = _severity(v)
                verdict = n >= 0 and compare(n, wanted)
                if len(verdicts) < _CACHE_LIMIT:
                    verdicts[v] = verdict
                return verdict

        return ordered

    limit = cast(float, _number(c.value))
    if field == "time":

        def at(record: Record) -> bool:
            return compare(record.time, limit)

        return at

    read_text = _source if field == "source" else _tag if field == "tag" else _field_reader(field)

    def numeric(record: Record) -> bool:
        v = read_text(record)
        if v is None:
            return False
        n = _number(v)
        return n is not None and compare(n, limit)

    return numeric


def _time_seconds(c: Comparison) -> float | None:
    """The second that ``time=`` or ``time!=`` names (``time=1795323666.0`` is that second too)."""
    if c.field != "time" or c.wildcard or c.op not in ("=", "!="):
        return None
    return _number(c.value)


def _comparison_node(c: Comparison) -> _Node:
    if c.field == "flag":
        return _Node(_flag_test(c))
    if c.op in _ORDER:
        return _Node(_order_test(c))
    seconds = _time_seconds(c)
    if seconds is not None:
        wanted = seconds
        if c.op == "=":
            return _Node(lambda record: record.time == wanted)
        return _Node(lambda record: record.time != wanted)
    read: Callable[[Record], str | None]
    if c.field == "source":
        read = _source
    elif c.field == "tag":
        read = _tag
    elif c.field == "time":
        read = _time_text
    else:
        read = _field_reader(c.field)
    return _Node(_string_test(read, c))


# -- Full-text terms ------------------------------------------------------------

# What counts as part of a word when deciding whether a term starts or ends
# on a word boundary. FTS5's unicode61 tokenizer keeps letters, digits and
# private-use characters in tokens, and folds combining marks into the letter
# before them ("e" + U+0301 is the token "e"), so a mark glues its
# neighbours together too: "rror" must not be found in "e\u0301rror", or the
# index would disagree with matches().
_PRIVATE_USE: Final = ((0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD))


def _is_word_char(c: str) -> bool:
    if c.isalnum():
        return True
    category = unicodedata.category(c)
    return category[0] == "M" or category == "Co"


@functools.cache
def _marks_and_private_use() -> tuple[tuple[int, int], ...]:
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


@functools.cache
def _word_class() -> str:
    """A regex alternation matching one word character (as :func:`_is_word_char`)."""
    extra = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in _marks_and_private_use()
    )
    return f"(?:[^\\W_]|[{extra}])"


def _fulltext_node(term: str, wildcard: bool) -> _Node:
    """A case-insensitive search of the message for ``term`` on word boundaries."""
    low = term.lower()
    pieces = [p for p in re.split(r"([*?])", low) if p] if wildcard else ([low] if low else [])
    if not pieces:
        return _Node(_match_all)
    first, last = pieces[0], pieces[-1]
    bounded_start = not (wildcard and first in "*?") and _is_word_char(first[0])
    bounded_end = not (wildcard and last in "*?") and _is_word_char(last[-1])
    test: _Test
    if not wildcard:
        test = _literal_search(low, bounded_start, bounded_end)
    else:
        word = _word_class()
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
            return search(_message_of(record).lower()) is not None

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
            if start > 0 and _is_word_char(piece[start - 1]):
                continue
            if end < len(piece) and _is_word_char(piece[end]):
                continue
            if (start == 0 and i > 0) or (end == len(piece) and i < len(pieces) - 1):
                continue
            words.append(run[0])
    return _Node(test, tuple(dict.fromkeys(words)))


def _literal_search(low: str, bounded_start: bool, bounded_end: bool) -> _Test:
    """``low`` in the lower-cased message, with word boundaries where asked.

    ``str.find`` rejects most messages in one C call; the boundary checks in
    Python run only where the term occurs.
    """
    if not bounded_start and not bounded_end:

        def contains(record: Record) -> bool:
            return low in _message_of(record).lower()

        return contains
    length = len(low)

    def found(record: Record) -> bool:
        text = _message_of(record).lower()
        at = text.find(low)
        while at >= 0:
            # Inline checks for ASCII neighbours (the usual case) spare a call each.
            if bounded_start and at > 0:
                c = text[at - 1]
                if c.isalnum() or (c > "\x7f" and _is_word_char(c)):
                    at = text.find(low, at + 1)
                    continue
            end = at + length
            if bounded_end and end < len(text):
                c = text[end]
                if c.isalnum() or (c > "\x7f" and _is_word_char(c)):
                    at = text.find(low, at + 1)
                    continue
            return True
        return False

    return found


# -- The grammar ----------------------------------------------------------------


class _Problem(Exception):
    """A fault found while parsing, at ``loc`` of the filter text."""

    def __init__(self, loc: int, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class _Value:
    """A value as written: its text (escapes resolved), whether quoted, and where it starts."""

    text: str
    quoted: bool
    loc: int
    end: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Op:
    text: str
    end: int


_DELIMITED = r"(?=[\s()\"]|\Z)"
_KEYWORD_RE: Final = re.compile(r"(?i)(?:and|or|not)" + _DELIMITED)
_BARE = r"(?:[^\s()\"=<>~!]|!(?!=))+"
_TOKEN_RE: Final = re.compile(r"[^\s()\"]{1,20}|\S")
_OPERATOR_CHARS: Final = frozenset("=<>~!")
_TERM_HELP: Final = 'a term (a word, a "phrase", field=value or "(")'


def _found(s: str, loc: int) -> str:
    """', found "x"' naming what stands at ``loc``, or nothing at the end of the text."""
    match = _TOKEN_RE.match(s, loc)
    if match is None:
        return ""
    token = match[0]
    if not token.isprintable():
        return f", found {token!r}"
    return f', found "{token}"'


def _fail(message: str) -> pp.ParserElement:
    """An element that always raises ``message`` where it stands: the parse has committed."""

    def action(s: str, loc: int, toks: pp.ParseResults) -> NoReturn:
        raise _Problem(loc, message + _found(s, loc))

    return pp.Empty().set_parse_action(action)


def _make_quoted(s: str, loc: int, toks: pp.ParseResults) -> _Value:
    raw = cast(str, toks[0])
    text = re.sub(r"\\([\"\\])", r"\1", raw[1:-1])
    return _Value(text, True, loc, loc + len(raw))


def _make_bare(s: str, loc: int, toks: pp.ParseResults) -> _Value:
    raw = cast(str, toks[0])
    return _Value(raw, False, loc, loc + len(raw))


def _unclosed(what: str) -> Callable[[str, int, pp.ParseResults], NoReturn]:
    def action(s: str, loc: int, toks: pp.ParseResults) -> NoReturn:
        raise _Problem(loc, f'this " opens {what} that is never closed; close it with "')

    return action


def _check_end(s: str, value: _Value, what: str) -> None:
    """A term ends at a space, ")" or the end of the text; say what to do otherwise."""
    if value.end >= len(s) or s[value.end].isspace() or s[value.end] == ")":
        return
    c = s[value.end]
    if value.quoted:
        if c in _OPERATOR_CHARS:
            raise _Problem(value.end, f"a field name cannot be quoted; write {value.text}{c}...")
        raise _Problem(value.end, f'expected a space or ")" after the closing quote of {what}')
    if c in _OPERATOR_CHARS:
        raise _Problem(
            value.loc,
            f"{value.text!r} is not a field name (field names hold letters, digits "
            "and _ - . $ !); quote the text to search for it",
        )
    raise _Problem(
        value.end,
        f"{what} ends at {c!r}; put the whole of it in double quotes, or a space before {c!r}",
    )


def _make_op(s: str, loc: int, toks: pp.ParseResults) -> _Op:
    text = cast(str, toks[0])
    return _Op(text, loc + len(text))


def _make_comparison(s: str, loc: int, toks: pp.ParseResults) -> Comparison:
    field = cast(str, toks[0])
    op = cast(_Op, toks[1])
    if len(toks) < 3:
        at = op.end
        while at < len(s) and s[at] in " \t\r\n":
            at += 1
        hint = ""
        keyword = _KEYWORD_RE.match(s, at)
        if op.text == "=" and s.startswith("=", at):
            hint = ' (equality is written with one "=")'
        elif op.text == "=" and s.startswith("~", at):
            hint = " (a regular expression match is written field~regex)"
        elif s.startswith(("(", ")"), at):
            hint = f' (a value holding parentheses or spaces goes in quotes: {field}{op.text}"...")'
        elif keyword is not None:
            hint = f' (to compare with the word itself, quote it: "{keyword[0]}")'
        raise _Problem(at, f'expected a value after "{op.text}"' + _found(s, at) + hint)
    value = cast(_Value, toks[2])
    _check_end(s, value, "the value" if not value.quoted else f"the value {value.text!r}")
    _check_comparison(field, op, value)
    return Comparison(field, op.text, value.text, value.quoted)


def _make_phrase(s: str, loc: int, toks: pp.ParseResults) -> TextSearch:
    value = cast(_Value, toks[0])
    _check_end(s, value, f"the phrase {value.text!r}")
    return TextSearch(value.text, wildcard=False)


def _make_word(s: str, loc: int, toks: pp.ParseResults) -> TextSearch:
    value = cast(_Value, toks[0])
    _check_end(s, value, f"the word {value.text!r}")
    return TextSearch(value.text, wildcard=_is_glob(value.text, value.quoted))


def _make_not(s: str, loc: int, toks: pp.ParseResults) -> FilterNode:
    node = cast(FilterNode, toks[-1])
    return Not(node) if (len(toks) - 1) % 2 else node


def _make_and(s: str, loc: int, toks: pp.ParseResults) -> FilterNode:
    nodes = cast(list[FilterNode], toks.as_list())
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _make_or(s: str, loc: int, toks: pp.ParseResults) -> FilterNode:
    nodes = cast(list[FilterNode], toks.as_list())
    return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))


def _leftover(s: str, loc: int, toks: pp.ParseResults) -> NoReturn:
    """Text after the last term that no rule takes: say why it cannot stand there."""
    keyword = _KEYWORD_RE.match(s, loc)
    if keyword is not None:
        raise _Problem(loc, f'"{keyword[0]}" needs a term before it')
    c = s[loc]
    if c == ")":
        raise _Problem(loc, 'found ")" with no "(" before it to close')
    if c in _OPERATOR_CHARS:
        op = re.match(r"!=|<=|>=|[=<>~!]", s[loc:])
        written = op[0] if op else c
        raise _Problem(loc, f'"{written}" needs a field name before it, as in app-name{written}...')
    raise _Problem(loc, f"expected {_TERM_HELP}, found {c!r}")


def _keyword(name: str) -> pp.ParserElement:
    return pp.Regex(f"(?i){name}" + _DELIMITED).set_name(f'"{name}"')


_AND = pp.Suppress(_keyword("and"))
_OR = pp.Suppress(_keyword("or"))
_NOT = _keyword("not")
_QUOTED_RE = r'"(?:[^"\\]|\\[\s\S])*"'

_VALUE = (
    pp.Regex(_QUOTED_RE).set_parse_action(_make_quoted)
    | pp.Regex('"').set_parse_action(_unclosed("a value"))
    | pp.Regex(r"(?!(?i:and|or|not)" + _DELIMITED + ")" + _BARE).set_parse_action(_make_bare)
)
_COMPARISON = (
    pp.Regex(r"(?:[\w.$-]|!(?!=))+")
    + pp.Regex(r"!=|<=|>=|=|<|>|~").set_parse_action(_make_op)
    + pp.Optional(_VALUE)
).set_parse_action(_make_comparison)
_PHRASE = pp.Regex(_QUOTED_RE).set_parse_action(_make_quoted, _make_phrase) | pp.Regex(
    '"'
).set_parse_action(_unclosed("a phrase"))
_WORD = pp.Regex(r"(?!(?i:and|or|not)" + _DELIMITED + ")" + _BARE).set_parse_action(
    _make_bare, _make_word
)

_EXPR = pp.Forward()
_GROUP = (
    pp.Suppress("(")
    + (_EXPR | _fail(f'expected {_TERM_HELP} after "("'))
    + (pp.Suppress(")") | _fail('expected "and", "or", another term or ")" to close the "("'))
)
_ATOM = _COMPARISON | _PHRASE | _WORD | _GROUP
_UNARY = (
    (pp.OneOrMore(_NOT) + (_ATOM | _fail(f'expected {_TERM_HELP} after "not"'))) | _ATOM
).set_parse_action(_make_not)
_CONJUNCTION = (
    _UNARY + pp.ZeroOrMore((_AND + (_UNARY | _fail(f'expected {_TERM_HELP} after "and"'))) | _UNARY)
).set_parse_action(_make_and)
_EXPR <<= (
    _CONJUNCTION + pp.ZeroOrMore(_OR + (_CONJUNCTION | _fail(f'expected {_TERM_HELP} after "or"')))
).set_parse_action(_make_or)
_FILTER = (
    (_EXPR | pp.Regex(r"\S").set_parse_action(_leftover))
    + (pp.StringEnd() | pp.Regex(r"[\s\S]").set_parse_action(_leftover))
).parse_with_tabs()


def _plain_spaces(text: str) -> str:
    """``text`` with other Unicode spaces outside quotes made plain spaces, position for position.

    pyparsing skips only ASCII whitespace, and a no-break space pasted from
    a web page is still a space to the person who wrote the filter.
    """
    out: list[str] = []
    at = 0
    for quoted in re.finditer(_QUOTED_RE, text):
        out.append(_ODD_SPACE_RE.sub(" ", text[at : quoted.start()]))
        out.append(quoted[0])
        at = quoted.end()
    out.append(_ODD_SPACE_RE.sub(" ", text[at:]))
    return "".join(out)


_ODD_SPACE_RE: Final = re.compile(r"[^\S \t\r\n]")


def _check_nesting(text: str) -> None:
    """Refuse parentheses nested deeper than the grammar's recursion allows."""
    depth = 0
    for match in re.finditer(_QUOTED_RE + r"|[()]", text):
        if match[0] == "(":
            depth += 1
            if depth > _MAX_NESTING:
                raise FilterError(
                    f"parentheses nest deeper than {_MAX_NESTING} levels; simplify the filter",
                    text,
                    match.start(),
                )
        elif match[0] == ")":
            depth -= 1


# -- ClickHouse SQL -----------------------------------------------------------------
#
# A filter becomes a boolean expression over the sink's table (CREATE_TABLE in
# receiver/deliver/sinks/clickhouse.py): host app severity facility message source
# tag time, flags, and the record's fields as field_keys / field_values.
#
# Every node compiles to two expressions, an upper and a lower bound of what
# the Python predicate takes: equal where the SQL is exact, a superset and a
# subset where it is not, so "not" of an inexact term stays sound (it swaps
# them). The answer is the upper bound, exact when both are the same text.
#
# What makes the SQL exact:
# - fields are read as formats.columns.lookup reads them: the field itself,
#   then its equivalents in their order (multiIf over has(field_keys, ...)),
#   then the column it falls back to; a missing field takes the Python
#   predicate's verdict on missing (false, so != is true);
# - regular expressions are re-written for re2 from Python's own parse of
#   them, with every character class listed as the code points Python's
#   re takes (\d, \w, case folding under (?i) differ between the engines);
#   what re2 cannot say (backreferences, lookaround, Unicode \b away from
#   the ends) is left out, which gives a superset;
# - numbers are compared as decimal text against exact thresholds, never
#   parsed as floats by ClickHouse (18.16 rounds some wrongly by one unit):
#   where Python reads a value as a float, the threshold is where its
#   rounding crosses the limit;
# - full-text terms match the message with İ spelled out first (it is the one
#   character whose lowercase is two), so each character of the term is a
#   class of the characters that lowercase to it, and the word boundary is
#   the class of word characters itself. The one context-dependent lowercase
#   (Σ: σ, or ς at the end of a word) makes a term with σ or ς inexact.
#
# Only functions 18.16 has are used (tests/receiver/test_filter_sql.py runs the
# SQL there and in chDB's current release).

_Bounds: TypeAlias = tuple[str, str]
"""(upper, lower): SQL taking a superset and a subset of what the predicate takes."""
_SQL_TRUE: Final = "1"
_SQL_FALSE: Final = "0"
_TRUE: Final[_Bounds] = (_SQL_TRUE, _SQL_TRUE)
_FALSE: Final[_Bounds] = (_SQL_FALSE, _SQL_FALSE)
_OLDEST_CLICKHOUSE: Final = (18, 16)


@dataclasses.dataclass(frozen=True, slots=True)
class ClickHouseDialect:
    """The ClickHouse release the SQL is for: ``ClickHouseDialect.from_version(<SELECT version()>)``.

    The SQL uses only functions that 18.16, the oldest release the sink
    supports, already has, so today it is the same for every release; the
    version is kept so that a newer function can be used where it exists.
    """

    version: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.version[:2] < _OLDEST_CLICKHOUSE:
            shown = ".".join(map(str, self.version))
            raise ValueError(f"ClickHouse {shown} is older than 18.16, the oldest this SQL is written for")

    @classmethod
    def from_version(cls, text: str) -> ClickHouseDialect:
        """The dialect of ``text`` as ``SELECT version()`` answers it (``18.16.1``, ``24.8.4.13``)."""
        match = re.match(r"\s*\d+\.\d+(?:\.\d+)*", text)
        if match is None:
            raise ValueError(f"not a ClickHouse version: {text!r}")
        return cls(tuple(int(part) for part in re.findall(r"\d+", match[0])))


CLICKHOUSE_18_16: Final = ClickHouseDialect((18, 16))


@dataclasses.dataclass(frozen=True, slots=True)
class ClickHouseCondition:
    """A filter as SQL: ``sql`` a boolean expression; when ``exact`` is False it selects a superset."""

    sql: str
    exact: bool


def _sql_of(node: FilterNode) -> _Bounds:
    if isinstance(node, Comparison):
        return _sql_comparison(node)
    if isinstance(node, TextSearch):
        return _sql_text_search(node.text, node.wildcard)
    if isinstance(node, Not):
        upper, lower = _sql_of(node.term)
        return _sql_not(lower), _sql_not(upper)
    parts = [_sql_of(t) for t in node.terms]
    join = _sql_all if isinstance(node, And) else _sql_any
    return join([u for u, _ in parts]), join([low for _, low in parts])


def _sql_all(parts: Iterable[str]) -> str:
    kept = [p for p in dict.fromkeys(parts) if p != _SQL_TRUE]
    if _SQL_FALSE in kept:
        return _SQL_FALSE
    if len(kept) <= 1:
        return kept[0] if kept else _SQL_TRUE
    return "(" + " AND ".join(kept) + ")"


def _sql_any(parts: Iterable[str]) -> str:
    kept = [p for p in dict.fromkeys(parts) if p != _SQL_FALSE]
    if _SQL_TRUE in kept:
        return _SQL_TRUE
    if len(kept) <= 1:
        return kept[0] if kept else _SQL_FALSE
    return "(" + " OR ".join(kept) + ")"


def _sql_not(part: str) -> str:
    return _SQL_FALSE if part == _SQL_TRUE else _SQL_TRUE if part == _SQL_FALSE else f"not({part})"


def _both(sql: str) -> _Bounds:
    return sql, sql


def _both_all(parts: Iterable[_Bounds]) -> _Bounds:
    listed = list(parts)
    return _sql_all(u for u, _ in listed), _sql_all(low for _, low in listed)


def sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal, whatever it holds.

    Backslash and quote are escaped, control characters written as ``\\xHH``,
    and a lone surrogate (which no stored value holds: rows are UTF-8) as the
    bytes Python's surrogatepass gives it, so the SQL text itself stays valid
    UTF-8 and the literal equals no stored value.
    """
    escaped = text.translate(_SQL_ESCAPES)
    if _SURROGATE.search(escaped) is not None:
        escaped = _SURROGATE.sub(
            lambda m: "".join(f"\\x{b:02X}" for b in m[0].encode("utf-8", "surrogatepass")), escaped
        )
    return f"'{escaped}'"


_SQL_ESCAPES: Final = {
    **{cp: f"\\x{cp:02X}" for cp in (*range(0x20), 0x7F)},
    ord("\\"): "\\\\",
    ord("'"): "\\'",
}
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _sql_array(texts: Iterable[str]) -> str:
    return "[" + ", ".join(map(sql_string, texts)) + "]"


# -- Reading fields in SQL


@dataclasses.dataclass(frozen=True, slots=True)
class _ValueTest:
    """One comparison's test of a present value, compiled for the places a value comes from.

    ``text(expr)`` tests a String expression; ``number(column)`` an Int8
    column where -1 means absent (severity, facility); ``takes_empty`` is
    the Python predicate's verdict on the empty string.
    """

    text: Callable[[str], _Bounds]
    number: Callable[[str], _Bounds]
    takes_empty: bool


def _number_as_text(text: Callable[[str], _Bounds]) -> Callable[[str], _Bounds]:
    def number(column: str) -> _Bounds:
        return _both_all([_both(f"{column} >= 0"), text(f"toString({column})")])

    return number


_COLUMN_OF_KEYS: Final = {APP_KEYS: "app", MESSAGE_KEYS: "message"}
"""Key lists whose first present value is a column as it is (host is not: an empty one becomes the source)."""
_SEVERITY_LOOKUPS: Final = frozenset({"severity", *SEVERITY_KEYS})
_FACILITY_LOOKUPS: Final = frozenset({"facility", *FACILITY_KEYS})


def _sql_has(key: str) -> str:
    return f"has(field_keys, {sql_string(key)})"


def _sql_field(key: str) -> str:
    return f"field_values[indexOf(field_keys, {sql_string(key)})]"


def _sql_lookup(name: str, test: _ValueTest) -> _Bounds:
    """``test`` on :func:`formats.columns.lookup`'s value of ``name``, false where it is None."""
    cases: list[tuple[str, _Bounds]] = [(_sql_has(name), test.text(_sql_field(name)))]
    otherwise = _FALSE
    keys = EQUIVALENT_KEYS.get(name)
    if keys is not None:
        column = _COLUMN_OF_KEYS.get(keys)
        if column is not None:
            cases.append((f"hasAny(field_keys, {_sql_array(keys)})", test.text(column)))
        else:
            cases += [(_sql_has(key), test.text(_sql_field(key))) for key in keys if key != name]
            if keys is HOST_KEYS:
                otherwise = test.text("source")
    elif name in _SEVERITY_LOOKUPS:
        otherwise = test.number("severity")
    elif name in _FACILITY_LOOKUPS:
        otherwise = test.number("facility")
    if len(cases) == 1 and otherwise == _FALSE and not test.takes_empty:
        return cases[0][1]  # an absent field reads as "", which the test refuses as it refuses None
    return _sql_cases(cases, otherwise)


def _sql_cases(cases: list[tuple[str, _Bounds]], otherwise: _Bounds) -> _Bounds:
    def one(side: int) -> str:
        if not cases:
            return otherwise[side]
        arms = ", ".join(f"{condition}, {value[side]}" for condition, value in cases)
        return f"multiIf({arms}, {otherwise[side]})"

    return one(0), one(1)


def _sql_tag(test: _ValueTest) -> _Bounds:
    """``test`` on the streamlog tag: the row holds "" for no tag, so an empty tag reads as none."""
    upper, lower = test.text("tag")
    if not test.takes_empty:
        return upper, lower
    return upper, _sql_all(["tag != ''", lower])


# -- Comparisons in SQL


def _sql_comparison(c: Comparison) -> _Bounds:
    if c.field == "flag":
        return _sql_flag(c)
    if c.field == "time":
        bounds = _sql_time(c)
    else:
        test = _value_test(c)
        if c.field == "source":
            bounds = test.text("source")
        elif c.field == "tag":
            bounds = _sql_tag(test)
        else:
            bounds = _sql_lookup(c.field, test)
    return (_sql_not(bounds[1]), _sql_not(bounds[0])) if c.op == "!=" else bounds


def _value_test(c: Comparison) -> _ValueTest:
    """The test of ``c`` on one value (for ``!=`` the test of ``=``: the caller negates it)."""
    value = c.value
    if c.op == "~":
        pattern = _re2_search(value)
        takes_empty = re.search(value, "") is not None

        def search(expr: str) -> _Bounds:
            return _sql_match(expr, pattern, takes_empty)

        return _ValueTest(search, _number_as_text(search), takes_empty)
    if c.op in _ORDER:
        op = c.op
        if c.field in _SEVERITY_FIELDS:
            severity_range = _integer_range(op, _severity(value))
            accepted = [n for n in range(8) if _ORDER[op](n, _severity(value))]

            def severity_text(expr: str) -> _Bounds:
                return _both(_sql_severity_in(expr, accepted))

            def severity_column(column: str) -> _Bounds:
                return _both(_sql_all([f"{column} >= 0", _sql_in_range(column, severity_range, 0, 127)]))

            return _ValueTest(severity_text, severity_column, False)
        limit = cast(float, _number(value))
        column_range = _integer_range(op, limit)

        def numeric(expr: str) -> _Bounds:
            return _both(_sql_number_test(expr, op, limit))

        def numeric_column(column: str) -> _Bounds:
            return _both(_sql_all([f"{column} >= 0", _sql_in_range(column, column_range, 0, 127)]))

        return _ValueTest(numeric, numeric_column, False)
    if c.wildcard:
        glob = _both(_re2_glob(value))
        takes_empty = _glob_regex(value).fullmatch("") is not None

        def glob_test(expr: str) -> _Bounds:
            return _sql_match(expr, glob, takes_empty)

        return _ValueTest(glob_test, _number_as_text(glob_test), takes_empty)
    literal = sql_string(value)
    # A number column's text is its decimal digits; -1 (absent) is no text at all.
    canonical = value.isascii() and value.isdigit() and len(value) <= 3 and str(int(value)) == value
    if c.field in _SEVERITY_FIELDS and _severity(value) >= 0:
        wanted = _severity(value)

        def severity_equal(expr: str) -> _Bounds:  # the value itself is among the spellings of wanted
            return _both(_sql_severity_in(expr, [wanted]))

        return _ValueTest(severity_equal, lambda column: _both(f"{column} = {wanted}"), False)

    def equal(expr: str) -> _Bounds:
        return _both(f"{expr} = {literal}")

    def equal_column(column: str) -> _Bounds:
        return _both(f"{column} = {value}") if canonical and int(value) <= 127 else _FALSE

    return _ValueTest(equal, equal_column, value == "")


def _sql_flag(c: Comparison) -> _Bounds:
    """Some flag passes (``flag=truncated`` takes ``truncated:70000``); ``!=``: none does."""
    if c.op == "~":
        upper, lower = _sql_match("f", _re2_search(c.value), re.search(c.value, "") is not None)
    elif c.wildcard:
        upper = lower = _sql_match("f", _both(_re2_glob(c.value)), False)[0]
    else:
        upper = lower = (
            f"(f = {sql_string(c.value)} OR startsWith(f, {sql_string(c.value + ':')}))"
        )

    def exists(test: str) -> str:
        if test in (_SQL_TRUE, _SQL_FALSE):
            return "notEmpty(flags)" if test == _SQL_TRUE else _SQL_FALSE
        return f"arrayExists(f -> {test}, flags)"

    has = exists(upper), exists(lower)
    return (_sql_not(has[1]), _sql_not(has[0])) if c.op == "!=" else has


_MAX_TIME: Final = 2**32 - 1
"""Record times are whole seconds in [0, 2**32) (formats/_timestamps.py), what DateTime holds."""


def _sql_time(c: Comparison) -> _Bounds:
    if c.op in _ORDER:
        return _both(_sql_in_range("time", _integer_range(c.op, cast(float, _number(c.value))), 0, _MAX_TIME))
    seconds = _time_seconds(c)
    if seconds is not None:
        return _both(_sql_in_range("time", _integer_range("=", seconds), 0, _MAX_TIME))
    return _value_test(c).text("toString(toUInt32(time))")


def _integer_range(op: str, limit: float) -> tuple[int | None, int | None] | None:
    """The integers ``n`` with ``n op limit``, as inclusive bounds (None: unbounded), or None for none."""
    if isinstance(limit, float) and math.isinf(limit):
        below = op in ("<", "<=")
        return (None, None) if below == (limit > 0) else None
    if op == "=":
        return (int(limit), int(limit)) if limit == int(limit) else None
    if op == "<":
        return None, math.ceil(limit) - 1
    if op == "<=":
        return None, math.floor(limit)
    if op == ">":
        return math.floor(limit) + 1, None
    return math.ceil(limit), None


def _sql_in_range(expr: str, bounds: tuple[int | None, int | None] | None, low: int, high: int) -> str:
    """``expr`` within ``bounds``, knowing it lies in [low, high]."""
    if bounds is None:
        return _SQL_FALSE
    start = low if bounds[0] is None else max(low, bounds[0])
    end = high if bounds[1] is None else min(high, bounds[1])
    if start > end:
        return _SQL_FALSE
    if start == end and (start > low or end < high):
        return f"{expr} = {start}"
    return _sql_all([f"{expr} >= {start}" if start > low else _SQL_TRUE,
                     f"{expr} <= {end}" if end < high else _SQL_TRUE])


def _sql_severity_in(expr: str, numbers: Iterable[int]) -> str:
    """Whether :func:`formats.columns.severity_number` of the String ``expr`` is one of ``numbers``.

    Python strips white space (Unicode's), lower-cases (only ASCII letters
    lower-case into a severity name) and reads ASCII digits with ``int()``,
    which refuses more than ``sys.get_int_max_str_digits()`` of them.
    """
    wanted = sorted(set(numbers) & set(range(8)))
    if not wanted:
        return _SQL_FALSE
    space = _re2_class(_python_class("\\s", 0)) + "*"
    names = [name for name, number in SEVERITY_BY_NAME.items() if number in wanted]
    spelled = "|".join(
        "".join(f"[{c}{c.upper()}]" for c in name) for name in names
    )
    digits = "[" + "".join(map(str, wanted)) + "]"
    name_pattern = sql_string("\\A" + space + "(?:" + spelled + ")" + space + "\\z")
    number_pattern = sql_string("\\A" + space + "0*" + digits + space + "\\z")
    by_name = f"match({expr}, {name_pattern})"
    by_number = f"match({expr}, {number_pattern})"
    limit = sys.get_int_max_str_digits()
    if limit:
        by_number = f"({by_number} AND length(replaceRegexpAll({expr}, '[^0-9]', '')) <= {limit})"
    return _sql_any([by_name, by_number])


def _sql_match(expr: str, pattern: tuple[str | None, str | None], takes_empty: bool) -> _Bounds:
    """``match(expr, pattern)`` for (superset, subset) patterns, None meaning any value, no value."""

    def one(text: str | None, otherwise: str) -> str:
        if text is None:
            return otherwise
        sql = f"match({expr}, {sql_string(text)})"
        # re2's \B holds in the empty string and Python's does not: there Python's verdict stands.
        return f"if({expr} = '', {int(takes_empty)}, {sql})" if "\\B" in text else sql

    upper = one(pattern[0], _SQL_TRUE)
    return (upper, upper) if pattern[0] == pattern[1] else (upper, one(pattern[1], _SQL_FALSE))


# -- Numbers in SQL

_NUMBER_RE2: Final = r"\A[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\z"
_INTEGER_RE2: Final = r"\A[+-]?[0-9]+\z"
_FRACTION_DIGITS: Final = sql_string(r"\.([0-9]*)")
_HUGE_EXPONENT: Final = 10**15
"""An exponent beyond any threshold's: its digits are not read past 15."""
_MAX_FLOAT: Final = sys.float_info.max
_OVERFLOW: Final = Fraction(_MAX_FLOAT) + Fraction(2) ** 970
"""Half an ulp above the largest double: decimals from here on round to infinity."""

_Threshold: TypeAlias = "bool | tuple[str, Fraction]"
"""All, none, or the decimals ``d`` with ``d op value``."""


def _sql_number_test(expr: str, op: str, limit: float) -> str:
    """``_number(expr) op limit`` as the Python predicate has it, for a String ``expr``.

    An integer (digits only, as many as ``int()`` takes) compares exactly; any
    other number as Python's float of it, which is a comparison of the decimal
    with the point where rounding crosses the limit. The value, its digits
    without the zeros at either end (``m``) and its power of ten (``p``: the
    value is ``0.m * 10**p``) are bound once by lambdas.
    """
    exactly = _sql_decimal_compare(_integer_threshold(op, limit))
    rounded = _sql_decimal_compare(_float_threshold(op, limit))
    if exactly == rounded:
        body = exactly
    else:
        integer = f"match(v, {sql_string(_INTEGER_RE2)})"
        digits = sys.get_int_max_str_digits()
        if digits:
            integer = f"({integer} AND length(replaceRegexpOne(v, '^[+-]', '')) <= {digits})"
        body = f"if({integer}, {exactly}, {rounded})"
    if body in (_SQL_TRUE, _SQL_FALSE):
        test = _sql_all([f"match(v, {sql_string(_NUMBER_RE2)})", body])
    else:
        fraction = f"extract(v, {_FRACTION_DIGITS})"
        digits_text = f"replaceRegexpOne(concat(extract(v, '^[+-]?([0-9]*)'), {fraction}), '^0+', '')"
        exponent = "extract(v, '[eE]([+-]?[0-9]+)$')"
        scale = (
            f"if(length(replaceRegexpOne({exponent}, '^[+-]?0*', '')) > 15, "
            f"if(startsWith({exponent}, '-'), -{_HUGE_EXPONENT}, toInt64({_HUGE_EXPONENT})), "
            f"toInt64OrZero({exponent}))"
        )
        power = f"toInt64(length({digits_text})) - toInt64(length({fraction})) + {scale}"
        parts = f"arrayExists((m, p) -> {body}, [replaceRegexpOne({digits_text}, '0+$', '')], [{power}])"
        test = f"(match(v, {sql_string(_NUMBER_RE2)}) AND {parts})"
    return f"arrayExists(v -> {test}, [{expr}])"


def _integer_threshold(op: str, limit: float) -> _Threshold:
    if isinstance(limit, float) and math.isinf(limit):
        return (op in ("<", "<=")) == (limit > 0)
    return op, Fraction(limit)


def _float_threshold(op: str, limit: float) -> _Threshold:
    """The decimals whose nearest double (Python's float()) is ``op limit``."""
    if op in ("<", "<="):
        top = _double_below(limit, strict=op == "<")
        if top is None:
            return False
        if top == math.inf:
            return True
        edge = -_OVERFLOW if top == -math.inf else _rounding_edge(top, math.nextafter(top, math.inf))
        return ("<=" if float(_decimal_text(edge)) <= top else "<"), edge
    bottom = _double_above(limit, strict=op == ">")
    if bottom is None:
        return False
    if bottom == -math.inf:
        return True
    edge = _OVERFLOW if bottom == math.inf else _rounding_edge(math.nextafter(bottom, -math.inf), bottom)
    return (">=" if float(_decimal_text(edge)) >= bottom else ">"), edge


def _rounding_edge(low: float, high: float) -> Fraction:
    """The midpoint of two neighbouring doubles (or of the largest ones and infinity)."""
    if high == math.inf:
        return _OVERFLOW
    if low == -math.inf:
        return -_OVERFLOW
    return (Fraction(low) + Fraction(high)) / 2


def _double_below(limit: float, *, strict: bool) -> float | None:
    """The largest double or infinity ``x`` with ``x < limit`` (``<=`` unless strict); None if none."""
    if isinstance(limit, float) and math.isinf(limit):
        if limit > 0:
            return _MAX_FLOAT if strict else math.inf
        return None if strict else -math.inf
    exact = Fraction(limit)
    if exact > _MAX_FLOAT:
        return _MAX_FLOAT
    if exact < -_MAX_FLOAT:
        return -math.inf
    nearest = float(limit)
    if Fraction(nearest) > exact or (strict and Fraction(nearest) == exact):
        nearest = math.nextafter(nearest, -math.inf)
    return nearest


def _double_above(limit: float, *, strict: bool) -> float | None:
    below = _double_below(-limit, strict=strict)
    return None if below is None else -below


def _decimal_parts(value: Fraction) -> tuple[int, str, int]:
    """``value`` as (sign, digits, exponent) with value = sign * 0.digits * 10**exponent.

    The digits have no leading or trailing zero (none at all for 0); the
    denominator is a power of two (from a double) or one, so they end.
    """
    if value == 0:
        return 0, "", 0
    magnitude = abs(value)
    shift = 0
    while magnitude.denominator != 1:
        magnitude *= 10
        shift += 1
    text = str(magnitude.numerator)
    digits = text.rstrip("0")
    return (1 if value > 0 else -1), digits, len(text) - shift


def _decimal_text(value: Fraction) -> str:
    sign, digits, exponent = _decimal_parts(value)
    return f"{'-' if sign < 0 else ''}0.{digits or '0'}e{exponent}"


def _sql_decimal_compare(threshold: _Threshold) -> str:
    """The number ``v`` (digits ``m``, power ``p``, see _sql_number_test) against a threshold."""
    if isinstance(threshold, bool):
        return _SQL_TRUE if threshold else _SQL_FALSE
    op, value = threshold
    sign, value_digits, value_power = _decimal_parts(value)
    # The sign of (v - value): -1, 0 or 1. Beside a value other than 0, v is zero or of the other
    # sign (as if smaller in size), or of its sign and compared by size: power, then digits.
    if sign == 0:
        difference = "multiIf(m = '', 0, startsWith(v, '-'), -1, 1)"
    else:
        bigger, smaller = ("1", "-1") if sign > 0 else ("-1", "1")
        quoted = sql_string(value_digits)
        other_side = "m = '' OR " + ("startsWith(v, '-')" if sign > 0 else "NOT startsWith(v, '-')")
        difference = (
            f"multiIf({other_side}, {smaller}, p > {value_power}, {bigger}, p < {value_power}, {smaller}, "
            f"m > {quoted}, {bigger}, m < {quoted}, {smaller}, 0)"
        )
    return f"({difference} {op} 0)"


# -- Regular expressions in SQL: Python's meaning, written for re2

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
_Ranges: TypeAlias = tuple[tuple[int, int], ...]


class _Untranslatable(Exception):
    """Python regex syntax this translation does not know (it then gives up: any value may match)."""


@functools.cache
def _all_characters() -> str:
    """Every code point but the surrogates (which no stored value holds), in order."""
    points = array.array("I", itertools.chain(range(0xD800), range(0xE000, 0x110000)))
    return points.tobytes().decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be")


@functools.lru_cache(maxsize=4096)
def _python_class(spec: str, flags: int) -> _Ranges:
    """The code points Python's re matches with the one-character pattern ``spec`` under ``flags``."""
    modes = ("i" if flags & re.IGNORECASE else "") + ("a" if flags & re.ASCII else "")
    everything = _all_characters()
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


def _re2_class(ranges: _Ranges, *, negate: bool = False) -> str:
    if not ranges:
        return "(?s:.)" if negate else _RE2_NOTHING
    if not negate and len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _re2_char(ranges[0][0])
    body = "".join(
        _re2_char(a) if a == b else f"{_re2_char(a)}-{_re2_char(b)}" for a, b in ranges
    )
    return f"[{'^' if negate else ''}{body}]"


def _re2_literal(text: str) -> str:
    return "".join(_RE2_NOTHING if _SURROGATE.match(c) else _re2_char(ord(c)) for c in text)


def _re2_glob(pattern: str) -> str:
    """:func:`_glob_regex` for re2: the whole value, ``*`` any run, ``?`` any one character."""
    body = "".join(
        "(?s:.*)" if part == "*" else "(?s:.)" if part == "?" else _re2_literal(part)
        for part in re.split(r"([*?])", pattern)
        if part
    )
    return f"\\A{body}\\z"


def _intersect(a: _Ranges, b: _Ranges) -> _Ranges:
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


def _union(*sets: _Ranges) -> _Ranges:
    out: list[tuple[int, int]] = []
    for low, high in sorted(r for s in sets for r in s):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _re2_search(pattern: str) -> tuple[str | None, str | None]:
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
            return _re2_class(ranges)
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

    def characters(self, op: Any, av: Any, flags: int) -> _Ranges:
        if op is _sre.LITERAL and not flags & re.IGNORECASE:
            return () if 0xD800 <= av <= 0xDFFF else ((av, av),)
        if op is _sre.LITERAL:
            return _python_class(f"\\U{av:08x}", flags & (re.IGNORECASE | re.ASCII))
        if op is _sre.NOT_LITERAL:
            return _python_class(f"[^\\U{av:08x}]", flags & (re.IGNORECASE | re.ASCII))
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
        return _python_class("[" + "".join(parts) + "]", flags & (re.IGNORECASE | re.ASCII))

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
        word = _python_class("\\w", 0)
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
                    return f"(?:{edge}|{_re2_class(word, negate=True)})"
                return _re2_class(word)
        return self.loose("")


# -- Full-text terms in SQL

_DOTTED_CAPITAL_I: Final = "\u0130"
"""İ: the one character whose lowercase is two (i and U+0307); the SQL spells it so first."""
_CAPITAL_SIGMA: Final = "\u03a3"
"""Σ lowercases to σ, or to ς at the end of a word: the one lowercase that depends on context."""


@functools.cache
def _lowercase_sources() -> dict[str, str]:
    """Each lowercase character, and the other characters whose lowercase it is (İ aside)."""
    everything = _all_characters().replace(_DOTTED_CAPITAL_I, "")
    lowered = everything.lower()  # one character each now, so positions line up
    sources: dict[str, str] = {}
    block = 4096
    for start in range(0, len(everything), block):
        if everything[start : start + block] != lowered[start : start + block]:
            for c in everything[start : start + block]:
                low = c.lower()  # one character: Unicode has no other İ (checked by the tests)
                if low != c:
                    sources[low] = sources.get(low, "") + c
    return sources


@functools.cache
def _fulltext_word() -> _Ranges:
    """The code points :func:`_is_word_char` takes."""
    return _union(_python_class("[^\\W_]", 0), _marks_and_private_use())


def _term_character(c: str) -> tuple[str, str]:
    """re2 classes (superset, subset) of the characters of a message whose lowercase is ``c``."""
    sources = ({c} if c.lower() == c else set()) | set(_lowercase_sources().get(c, ""))
    sources.discard(_DOTTED_CAPITAL_I)

    def of(chars: set[str]) -> str:
        return _re2_class(_union(*(((ord(s), ord(s)),) for s in chars if not _SURROGATE.match(s))))

    if c not in ("σ", "ς"):
        exact = of(sources)
        return exact, exact
    return of(sources | {_CAPITAL_SIGMA}), of(sources - {_CAPITAL_SIGMA})


def _sql_text_search(term: str, wildcard: bool) -> _Bounds:
    """:func:`_fulltext_node` in SQL: the same pattern, matched against the message in re2."""
    low = term.lower()
    pieces = [p for p in re.split(r"([*?])", low) if p] if wildcard else ([low] if low else [])
    if not pieces:
        return _TRUE
    first, last = pieces[0], pieces[-1]
    bounded_start = not (wildcard and first in "*?") and _is_word_char(first[0])
    bounded_end = not (wildcard and last in "*?") and _is_word_char(last[-1])
    inner = pieces[:]
    while wildcard and inner and inner[0] == "*":
        del inner[0]
    while wildcard and inner and inner[-1] == "*":
        del inner[-1]
    upper: list[str] = []
    lower: list[str] = []
    for piece in inner:
        if wildcard and piece in ("*", "?"):
            upper.append("(?s:.*)" if piece == "*" else "(?s:.)")
            lower.append(upper[-1])
            continue
        for c in piece:
            loose, strict = _term_character(c)
            upper.append(loose)
            lower.append(strict)
    if not upper:
        return _TRUE
    word = _fulltext_word()
    start = f"(?:\\A|{_re2_class(word, negate=True)})" if bounded_start else ""
    end = f"(?:{_re2_class(word, negate=True)}|\\z)" if bounded_end else ""
    message = f"replaceAll(message, {sql_string(_DOTTED_CAPITAL_I)}, {sql_string('i' + chr(0x307))})"

    def sql(parts: list[str]) -> str:
        return f"match({message}, {sql_string(start + ''.join(parts) + end)})"

    return sql(upper), sql(lower)
