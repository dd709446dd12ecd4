"""A filter tree as ClickHouse SQL over the ClickHouse sink's table, selecting what the predicate takes.

The SQL is a boolean expression over the table of CREATE_TABLE in
receiver/deliver/sinks/clickhouse.py: host app severity facility message
source tag time, flags, and the record's fields as field_keys / field_values.

Every node compiles to two expressions, an upper and a lower bound of what
the Python predicate (:mod:`receiver.filters.predicate`) takes: equal where
the SQL is exact, a superset and a subset where it is not, so "not" of an
inexact term stays sound (it swaps them). The answer is the upper bound,
exact when both are the same text.

What makes the SQL exact:

- fields are read as formats.columns.lookup reads them: the field itself,
  then its equivalents in their order (multiIf over has(field_keys, ...)),
  then the column it falls back to; a missing field takes the Python
  predicate's verdict on missing (false, so != is true);
- regular expressions are re-written for re2 from Python's own parse of
  them (:mod:`receiver.filters.re2`), with every character class listed as
  the code points Python's re takes (\\d, \\w, case folding under (?i) differ
  between the engines); what re2 cannot say (backreferences, lookaround,
  Unicode \\b away from the ends) is left out, which gives a superset;
- numbers are compared as decimal text against exact thresholds, never
  parsed as floats by ClickHouse (18.16 rounds some wrongly by one unit):
  where Python reads a value as a float, the threshold is where its
  rounding crosses the limit;
- full-text terms match the message with İ spelled out first (it is the one
  character whose lowercase is two), so each character of the term is a
  class of the characters that lowercase to it, and the word boundary is
  the class of word characters itself. The one context-dependent lowercase
  (capital sigma: small sigma, or final sigma at the end of a word) makes a
  term with either small sigma inexact.

Only functions 18.16 has are used (tests/receiver/test_filter_sql.py runs the
SQL there and in chDB's current release).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import sys
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Final, TypeAlias, cast

# The tables are read, not copied, so the SQL follows formats.columns' equivalences.
from formats.columns import (
    APP_KEYS,
    EQUIVALENT_KEYS,
    FACILITY_KEYS,
    HOST_KEYS,
    MESSAGE_KEYS,
    SEVERITY_BY_NAME,
    SEVERITY_KEYS,
)
from receiver.filters.nodes import And, Comparison, FilterNode, Not, TextSearch
from receiver.filters.re2 import (
    SURROGATE,
    Ranges,
    all_characters,
    python_class,
    re2_class,
    re2_glob,
    re2_search,
    union,
)
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

__all__ = ["CLICKHOUSE_18_16", "ClickHouseCondition", "ClickHouseDialect", "clickhouse_condition", "sql_string"]


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


def clickhouse_condition(tree: FilterNode, dialect: ClickHouseDialect) -> ClickHouseCondition:
    """``tree`` as SQL for ``dialect``: :meth:`receiver.filters.expression.Filter.to_clickhouse` says what it selects."""
    if not isinstance(dialect, ClickHouseDialect):
        raise TypeError(f"dialect must be a ClickHouseDialect, not {type(dialect).__name__}")
    upper, lower = _sql_of(tree)  # the same for every release today: see ClickHouseDialect
    return ClickHouseCondition(upper, upper == lower)


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
    if SURROGATE.search(escaped) is not None:
        escaped = SURROGATE.sub(
            lambda m: "".join(f"\\x{b:02X}" for b in m[0].encode("utf-8", "surrogatepass")), escaped
        )
    return f"'{escaped}'"


_SQL_ESCAPES: Final = {
    **{cp: f"\\x{cp:02X}" for cp in (*range(0x20), 0x7F)},
    ord("\\"): "\\\\",
    ord("'"): "\\'",
}


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
        pattern = re2_search(value)
        takes_empty = re.search(value, "") is not None

        def search(expr: str) -> _Bounds:
            return _sql_match(expr, pattern, takes_empty)

        return _ValueTest(search, _number_as_text(search), takes_empty)
    if c.op in ORDER:
        op = c.op
        if c.field in SEVERITY_FIELDS:
            severity_range = _integer_range(op, read_severity(value))
            accepted = [n for n in range(8) if ORDER[op](n, read_severity(value))]

            def severity_text(expr: str) -> _Bounds:
                return _both(_sql_severity_in(expr, accepted))

            def severity_column(column: str) -> _Bounds:
                return _both(_sql_all([f"{column} >= 0", _sql_in_range(column, severity_range, 0, 127)]))

            return _ValueTest(severity_text, severity_column, False)
        limit = cast(float, read_number(value))
        column_range = _integer_range(op, limit)

        def numeric(expr: str) -> _Bounds:
            return _both(_sql_number_test(expr, op, limit))

        def numeric_column(column: str) -> _Bounds:
            return _both(_sql_all([f"{column} >= 0", _sql_in_range(column, column_range, 0, 127)]))

        return _ValueTest(numeric, numeric_column, False)
    if c.wildcard:
        glob = _both(re2_glob(value))
        takes_empty = glob_regex(value).fullmatch("") is not None

        def glob_test(expr: str) -> _Bounds:
            return _sql_match(expr, glob, takes_empty)

        return _ValueTest(glob_test, _number_as_text(glob_test), takes_empty)
    literal = sql_string(value)
    # A number column's text is its decimal digits; -1 (absent) is no text at all.
    canonical = value.isascii() and value.isdigit() and len(value) <= 3 and str(int(value)) == value
    if c.field in SEVERITY_FIELDS and read_severity(value) >= 0:
        wanted = read_severity(value)

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
        upper, lower = _sql_match("f", re2_search(c.value), re.search(c.value, "") is not None)
    elif c.wildcard:
        upper = lower = _sql_match("f", _both(re2_glob(c.value)), False)[0]
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
    if c.op in ORDER:
        return _both(_sql_in_range("time", _integer_range(c.op, cast(float, read_number(c.value))), 0, _MAX_TIME))
    seconds = time_seconds(c)
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
    space = re2_class(python_class("\\s", 0)) + "*"
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
    """``read_number(expr) op limit`` as the Python predicate has it, for a String ``expr``.

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


# -- Full-text terms in SQL

_DOTTED_CAPITAL_I: Final = "\u0130"
"""İ: the one character whose lowercase is two (i and U+0307); the SQL spells it so first."""
_CAPITAL_SIGMA: Final = "\u03a3"
"""Σ lowercases to σ, or to ς at the end of a word: the one lowercase that depends on context."""


@functools.cache
def _lowercase_sources() -> dict[str, str]:
    """Each lowercase character, and the other characters whose lowercase it is (İ aside)."""
    everything = all_characters().replace(_DOTTED_CAPITAL_I, "")
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
def _fulltext_word() -> Ranges:
    """The code points :func:`is_word_char` takes."""
    return union(python_class("[^\\W_]", 0), marks_and_private_use())


def _term_character(c: str) -> tuple[str, str]:
    """re2 classes (superset, subset) of the characters of a message whose lowercase is ``c``."""
    sources = ({c} if c.lower() == c else set()) | set(_lowercase_sources().get(c, ""))
    sources.discard(_DOTTED_CAPITAL_I)

    def of(chars: set[str]) -> str:
        return re2_class(union(*(((ord(s), ord(s)),) for s in chars if not SURROGATE.match(s))))

    if c not in ("σ", "ς"):
        exact = of(sources)
        return exact, exact
    return of(sources | {_CAPITAL_SIGMA}), of(sources - {_CAPITAL_SIGMA})


def _sql_text_search(term: str, wildcard: bool) -> _Bounds:
    """The predicate's full-text test (:mod:`receiver.filters.predicate`) in SQL: the same pattern, matched against the message in re2."""
    low = term.lower()
    pieces = [p for p in re.split(r"([*?])", low) if p] if wildcard else ([low] if low else [])
    if not pieces:
        return _TRUE
    first, last = pieces[0], pieces[-1]
    bounded_start = not (wildcard and first in "*?") and is_word_char(first[0])
    bounded_end = not (wildcard and last in "*?") and is_word_char(last[-1])
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
    start = f"(?:\\A|{re2_class(word, negate=True)})" if bounded_start else ""
    end = f"(?:{re2_class(word, negate=True)}|\\z)" if bounded_end else ""
    message = f"replaceAll(message, {sql_string(_DOTTED_CAPITAL_I)}, {sql_string('i' + chr(0x307))})"

    def sql(parts: list[str]) -> str:
        return f"match({message}, {sql_string(start + ''.join(parts) + end)})"

    return sql(upper), sql(lower)
