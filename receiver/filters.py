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

Filters are compiled once, at parse time, into a tree of small closures:
routes call :attr:`Filter.evaluate` for every record.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
import re
import unicodedata
from collections.abc import Callable
from typing import Final, NoReturn, cast

import pyparsing as pp

from formats.columns import columns_of, lookup, severity_number
from formats.record import Record
from formats.streamlog import STREAMLOG_TAG

__all__ = ["Filter", "FilterError", "parse_filter"]

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
    ``text`` is the source as given. Empty or blank text matches every
    record. Filters are immutable, and equal and hashed by their text.
    """

    __slots__ = ("_words", "evaluate", "matches", "text")

    text: str
    matches: _Test
    evaluate: _Test
    _words: tuple[str, ...]

    def __init__(self, text: str) -> None:
        """Parse and compile ``text``; raises :class:`FilterError` saying where it is wrong."""
        test, words = _compile(text)

        def matches(record: Record) -> bool:
            try:
                return test(record)
            except Exception:  # a malformed record (values shorter than keys...) is no match
                return False

        object.__setattr__(self, "text", text)
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


def _compile(text: str) -> tuple[_Test, tuple[str, ...]]:
    """The test and required words of ``text``."""
    if not text.strip():
        return _match_all, ()
    _check_nesting(text)
    try:
        tokens = _FILTER.parse_string(_plain_spaces(text), parse_all=True)
    except _Problem as problem:
        raise FilterError(problem.message, text, problem.loc) from None
    except pp.ParseBaseException as exc:  # not reached by design; kept as a safety net
        raise FilterError(f"cannot read the filter ({exc.msg})", text, exc.loc) from None
    except RecursionError:
        raise FilterError("the filter is nested too deeply; simplify it", text, 0) from None
    node = cast(_Node, tokens[0])
    return node.test, node.words


# -- Compiled nodes -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Node:
    """A compiled subexpression: its test, and the words every match's message holds."""

    test: _Test
    words: tuple[str, ...] = ()


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


def _string_test(read: Callable[[Record], str | None], op: str, value: _Value, field: str) -> _Test:
    """A test for = != ~ on one string value."""
    if op == "~":
        search = _regex(value).search

        def found(record: Record) -> bool:
            v = read(record)
            return v is not None and search(v) is not None

        return found

    if value.is_glob:
        fullmatch = _glob_regex(value.text).fullmatch

        def equal(record: Record) -> bool:
            v = read(record)
            return v is not None and fullmatch(v) is not None

    elif field in _SEVERITY_FIELDS and _severity(value.text) >= 0:
        wanted_text = value.text
        wanted = _severity(wanted_text)

        def equal(record: Record) -> bool:
            v = read(record)
            return v is not None and (v == wanted_text or _severity(v) == wanted)

    else:
        wanted_text = value.text

        def equal(record: Record) -> bool:
            return read(record) == wanted_text

    if op == "=":
        return equal

    def unequal(record: Record) -> bool:
        return not equal(record)

    return unequal


def _flag_test(op: str, value: _Value) -> _Test:
    """``flag`` compares with each of the record's flags; ``flag=truncated`` also takes ``truncated:N``."""
    if op == "~":
        search = _regex(value).search

        def one(flag: str) -> bool:
            return search(flag) is not None

    elif value.is_glob:
        fullmatch = _glob_regex(value.text).fullmatch

        def one(flag: str) -> bool:
            return fullmatch(flag) is not None

    else:
        wanted = value.text
        prefix = wanted + ":"

        def one(flag: str) -> bool:
            return flag == wanted or flag.startswith(prefix)

    def has(record: Record) -> bool:
        return any(one(flag) for flag in record.flags)

    if op == "!=":

        def lacks(record: Record) -> bool:
            return not has(record)

        return lacks
    return has


def _order_test(field: str, op: str, value: _Value) -> _Test:
    """A test for < <= > >=, numeric (severity names allowed on the severity fields)."""
    compare = _ORDER[op]
    target: float | None
    if field in _SEVERITY_FIELDS:
        target = _severity(value.text)
        if target < 0:
            raise _Problem(
                value.loc,
                f'expected a severity after "{op}" (0..7, or a name such as err, warning, '
                f"info), found {value.text!r}",
            )
        read = _field_reader(field)
        wanted = target
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

    target = _number(value.text)
    if target is None:
        raise _Problem(
            value.loc,
            f'"{op}" compares numbers, but {value.text!r} is not one; use = or ~ to compare text',
        )
    limit = target
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


def _comparison_node(field: str, written: _Op, value: _Value) -> _Node:
    op = written.text
    if field == "flag":
        if op in _ORDER:
            raise _Problem(
                written.end - len(op),
                f'flags are names, so "flag" takes =, != or ~, not "{op}"',
            )
        return _Node(_flag_test(op, value))
    if op in _ORDER:
        return _Node(_order_test(field, op, value))
    seconds = _number(value.text) if field == "time" and not value.is_glob else None
    if seconds is not None and op in ("=", "!="):  # time=1795323666.0 is that second too
        wanted = seconds
        if op == "=":
            return _Node(lambda record: record.time == wanted)
        return _Node(lambda record: record.time != wanted)
    read: Callable[[Record], str | None]
    if field == "source":
        read = _source
    elif field == "tag":
        read = _tag
    elif field == "time":
        read = _time_text
    else:
        read = _field_reader(field)
    return _Node(_string_test(read, op, value, field))


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
def _word_class() -> str:
    """A regex alternation matching one word character (as :func:`_is_word_char`).

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
    extra = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
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

    @property
    def is_glob(self) -> bool:
        return not self.quoted and ("*" in self.text or "?" in self.text)


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


def _make_comparison(s: str, loc: int, toks: pp.ParseResults) -> _Node:
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
    return _comparison_node(field, op, value)


def _make_phrase(s: str, loc: int, toks: pp.ParseResults) -> _Node:
    value = cast(_Value, toks[0])
    _check_end(s, value, f"the phrase {value.text!r}")
    return _fulltext_node(value.text, wildcard=False)


def _make_word(s: str, loc: int, toks: pp.ParseResults) -> _Node:
    value = cast(_Value, toks[0])
    _check_end(s, value, f"the word {value.text!r}")
    return _fulltext_node(value.text, wildcard=value.is_glob)


def _make_not(s: str, loc: int, toks: pp.ParseResults) -> _Node:
    node = cast(_Node, toks[-1])
    return _not(node) if (len(toks) - 1) % 2 else node


def _make_and(s: str, loc: int, toks: pp.ParseResults) -> _Node:
    nodes = cast(list[_Node], toks.as_list())
    return nodes[0] if len(nodes) == 1 else _all(nodes)


def _make_or(s: str, loc: int, toks: pp.ParseResults) -> _Node:
    nodes = cast(list[_Node], toks.as_list())
    return nodes[0] if len(nodes) == 1 else _any(nodes)


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
