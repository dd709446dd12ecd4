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

Parsing (:mod:`receiver.filters.grammar`) gives a small immutable tree
(:attr:`Filter.tree`: :class:`And`, :class:`Or`, :class:`Not`,
:class:`Comparison`, :class:`TextSearch`, in :mod:`receiver.filters.nodes`),
which is compiled once into a tree of small closures
(:mod:`receiver.filters.predicate`; routes call :attr:`Filter.evaluate` for
every record) and, on demand, into ClickHouse SQL over the table of
receiver/deliver/sinks/clickhouse.py (:meth:`Filter.to_clickhouse`;
:mod:`receiver.filters.sql` says what is exact there and how). How a value is
read (numbers, severities, wildcards, word characters) is
:mod:`receiver.filters.values`, shared by the three. This module is the public
face: the names other code imports.
"""

from __future__ import annotations

from formats.record import Record
from receiver.filters.errors import FilterError
from receiver.filters.grammar import parse
from receiver.filters.nodes import And, Comparison, FilterNode, Not, Or, TextSearch
from receiver.filters.predicate import RecordTest, compile_predicate, match_all
from receiver.filters.sql import (
    CLICKHOUSE_18_16,
    ClickHouseCondition,
    ClickHouseDialect,
    clickhouse_condition,
    sql_string,
)

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
    matches: RecordTest
    evaluate: RecordTest
    _words: tuple[str, ...]

    def __init__(self, text: str) -> None:
        """Parse and compile ``text``; raises :class:`FilterError` saying where it is wrong."""
        tree = parse(text)
        compiled = compile_predicate(tree)
        test, words = compiled.test, compiled.words

        def matches(record: Record) -> bool:
            try:
                return test(record)
            except Exception:  # a malformed record (values shorter than keys...) is no match
                return False

        object.__setattr__(self, "text", text)
        object.__setattr__(self, "tree", tree)
        object.__setattr__(self, "matches", test if test is match_all else matches)
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
        term differently (:mod:`receiver.filters.sql` says where), the SQL selects a
        superset and ``exact`` is False: run :attr:`matches` on what it
        returns. Every value is quoted, whatever the filter text holds.
        """
        return clickhouse_condition(self.tree, dialect)

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
