"""The filter language's grammar in pyparsing: text to a tree, or a :class:`FilterError` saying where.

:func:`parse` gives the tree of :mod:`receiver.filters.nodes`; the language is
described in :mod:`receiver.filters.expression`. Every comparison in the tree
is one the engines can compile: a value that an operator cannot compare (a
number that is not one, a bad regular expression) is refused here, pointing
into the text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Final, NoReturn, cast

import pyparsing as pp

from receiver.filters.errors import FilterError
from receiver.filters.nodes import (
    MATCH_ALL,
    And,
    Comparison,
    FilterNode,
    Not,
    Or,
    TextSearch,
    is_glob,
)
from receiver.filters.values import ORDER, SEVERITY_FIELDS, read_number, read_severity

__all__ = ["parse"]

_MAX_NESTING: Final = 32
"""Parentheses deeper than this are refused: the grammar recurses per level."""


def parse(text: str) -> FilterNode:
    """The parse tree of ``text``."""
    if not text.strip():
        return MATCH_ALL
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
    if field == "flag" and op in ORDER:
        raise _Problem(
            written.end - len(op),
            f'flags are names, so "flag" takes =, != or ~, not "{op}"',
        )
    if op in ORDER:
        if field in SEVERITY_FIELDS:
            if read_severity(value.text) < 0:
                raise _Problem(
                    value.loc,
                    f'expected a severity after "{op}" (0..7, or a name such as err, warning, '
                    f"info), found {value.text!r}",
                )
        elif read_number(value.text) is None:
            raise _Problem(
                value.loc,
                f'"{op}" compares numbers, but {value.text!r} is not one; use = or ~ to compare text',
            )
    elif op == "~":
        _regex(value)


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
    return TextSearch(value.text, wildcard=is_glob(value.text, value.quoted))


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
