r"""Streamlog formats read from rsyslog templates.

Senders already describe their streamlog lines to rsyslog, in a
``$template NAME,"..."`` line or a ``template(...)`` object (most often
Alibaba's ``ALI_LOG_FMT``). Asking operators to restate that layout as
Logtail's ``{"version", "fields"}`` invites the two copies to drift apart, so
the receiver reads the rsyslog configuration itself and works out each
template's version, tag and field names. The caller passes the text: nothing
here does I/O.

A template describes a streamlog line when its text expands to::

    VERSION SP TAG SP %time% SP %ip% (SP %field%)* SP %msg% ["\n"]

Reading rules, and why:

* Escapes are rsyslog's, and it has two sets. In a ``$template`` line the
  template parser unescapes ``\n``, ``\r``, ``\\``, ``\%`` (a literal percent)
  and ``\DDD`` (a decimal character code), and keeps any other escaped
  character as itself: ``\"`` is a quote, and ``\t`` is a plain ``t``. A
  ``template()`` value (in double or single quotes) is RainerScript: it
  unescapes ``\n \t \r \a \b \f \v \\ \" \' \?`` and octal ``\ooo`` (and
  ``\$``, ``\xHH``, which rsyslog's unescaper also knows); any other escape
  is an error, as it is for rsyslog. There ``%`` always opens a property, so
  a ``type="string"`` template cannot hold a literal percent (a list
  template's ``constant()`` can). ``%%`` is no escape anywhere: it is an
  empty property reference.
* List templates (``type="list"`` with ``constant()`` and ``property()``)
  are read too; a property's ``dateFormat="unixtimestamp"`` makes it a time
  column.
* A column's field name is its property name, lower-cased (rsyslog property
  names are case-insensitive, and Logtail users query ``app-name``), without
  the variable sigil: ``%$!foo%``, ``%$.foo%`` and ``%$/foo%`` give ``foo``,
  ``%$now%`` gives ``now``. An explicit output name wins: the fifth part of
  ``%prop:from:to:options:NAME%``, or ``outname=`` in a list template (rsyslog
  gives its JSON output the same names).
* Any property is accepted in the ip position (it becomes the record's
  source), and the last column is always the field ``msg``, whatever property
  fills it.
* Version and tag must be literal words: the version selects the format and
  the tag routes the line, so neither may vary from message to message.
* No column but the last may hold spaces, because the receiver splits lines
  on single spaces: ``%msg%``, or a date in rsyslog's default format
  (``Oct 11 22:14:15``), anywhere else would shift every later field.
* ``$IncludeConfig`` and ``include()`` are not followed: pass the included
  files' text as well.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final, TypeAlias, cast

import pyparsing as pp

from formats.errors import FormatDefinitionError, TemplateError
from formats.streamlog import StreamlogFormat

__all__ = [
    "RsyslogTemplate",
    "streamlog_format_of",
    "streamlog_formats_in",
    "templates_in",
]


# -- What a template is made of ----------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Constant:
    """Literal text of a template, escapes resolved."""

    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Property:
    """One property reference: ``%name:from:to:options:field%`` or ``property(...)``."""

    name: str
    date_format: str | None  # the date-* format in effect, without "date-"
    field_name: str | None  # an explicit output name, when the template gives one
    written: str  # the reference as the template writes it, for messages
    in_list: bool = False


_Piece: TypeAlias = _Constant | _Property


@dataclasses.dataclass(frozen=True, slots=True)
class _NoLayout:
    """Why a template has no text to read (plugin and subtree templates)."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class RsyslogTemplate:
    """One template defined in an rsyslog configuration.

    ``string`` is the template text with the configuration's escapes resolved
    (for a list template, the equivalent string form); ``line`` is the 1-based
    line where the definition starts, so messages can point at it. A template
    built by hand (without ``_layout``) is read as a ``template()`` string.
    """

    name: str
    string: str
    line: int
    # What the definition parsed to; None: parse `string` when needed.
    _layout: tuple[_Piece, ...] | _NoLayout | None = dataclasses.field(
        default=None, repr=False, compare=False
    )


class _Problem(Exception):
    """A fault found by a parse action, at ``loc`` of the text being parsed."""

    def __init__(self, loc: int, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


# -- Property references and template strings ---------------------------------

# rsyslog's date formats (the property replacer's date-* options); the last
# one given wins, and date-utc is a modifier, not a format.
_DATE_FORMATS: Final = frozenset(
    {
        "mysql", "pgsql", "rfc3164", "rfc3164-buggyday", "rfc3339", "unixtimestamp",
        "subseconds", "wdayname", "wday", "year", "month", "day", "hour", "minute",
        "second", "tzoffshour", "tzoffsmin", "tzoffsdirection", "ordinal", "week",
        "iso-week", "iso-week-year",
    }
)  # fmt: skip

# %name[:from:to[:options[:fieldname]]]%. A from-position starting with R makes
# the to-position a regular expression that runs up to "--end", as in rsyslog.
_PROPERTY_RE: Final = (
    r"%(?P<name>[^%:]*)"
    r"(?::(?:(?P<regex>R[^:%]*)|[^:%]*)"
    r"(?::(?(regex)[\s\S]*?--end|[^:%]*)"
    r"(?::(?P<options>[^:%]*)"
    r"(?::(?P<field>[^:%]*))?)?)?)?"
    r"[^%]*%"
)


def _make_property(s: str, loc: int, toks: pp.ParseResults) -> _Property:
    match = cast(re.Match[str], toks[0])
    if not match["name"]:
        raise _Problem(
            loc,
            f"{match[0]!r} names no property. rsyslog has no '%%' escape: in a $template "
            "line write \\% for a literal percent; a template() string cannot hold one "
            '(a list template can, in constant(value="%"))',
        )
    date_format = None
    for option in (match["options"] or "").lower().split(","):
        if option.startswith("date-") and option[5:] in _DATE_FORMATS:
            date_format = option[5:]
    return _Property(match["name"], date_format, match["field"] or None, match[0])


def _make_constant(s: str, loc: int, toks: pp.ParseResults) -> _Constant:
    return _Constant(cast(str, toks[0]))


def _unclosed_property(s: str, loc: int, toks: pp.ParseResults) -> None:
    raise _Problem(
        loc,
        "a '%' opens a property reference that no second '%' closes; close it "
        "(in a $template line, write \\% for a literal percent)",
    )


def _legacy_escape(s: str, loc: int, toks: pp.ParseResults) -> _Constant:
    match = cast(re.Match[str], toks[0])
    if match["number"] is not None:  # \DDD: a decimal character code, at most 255
        return _Constant(chr(min(int(match["number"]), 255)))
    return _Constant({"n": "\n", "r": "\r"}.get(match["char"], match["char"]))


def _unclosed_legacy_string(s: str, loc: int, toks: pp.ParseResults) -> None:
    raise _Problem(loc, 'the template text has no closing double quote; end it with "')


def _silent(expr: pp.ParserElement) -> pp.ParserElement:
    """``expr`` with whitespace significant: template text is taken verbatim."""
    return expr.leave_whitespace()


_T_PROPERTY = _silent(pp.Regex(_PROPERTY_RE, as_match=True).set_parse_action(_make_property))
_T_UNCLOSED = _silent(pp.Regex(r"%[\s\S]*").set_parse_action(_unclosed_property))

# A template() string, after RainerScript has unescaped it: % always opens a property.
_STRING_TEMPLATE = _silent(
    pp.ZeroOrMore(_T_PROPERTY | pp.Regex(r"[^%]+").set_parse_action(_make_constant) | _T_UNCLOSED)
).parse_with_tabs()

# A $template line's quoted text, from its opening quote: the template parser
# resolves escapes itself and the text ends at the first unescaped quote.
_LEGACY_STRING = _silent(
    pp.Suppress('"')
    + pp.Group(
        pp.ZeroOrMore(
            _T_PROPERTY
            | pp.Regex(
                r"\\(?:(?P<number>[0-9]+)|(?P<char>[\s\S]?))", as_match=True
            ).set_parse_action(_legacy_escape)
            | pp.Regex(r'[^%"\\]+').set_parse_action(_make_constant)
            | _T_UNCLOSED
        )
    )
    + (pp.Suppress('"') | pp.StringEnd().set_parse_action(_unclosed_legacy_string))
).parse_with_tabs()


def _string_pieces(text: str) -> tuple[_Piece, ...]:
    """The pieces of a ``template()`` string; raises :class:`_Problem`."""
    return tuple(cast(list[_Piece], _STRING_TEMPLATE.parse_string(text, parse_all=True).as_list()))


# -- RainerScript values --------------------------------------------------------

_RS_ESCAPES: Final = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "'": "'", "?": "?", "$": "$",
}  # fmt: skip
_RS_ESCAPE_RE: Final = re.compile(
    r"\\(?:(?P<octal>[0-7]{1,3})|x(?P<hex>[0-9A-Fa-f]{2})|(?P<char>[\s\S]?))"
)


def _unescape_rainerscript(raw: str, *, strict: bool = True) -> str:
    """A quoted RainerScript value's text; raises :class:`_Problem` on a bad escape.

    ``strict=False`` keeps unknown escapes as written: rsyslog unescapes list
    constants a second time, leniently.
    """

    def one(match: re.Match[str]) -> str:
        if match["octal"] is not None:
            return chr(int(match["octal"], 8) & 0xFF)
        if match["hex"] is not None:
            return chr(int(match["hex"], 16))
        char = match["char"]
        if char in _RS_ESCAPES:
            return _RS_ESCAPES[char]
        if not strict:
            return match[0]
        hint = (
            'a type="string" template cannot hold a literal percent; use a list template '
            'with constant(value="%")'
            if char == "%"
            else "write \\\\ for a backslash"
        )
        raise _Problem(
            match.start(),
            f"'\\{char}' is not an escape rsyslog accepts in a quoted value (it accepts "
            f"\\n \\t \\r \\\\ \\\" \\' and octal \\ooo); {hint}",
        )

    return _RS_ESCAPE_RE.sub(one, raw)


@dataclasses.dataclass(frozen=True, slots=True)
class _Value:
    """A parameter value as written: its quote ('[' for an array) and raw text."""

    quote: str
    raw: str
    loc: int  # where the value starts in the configuration text


@dataclasses.dataclass(frozen=True, slots=True)
class _Param:
    name: str  # lower-cased: rsyslog parameter names are case-insensitive
    value: _Value


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    """A list template's ``constant(...)`` or ``property(...)``."""

    kind: str
    params: tuple[_Param, ...]
    loc: int


@dataclasses.dataclass(frozen=True, slots=True)
class _ListBody:
    entries: tuple[_Entry, ...]


def _make_value(s: str, loc: int, toks: pp.ParseResults) -> _Value:
    text = cast(str, toks[0])
    return _Value(text[0], text[1:-1], loc)


def _make_array(s: str, loc: int, toks: pp.ParseResults) -> _Value:
    return _Value("[", "", loc)


def _unclosed_quote(s: str, loc: int, toks: pp.ParseResults) -> None:
    quote = cast(str, toks[0])
    raise _Problem(loc, f"this {quote} opens a value that is never closed; close it with {quote}")


def _bare_value(s: str, loc: int, toks: pp.ParseResults) -> None:
    word = cast(str, toks[0])
    raise _Problem(loc, f'the value {word} is not quoted; rsyslog needs "{word}"')


def _make_param(s: str, loc: int, toks: pp.ParseResults) -> _Param:
    return _Param(cast(str, toks[0]).lower(), cast(_Value, toks[1]))


def _make_entry(s: str, loc: int, toks: pp.ParseResults) -> _Entry:
    kind = cast(str, toks[0]).split("(")[0].strip().lower()
    return _Entry(kind, tuple(cast(list[_Param], toks.as_list()[1:])), loc)


def _make_list_body(s: str, loc: int, toks: pp.ParseResults) -> _ListBody:
    return _ListBody(tuple(cast(list[_Entry], toks.as_list())))


def _text(s: str, value: _Value, where: str, what: str) -> str:
    """The string a parameter value stands for, or a TemplateError saying why not."""
    if value.quote == "`":
        raise TemplateError(
            f"{where}: {what} is a backtick expression, which only rsyslog can evaluate; "
            "write its result in double quotes instead"
        )
    if value.quote == "[":
        raise TemplateError(f"{where}: {what} must be a quoted string, not an array [...]")
    try:
        return _unescape_rainerscript(value.raw)
    except _Problem as problem:
        line = pp.lineno(value.loc + 1 + problem.loc, s)
        raise TemplateError(f"{where}: {what}, line {line}: {problem.message}") from None


def _collect(params: tuple[_Param, ...], where: str, what: str) -> dict[str, _Value]:
    found: dict[str, _Value] = {}
    for param in params:
        if param.name in found:
            raise TemplateError(
                f"{where}: {what} gives {param.name}= twice; keep only the one you mean"
            )
        found[param.name] = param.value
    return found


# -- The two ways of defining a template --------------------------------------


def _legacy_template(s: str, loc: int, toks: pp.ParseResults) -> RsyslogTemplate:
    line = pp.lineno(loc, s)
    text = cast(str, toks[0])
    body = text[text.lower().index("$template") + len("$template") :]
    # rsyslog takes everything up to the first comma as the name.
    name, comma, after = body.partition(",")
    name = name.strip()
    if not comma or not name:
        raise TemplateError(
            f"line {line}: a $template line needs a name, a comma and the template text in "
            'double quotes, like $template MYFMT,"2.1 mytag %timegenerated:::date-unixtimestamp% '
            f'%fromhost-ip% %msg%\\n"; found {text.strip()!r}'
        )
    where = f"rsyslog template {name!r} (line {line})"
    after = after.lstrip(" \t")
    if after.startswith("="):
        module = after[1:].split(",")[0].strip()
        return RsyslogTemplate(
            name,
            "",
            line,
            _NoLayout(
                f"is made by the string generator module {module!r}, which is C code, not text"
            ),
        )
    if not after.startswith('"'):
        raise TemplateError(
            f"{where}: the template text must follow the comma in double quotes; found {after!r}"
        )
    try:
        pieces = tuple(cast(list[_Piece], _LEGACY_STRING.parse_string(after)[0].as_list()))
    except _Problem as problem:
        raise TemplateError(f"{where}: {problem.message}") from None
    # Options after the text (,sql ,json ...) change escaping, not the layout.
    string = "".join(p.text if isinstance(p, _Constant) else p.written for p in pieces)
    return RsyslogTemplate(name, string, line, pieces)


def _list_property(s: str, entry: _Entry, where: str) -> tuple[_Property, str]:
    """A list template's property, and how a string template would write it."""
    params = _collect(entry.params, where, f"the property() on line {pp.lineno(entry.loc, s)}")
    if "name" not in params:
        raise TemplateError(
            f'{where}: the property() on line {pp.lineno(entry.loc, s)} has no name="..."; '
            "say which property it inserts"
        )
    name = _text(s, params["name"], where, "property name=")
    date_format = None
    if "dateformat" in params:
        date_format = _text(s, params["dateformat"], where, "dateFormat=").lower()
    field = _text(s, params["outname"], where, "outname=") if "outname" in params else None
    written = f'property(name="{name}"'
    written += f' dateFormat="{date_format}"' if date_format else ""
    written += f' outname="{field}")' if field else ")"
    option = f"date-{date_format}" if date_format else ""
    if field:
        string = f"%{name}:::{option}:{field}%"
    else:
        string = f"%{name}:::{option}%" if option else f"%{name}%"
    return _Property(name, date_format, field, written, in_list=True), string


def _list_layout(s: str, body: _ListBody, where: str) -> tuple[tuple[_Piece, ...], str]:
    pieces: list[_Piece] = []
    strings: list[str] = []
    for entry in body.entries:
        if entry.kind == "property":
            prop, string = _list_property(s, entry, where)
            pieces.append(prop)
            strings.append(string)
            continue
        line = pp.lineno(entry.loc, s)
        params = _collect(entry.params, where, f"the constant() on line {line}")
        if "value" not in params:
            raise TemplateError(
                f'{where}: the constant() on line {line} has no value="..."; give its text'
            )
        # rsyslog unescapes constant values a second time, leniently.
        text = _unescape_rainerscript(
            _text(s, params["value"], where, "constant value="), strict=False
        )
        pieces.append(_Constant(text))
        strings.append(text)
    return tuple(pieces), "".join(strings)


def _template_object(s: str, loc: int, toks: pp.ParseResults) -> RsyslogTemplate:
    line = pp.lineno(loc, s)
    items = toks.as_list()
    body = next((i for i in items if isinstance(i, _ListBody)), None)
    params = tuple(i for i in items if isinstance(i, _Param))
    found: dict[str, _Value] = {}
    for param in params:  # the first name= names it, even when repeated
        found.setdefault(param.name, param.value)
    if "name" not in found:
        raise TemplateError(
            f'line {line}: this template() has no name="..."; add one (actions refer to '
            "templates by name)"
        )
    name = _text(s, found["name"], f"template() on line {line}", "name=")
    where = f"rsyslog template {name!r} (line {line})"
    found = _collect(params, where, "template()")
    if "type" not in found:
        raise TemplateError(f'{where}: it has no type=; add type="string" or type="list"')
    kind = _text(s, found["type"], where, "type=").lower()
    if kind == "string":
        if "string" not in found:
            raise TemplateError(
                f'{where}: type="string" needs string="..." holding the template text'
            )
        string = _text(s, found["string"], where, "string=")
        try:
            pieces = _string_pieces(string)
        except _Problem as problem:
            raise TemplateError(f"{where}: in string=, {problem.message}") from None
        return RsyslogTemplate(name, string, line, pieces)
    if kind == "list":
        if body is None:
            raise TemplateError(
                f'{where}: type="list" needs a body after the parentheses: '
                '{ constant(value="...") property(name="...") ... }'
            )
        pieces, string = _list_layout(s, body, where)
        return RsyslogTemplate(name, string, line, pieces)
    if kind == "plugin":
        return RsyslogTemplate(
            name,
            "",
            line,
            _NoLayout("is a plugin (string generator) template, which is C code, not text"),
        )
    if kind == "subtree":
        return RsyslogTemplate(
            name, "", line, _NoLayout("is a subtree template: it writes JSON, not a streamlog line")
        )
    raise TemplateError(
        f'{where}: type="{kind}" is not a template type; use "string", "list", "plugin" or "subtree"'
    )


# -- The configuration file ---------------------------------------------------

_QUOTED = pp.Regex(
    r'"(?:[^"\\]|\\[\s\S])*"|\'(?:[^\'\\]|\\[\s\S])*\'|`(?:[^`\\]|\\[\s\S])*`'
).set_parse_action(_make_value)
_BAD_VALUE = pp.Regex(r"[\"'`]").set_parse_action(_unclosed_quote) | pp.Regex(
    r"[^\s\"'`()\[\]{}=,#]+"
).set_parse_action(_bare_value)
_ARRAY = (
    pp.Suppress("[") + pp.Optional(pp.DelimitedList(_QUOTED | _BAD_VALUE)) + pp.Suppress("]")
).set_parse_action(_make_array)
_PARAM = (
    pp.Regex(r"[A-Za-z][A-Za-z0-9_.]*") + pp.Suppress("=") - (_QUOTED | _ARRAY | _BAD_VALUE)
).set_parse_action(_make_param)
_PARAMS = pp.ZeroOrMore(_PARAM + pp.Optional(pp.Suppress(",")))
_CLOSE = pp.Suppress(")").set_name("""a name="value" parameter or ')'""")
_ENTRY = (pp.Regex(r"(?i)(?:constant|property)[ \t\r\n]*\(") - _PARAMS + _CLOSE).set_parse_action(
    _make_entry
)
_LIST_BODY = (
    pp.Suppress("{")
    - pp.ZeroOrMore(_ENTRY)
    + pp.Suppress("}").set_name("""constant(...), property(...) or '}'""")
).set_parse_action(_make_list_body)
_TEMPLATE_START = r"\btemplate[ \t\r\n]*\("
# Once "template(" is seen, the rest must follow (-): a broken definition is an
# error, not text to skip.
_TEMPLATE_OBJECT = (
    _silent(pp.Regex("(?i)" + _TEMPLATE_START)) - _PARAMS + _CLOSE + pp.Optional(_LIST_BODY)
).set_parse_action(_template_object)
_TEMPLATE_OBJECT.ignore(pp.python_style_comment)
_TEMPLATE_OBJECT.ignore(pp.c_style_comment)
_TEMPLATE_OBJECT.leave_whitespace(recursive=False)

# The whole file, token by token. Comments and quoted text are consumed whole
# so that a template mentioned inside them is not taken for one; everything
# else that is not a template is skipped.
_CONF = (
    pp.ZeroOrMore(
        pp.MatchFirst(
            [
                _silent(pp.Regex(r"#[^\n]*\n?")),
                _silent(pp.Regex(r"/\*[\s\S]*?(?:\*/|\Z)")),
                _silent(
                    pp.Regex(r"(?im)^[ \t]*\$template\b[^\n]*").set_parse_action(_legacy_template)
                ),
                _silent(pp.Regex(r"(?m)^[ \t]*\$[^\n]*\n?")),  # other legacy directives
                _TEMPLATE_OBJECT,
                _silent(pp.Regex(r'"(?:[^"\\]|\\[\s\S])*"')),
                _silent(pp.Regex(r"'(?:[^'\\\n]|\\.)*'")),  # one line: apostrophes abound
                # Anything else, newlines too unless a legacy directive follows.
                _silent(
                    pp.Regex(
                        r"(?i)(?:(?!" + _TEMPLATE_START + r")[^#\"'\n/]|/(?!\*)|\n(?![ \t]*\$))+"
                        r"|[\s\S]"
                    )
                ),
            ]
        ).leave_whitespace(recursive=False)
    )
    .leave_whitespace(recursive=False)
    .parse_with_tabs()
)

_OBJECT_START_RE: Final = re.compile("(?i)" + _TEMPLATE_START)
_NAME_RE: Final = re.compile(r"""(?i)\bname[ \t\r\n]*=[ \t\r\n]*(["'])([^"'\n]*)\1""")


def _unreadable(text: str, loc: int, detail: str) -> TemplateError:
    """An error for a template() that cannot be parsed, named as well as it can be.

    Only template() objects fail this way ($template lines name themselves),
    so the definition is the last "template(" before the fault.
    """
    starts = list(_OBJECT_START_RE.finditer(text, 0, loc + 1))
    what = "template definition"
    if starts:
        start = starts[-1]
        what = f"template() starting on line {pp.lineno(start.start(), text)}"
        named = _NAME_RE.search(text, start.end(), loc + 1)
        if named:
            what = f"rsyslog template {named[2]!r} ({what})"
    return TemplateError(f"cannot read the {what}: {detail}")


# -- Public face ----------------------------------------------------------------


def templates_in(text: str) -> list[RsyslogTemplate]:
    """Every template an rsyslog configuration (or a snippet of one) defines.

    Lines that are not template definitions (modules, actions, directives,
    comments) are skipped. A definition that cannot be read raises
    :class:`TemplateError` naming its line, as rsyslog would refuse it too.
    """
    try:
        tokens = _CONF.parse_string(text, parse_all=True)
    except _Problem as problem:
        raise _unreadable(
            text, problem.loc, f"line {pp.lineno(problem.loc, text)}: {problem.message}"
        ) from None
    except pp.ParseBaseException as exc:
        raise _unreadable(
            text,
            exc.loc,
            f"line {exc.lineno}, column {exc.col}: {exc.msg}, found {exc.found}; "
            "check the quotes and parentheses before it",
        ) from None
    return [t for t in tokens if isinstance(t, RsyslogTemplate)]


def streamlog_format_of(template: RsyslogTemplate) -> StreamlogFormat:
    """The streamlog format (with its tag) that ``template`` writes.

    Raises :class:`TemplateError` saying what to change when the template
    does not lay out a streamlog line.
    """
    where = f"rsyslog template {template.name!r} (line {template.line})"
    layout = template._layout
    if layout is None:
        try:
            layout = _string_pieces(template.string)
        except _Problem as problem:
            raise TemplateError(f"{where}: {problem.message}") from None
    if isinstance(layout, _NoLayout):
        raise TemplateError(
            f"{where} {layout.reason}; only string and list templates can describe a streamlog line"
        )
    return _read_layout(where, layout)


def streamlog_formats_in(
    text: str,
) -> tuple[list[StreamlogFormat], list[tuple[RsyslogTemplate, TemplateError]]]:
    """The streamlog formats a configuration defines, and the templates that are not.

    Each template that is not a streamlog layout comes with the reason, so a
    caller can warn about it; a definition that cannot be read at all raises
    :class:`TemplateError`, as in :func:`templates_in`.
    """
    formats: list[StreamlogFormat] = []
    others: list[tuple[RsyslogTemplate, TemplateError]] = []
    for template in templates_in(text):
        try:
            formats.append(streamlog_format_of(template))
        except TemplateError as exc:
            others.append((template, exc))
    return formats, others


# -- Checking a layout ----------------------------------------------------------

_SHAPE: Final = (
    "VERSION TAG %timegenerated:::date-unixtimestamp% %fromhost-ip% [%field% ...] %msg%\\n"
)
_TIME_PROPERTIES: Final = frozenset({"timegenerated", "timereported", "timestamp"})
_FREE_TEXT: Final = frozenset({"msg", "rawmsg", "rawmsg-after-pri", "structured-data", "jsonmesg"})
_SPACED_DATES: Final = frozenset({None, "rfc3164", "rfc3164-buggyday", "pgsql"})


def _shown(piece: _Piece) -> str:
    return piece.written if isinstance(piece, _Property) else repr(piece.text)


def _merged(pieces: tuple[_Piece, ...]) -> list[_Piece]:
    """Pieces with neighbouring constants joined and empty ones dropped."""
    out: list[_Piece] = []
    for piece in pieces:
        if isinstance(piece, _Constant):
            if not piece.text:
                continue
            if out and isinstance(out[-1], _Constant):
                out[-1] = _Constant(out[-1].text + piece.text)
                continue
        out.append(piece)
    return out


def _header(where: str, head: str, first: _Property | None, opening: str) -> tuple[str, str]:
    """Version and tag from the literal text that starts the template."""
    if first is None:
        raise TemplateError(
            f"{where}: the template is only literal text ({head!r}), with no property "
            f"columns; a streamlog line is {_SHAPE}"
        )
    odd = next((c for c in head if c.isspace() and c != " "), None)
    if odd is not None:
        raise TemplateError(
            f"{where}: the text before {first.written}, {head!r}, holds {odd!r}; the version "
            "and the tag must be plain words, each followed by one space"
        )
    if not head.endswith(" "):
        if len(head.split()) >= 2:  # "VERSION TAG%time%": only the space is missing
            raise TemplateError(
                f"{where}: {head.split(' ')[-1]!r} runs straight into {first.written}; put "
                "one space between the tag and the time column"
            )
        raise TemplateError(
            f"{where}: a streamlog line starts with a version and a tag, each followed by "
            f"one space, but this template starts with {opening!r}; a streamlog "
            f"line is {_SHAPE}"
        )
    words = head[:-1].split(" ")
    if not head.strip(" "):
        raise TemplateError(
            f"{where}: it starts with spaces where the version and the tag belong; a "
            f"streamlog line is {_SHAPE}"
        )
    if "" in words:
        raise TemplateError(
            f"{where}: the text before {first.written}, {head!r}, has extra spaces; write the "
            "version and the tag separated by exactly one space"
        )
    if len(words) == 1:
        raise TemplateError(
            f"{where}: only one word, {words[0]!r}, comes before {first.written}; a streamlog "
            f'line starts with a version and a tag, like "2.1 mytag ...": add the tag'
        )
    if len(words) > 2:
        raise TemplateError(
            f"{where}: {len(words)} words come before {first.written} ({' '.join(words)!r}); "
            "the version and the tag are one word each, so remove the extra words or make "
            "them property columns after the time and the ip"
        )
    return words[0], words[1]


def _time_fix(prop: _Property) -> str:
    timely = prop.name.lower() in _TIME_PROPERTIES
    if prop.in_list:
        if timely:
            return 'give it dateFormat="unixtimestamp"'
        return 'put property(name="timegenerated" dateFormat="unixtimestamp") there'
    if timely and prop.date_format:
        return (
            f"replace date-{prop.date_format} with date-unixtimestamp, as in "
            f"%{prop.name}:::date-unixtimestamp%"
        )
    if timely:
        return f"add :::date-unixtimestamp, as in %{prop.name}:::date-unixtimestamp%"
    return (
        "put a time property with :::date-unixtimestamp there, as in "
        "%timegenerated:::date-unixtimestamp%"
    )


def _no_spaces(where: str, prop: _Property, position: str) -> None:
    """Raise if ``prop`` can render spaces: only the last column may."""
    name = prop.name.lower()
    if name == "msg":
        raise TemplateError(
            f"{where}: {prop.written} is {position}, but the message can hold spaces, so "
            "it must be the last column; move it to the end"
        )
    if name in _FREE_TEXT:
        raise TemplateError(
            f"{where}: {prop.written} is {position}, but it can hold spaces, which would "
            "shift every later column; only the last column may"
        )
    if name in _TIME_PROPERTIES and prop.date_format in _SPACED_DATES:
        fix = 'dateFormat="rfc3339"' if prop.in_list else ":::date-rfc3339"
        raise TemplateError(
            f"{where}: {prop.written} is {position}, but this date format holds spaces "
            f"(like 'Oct 11 22:14:15'), which would shift every later column; use {fix} "
            "or date-unixtimestamp"
        )


def _field_name(where: str, prop: _Property) -> str:
    """The field a middle column fills: its explicit name, else its property's."""
    if prop.field_name is not None:
        name = prop.field_name
    else:
        name = prop.name.lower()
        name = name[2:] if name[:2] in ("$!", "$.", "$/") else name.removeprefix("$")
    how = 'outname="NAME"' if prop.in_list else f"%{prop.name}::::NAME%"
    if not name:
        raise TemplateError(f"{where}: {prop.written} gives no field name; name it with {how}")
    if any(c.isspace() for c in name):
        raise TemplateError(
            f"{where}: the field name {name!r} from {prop.written} holds whitespace; "
            f"rename it with {how}"
        )
    return name


def _read_layout(where: str, pieces: tuple[_Piece, ...]) -> StreamlogFormat:
    """The format ``pieces`` lay out, checked left to right; the first fault raises."""
    merged = _merged(pieces)
    if not merged or not isinstance(merged[0], _Constant):
        start = _shown(merged[0]) if merged else "nothing (it is empty)"
        raise TemplateError(
            f"{where}: a streamlog line starts with its version and tag as literal words, "
            f"but this template starts with {start}; a streamlog line is {_SHAPE}"
        )
    first = merged[1] if len(merged) > 1 else None
    opening = "".join(p.text if isinstance(p, _Constant) else p.written for p in merged[:3])
    version, tag = _header(where, merged[0].text, cast(_Property | None, first), opening[:60])

    rest = merged[1:]
    columns: list[_Property] = []
    for i, piece in enumerate(rest):
        if isinstance(piece, _Property):
            if columns and isinstance(rest[i - 1], _Property):
                raise TemplateError(
                    f"{where}: {columns[-1].written} and {piece.written} are not separated; "
                    "streamlog columns are separated by one space, so put one between them"
                )
            columns.append(piece)
        elif i == len(rest) - 1:
            if piece.text != "\n":
                raise TemplateError(
                    f"{where}: {piece.text!r} follows the last column {columns[-1].written}; "
                    "only a final \\n may follow it (the last column is msg, and msg ends "
                    "the line)"
                )
        elif piece.text != " ":
            raise TemplateError(
                f"{where}: the text {piece.text!r} between {columns[-1].written} and "
                f"{_shown(rest[i + 1])} is not a single space; streamlog columns hold only "
                "their property and are separated by exactly one space, so replace it with one"
            )

    if len(columns) < 3:
        found = " ".join(c.written for c in columns)
        raise TemplateError(
            f"{where}: only {len(columns)} column(s) follow the tag ({found}), but a streamlog "
            f"line needs at least a time, an ip and a msg column: {_SHAPE}"
        )
    time, ip, middle = columns[0], columns[1], columns[2:-1]
    if time.date_format != "unixtimestamp":
        raise TemplateError(
            f"{where}: the first column after the tag must be the time in unix seconds, but "
            f"{time.written} is not rendered as a unix timestamp; {_time_fix(time)}"
        )
    _no_spaces(where, ip, "the ip column")
    fields: list[str] = []
    origin: dict[str, _Property] = {}
    for number, prop in enumerate(middle, start=3):
        _no_spaces(where, prop, f"column {number} after the tag")
        name = _field_name(where, prop)
        if name == "msg":
            raise TemplateError(
                f"{where}: {prop.written} is named msg, but msg is the last column's name; "
                "give it another name"
            )
        if name in origin:
            raise TemplateError(
                f"{where}: {origin[name].written} and {prop.written} both give the field "
                f"{name!r}; drop one, or rename one with an explicit field name"
            )
        origin[name] = prop
        fields.append(name)
    try:
        return StreamlogFormat(version=version, fields=tuple(fields), tag=tag)
    except FormatDefinitionError as exc:
        raise TemplateError(f"{where}: {exc}") from None
