"""The filter grammar shared by routes, ``receiverctl tail --filter`` and ``receiverctl search``."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from formats.columns import columns_of, lookup
from formats.parse import make_parser
from formats.record import Record, truncated_flag
from formats.streamlog import STREAMLOG_TAG
from receiver.filters.expression import (
    And,
    Comparison,
    Filter,
    FilterError,
    Not,
    Or,
    TextSearch,
    parse_filter,
)
from receiver.filters.predicate import field_reader, message_of, word_class
from receiver.filters.values import is_word_char
from tests.helpers import filter_expressions

PARSE = make_parser()
PEER = "10.0.0.9"
T0 = 1_795_323_666


def streamlog(
    pri_text: str = "user.notice",
    app: str = "todo-list",
    msg: str = "Create a new task",
    *,
    tag: str = "sys_tag",
) -> Record:
    line = f"0.1 {tag} {T0} 10.0.0.7 web-1 {pri_text} 0 {app} 705 - {msg}"
    return PARSE(line.encode(), PEER, T0 * 10**9)


def rfc5424(pri: int = 28, app: str = "todo-list", msg: str = "Create a new task") -> Record:
    line = f'<{pri}>1 2026-11-22T10:01:06Z web-1 {app} 705 ID7 [x@1 a="b"] {msg}'
    return PARSE(line.encode(), PEER, T0 * 10**9)


def rfc3164(pri: int = 28, app: str = "todo-list", msg: str = "Create a new task") -> Record:
    return PARSE(f"<{pri}>Nov 22 10:01:06 web-1 {app}[705]: {msg}".encode(), PEER, T0 * 10**9)


def matches(text: str, record: Record) -> bool:
    return parse_filter(text).matches(record)


def error_of(text: str) -> FilterError:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    return caught.value


ALL_KINDS = [streamlog(), rfc5424(), rfc3164()]
KIND_IDS = ["streamlog", "rfc5424", "rfc3164"]


class TestIssueExample:
    """``app-name=todo-list and _severity_<=4``: warning or more severe, from the todo-list app."""

    FILTER = "app-name=todo-list and _severity_<=4"

    def test_notice_line_is_less_severe_than_4(self) -> None:
        """If the line is user.notice (severity 5), then <=4 does not take it: smaller is more severe."""
        record = PARSE(
            b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 todo-list 705 - Create a new task",
            PEER,
            T0 * 10**9,
        )
        assert lookup(record, "_severity_") == "5"
        assert not matches(self.FILTER, record)
        assert matches("app-name=todo-list and _severity_<=5", record)
        assert matches("app-name=todo-list and _severity_<=notice", record)

    @pytest.mark.parametrize(
        "pri_text", ["user.warning", "user.err", "local0.crit", "user.warn", "user.error"]
    )
    def test_warning_and_worse_lines_match(self, pri_text: str) -> None:
        """If the line is warning or more severe, then the example filter takes it."""
        assert matches(self.FILTER, streamlog(pri_text))
        assert matches("app-name=todo-list and _severity_<=warning", streamlog(pri_text))

    def test_other_app_does_not_match(self) -> None:
        """If the app differs, then the filter does not take even an error line."""
        assert not matches(self.FILTER, streamlog("user.err", app="billing"))

    def test_same_filter_works_on_syslog_records(self) -> None:
        """If the record is RFC 5424 or RFC 3164, then app-name and _severity_ still resolve."""
        assert matches(self.FILTER, rfc5424(pri=28))  # user.warning
        assert matches(self.FILTER, rfc3164(pri=28))
        assert not matches(self.FILTER, rfc5424(pri=30))  # user.info
        assert not matches(self.FILTER, rfc3164(pri=30))


class TestEquality:
    """``=`` and ``!=``: string equality on formats.columns.lookup, wildcards when unquoted."""

    @pytest.mark.parametrize("record", ALL_KINDS, ids=KIND_IDS)
    @pytest.mark.parametrize(
        "text",
        [
            "host=web-1",
            "app=todo-list",
            "app-name=todo-list",
            'message="Create a new task"',
            "procid=705",
        ],
    )
    def test_columns_and_equivalents_on_every_kind(self, record: Record, text: str) -> None:
        """If a column or rsyslog name is compared, then every record kind answers alike."""
        assert matches(text, record)
        assert not matches(text.replace("=", "!=", 1), record)

    def test_streamlog_fields_by_their_own_names(self) -> None:
        """If a streamlog field is named as rsyslog names it, then its value is compared."""
        record = streamlog()
        assert matches("hostname=web-1", record)
        assert matches("pri-text=user.notice", record)
        assert matches("msgid=-", record)
        assert matches('msg="Create a new task"', record)
        assert not matches("hostname=web-2", record)

    def test_syslog_fields_by_logtail_names(self) -> None:
        """If Logtail's names are used on RFC 5424, then they compare as stored."""
        record = rfc5424()
        assert matches(
            "_program_=todo-list _message_id_=ID7 _process_id_=705 _priority_=28", record
        )
        assert matches("msgid=ID7", record)

    def test_equality_is_exact_and_case_sensitive(self) -> None:
        """If the value differs in case or length, then = is false."""
        record = streamlog()
        assert not matches("app-name=Todo-List", record)
        assert not matches("app-name=todo", record)

    def test_missing_field(self) -> None:
        """If the record lacks the field, then = is false and != is true."""
        record = streamlog()
        assert not matches("nosuch=x", record)
        assert not matches('nosuch=""', record)
        assert matches("nosuch!=x", record)

    def test_unknown_severity_is_missing(self) -> None:
        """If the severity is unknown (-1 in a raw record), then it is not 'missing' but '-1' as stored."""
        raw = PARSE(b"garbage", PEER, T0 * 10**9)
        assert matches("_severity_=-1", raw)
        assert not matches("_severity_<=7", raw)

    def test_severity_name_equals_its_number(self) -> None:
        """If a severity field is compared with a name, then the name means its number."""
        assert matches("_severity_=notice", streamlog())
        assert matches("severity=5 syslogseverity=notice", streamlog())
        assert matches("_severity_=warning", rfc5424(pri=28))
        assert matches("_severity_=warn", rfc5424(pri=28))
        assert not matches("_severity_=err", rfc5424(pri=28))
        assert matches("_severity_!=err", rfc5424(pri=28))

    def test_glob_when_unquoted(self) -> None:
        """If an unquoted value holds * or ?, then it is a wildcard over the whole value."""
        record = streamlog()
        assert matches("host=web-*", record)
        assert matches("host=*-1", record)
        assert matches("host=web-?", record)
        assert matches("app=*do-li*", record)
        assert not matches("host=web-??", record)
        assert not matches("host=web", record)
        assert matches("host!=db-*", record)
        assert not matches("host!=web-*", record)

    def test_quoted_wildcards_are_literal(self) -> None:
        """If the value is quoted, then * and ? are plain characters."""
        assert not matches('host="web-*"', streamlog())
        assert matches('msg="a*b?"', streamlog(msg="a*b?"))
        assert not matches('msg="a*b?"', streamlog(msg="aXXbY"))

    def test_glob_knows_only_star_and_question_mark(self) -> None:
        """If a wildcard value holds [ ], then they are literal, not a character class."""
        assert matches("msg=[x]*", streamlog(msg="[x] rest"))
        assert not matches("msg=[x]*", streamlog(msg="x rest"))

    def test_glob_spans_newlines(self) -> None:
        """If the value holds a newline, then * still matches across it."""
        record = Record(T0, 0, ("msg",), ["first\nsecond"], "s", {})
        assert matches("msg=first*", record)


class TestOrder:
    """``< <= > >=``: numbers, and severity names on the severity fields."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("procid<706", True),
            ("procid<705", False),
            ("procid<=705", True),
            ("procid>704", True),
            ("procid>705", False),
            ("procid>=705", True),
            ("procid>=705.5", False),
            ("procid<1e3", True),
            ("procid>-1", True),
        ],
    )
    def test_numbers(self, text: str, expected: bool) -> None:
        """If both sides are numbers, then they compare as numbers."""
        assert matches(text, streamlog()) is expected
        assert matches(text.replace("procid", "_process_id_"), rfc5424()) is expected

    def test_numeric_not_textual(self) -> None:
        """If the values would order differently as text, then numbers still win (9 < 10)."""
        record = Record(T0, 0, ("n",), ["9"], "s", {})
        assert matches("n<10", record)
        assert matches("n>=9.0", record)

    def test_non_numeric_or_missing_record_value(self) -> None:
        """If the record's value is missing or not a number, then every comparison is false."""
        record = Record(T0, 0, ("n",), ["nine"], "s", {})
        for op in ("<", "<=", ">", ">="):
            assert not matches(f"n{op}5", record)
            assert not matches(f"missing{op}5", record)
        assert not matches("n>1", Record(T0, 0, ("n",), ["inf"], "s", {}))
        assert not matches("n>1", Record(T0, 0, ("n",), ["1_000"], "s", {}))

    def test_unicode_digits_do_not_raise(self) -> None:
        """If a severity is a Unicode digit that int() refuses ("¹"), then it is no severity."""
        error = error_of("_severity_<=¹")
        assert "expected a severity" in error.reason
        assert not matches("_severity_<=7", streamlog("user.¹"))
        assert not matches("_severity_=1", Record(T0, 0, ("_severity_",), ["¹"], "s", {}))
        assert matches("_severity_=¹", Record(T0, 0, ("_severity_",), ["¹"], "s", {}))

    def test_huge_numbers_do_not_raise(self) -> None:
        """If a value has more digits than int() takes, then it still compares."""
        record = Record(T0, 0, ("n",), ["9" * 5000], "s", {})
        assert matches("n>1", record)

    @pytest.mark.parametrize(
        ("pri_text", "worse_than_info"),
        [
            ("user.emerg", True),
            ("user.err", True),
            ("user.notice", True),
            ("user.info", False),
            ("user.debug", False),
        ],
    )
    def test_severity_names(self, pri_text: str, worse_than_info: bool) -> None:
        """If a severity name is given, then it orders by number (smaller is more severe)."""
        assert matches("_severity_<info", streamlog(pri_text)) is worse_than_info
        assert matches("severity>=info", streamlog(pri_text)) is not worse_than_info

    def test_severity_from_pri_text_with_a_number(self) -> None:
        """If pri-text carries <PRI>, then the severity comes from it."""
        assert matches("_severity_=3", streamlog("local0.err<131>"))
        assert matches("facility=16", streamlog("local0.err<131>"))

    def test_time(self) -> None:
        """If time is compared, then the record's whole seconds are."""
        record = streamlog()
        assert matches(f"time>={T0}", record)
        assert matches(f"time<{T0 + 1}", record)
        assert not matches(f"time>{T0}", record)
        assert matches(f"time={T0}", record)
        assert matches(f"time={T0}.0", record)
        assert matches(f"time!={T0 + 1}", record)
        assert not matches(f"time!={T0}", record)
        assert matches(f"time={str(T0)[:4]}*", record)
        assert matches(f"time~^{str(T0)[:4]}", record)
        assert matches(f"time>{T0 - 0.5}", record)

    def test_source_and_tag_numeric(self) -> None:
        """If source or tag is compared numerically, then non-numbers are simply false."""
        assert not matches("source>1", streamlog())
        assert matches("tag>1", streamlog(tag="42"))


class TestRegex:
    """``~``: re.search on the value."""

    def test_search_anywhere(self) -> None:
        """If the pattern occurs anywhere in the value, then ~ is true."""
        record = streamlog()
        assert matches("msg~new", record)
        assert matches("msg~^Create", record)
        assert not matches("msg~^new", record)
        assert matches('msg~"a (new|old) task$"', record)
        assert matches(r'msg~"\w+ \w+"', record)
        assert matches(r"procid~^\d+$", record)

    def test_case_sensitive_unless_asked(self) -> None:
        """If the case differs, then only an inline (?i) makes it match."""
        assert not matches("msg~create", streamlog())
        assert matches('msg~"(?i)create"', streamlog())

    def test_missing_field(self) -> None:
        """If the record lacks the field, then ~ is false, even for a pattern matching ''."""
        assert not matches("nosuch~.*", streamlog())

    def test_on_syslog_records(self) -> None:
        """If the record is RFC 5424, then the equivalents resolve for ~ too."""
        assert matches("app-name~^todo msg~task$", rfc5424())


class TestFullText:
    """A bare word or "phrase" searches the message, case-insensitively, on word boundaries."""

    @pytest.mark.parametrize("record", ALL_KINDS, ids=KIND_IDS)
    def test_every_kind(self, record: Record) -> None:
        """If the record is any kind, then its message column is searched."""
        assert matches("create", record)
        assert matches('"NEW TASK"', record)
        assert not matches("todo-list", record)  # the app, not the message

    def test_word_boundaries(self) -> None:
        """If the term lies inside a longer word, then it is not found."""
        record = streamlog(msg="Diskette is full; disk_usage=99%")
        assert not matches("disk ette", record)
        assert not matches("isk", record)
        assert matches("diskette", record)
        assert matches("disk", record)  # "_" separates words, as in FTS5
        assert matches("usage", record)
        assert matches("99%", record)
        assert matches('"usage=99"', record)
        assert not matches('"99 %"', record)

    def test_later_occurrence_counts(self) -> None:
        """If the first occurrence is inside a word, then a later whole one still matches."""
        assert matches("disk", streamlog(msg="diskette then disk"))
        assert matches("disk", streamlog(msg="xdisk disk"))

    def test_punctuation_at_term_edges_needs_no_boundary(self) -> None:
        """If the term starts or ends with punctuation, then no boundary is needed there."""
        record = streamlog(msg="path=/var/tmp/x")
        assert matches("/var/", record)
        assert matches('"=/var"', record)
        assert not matches("ar/", record)

    def test_phrase_spacing_is_literal(self) -> None:
        """If a phrase has two spaces, then the message must have two spaces there."""
        assert not matches('"disk  full"', streamlog(msg="disk full"))
        assert matches('"disk  full"', streamlog(msg="DISK  FULL"))

    def test_wildcards_in_bare_words(self) -> None:
        """If a bare word holds * or ?, then they match inside and across words."""
        record = streamlog(msg="Diskette full on /var/tmpfs")
        assert matches("disk*", record)
        assert matches("*kette", record)
        assert matches("*tmp*", record)
        assert matches("dis?ette", record)
        assert not matches("*kett", record)
        assert matches("diskette*fs", record)
        assert matches('"disk*"', streamlog(msg="literal disk* here"))
        assert not matches('"disk*"', record)

    def test_non_ascii(self) -> None:
        """If the message is not ASCII, then case folding and boundaries still hold."""
        record = streamlog(msg="Fehler: ÜBERLAUF im Café")
        assert matches("überlauf", record)
        assert matches("café", record)
        assert not matches("caf", record)
        assert not matches("cafe", record)  # accents are not folded by matches()

    def test_combining_marks_glue_words(self) -> None:
        """If a combining mark precedes the term, then it is part of the word before (as in FTS5)."""
        assert not matches("rror", streamlog(msg="e\u0301rror here"))
        assert matches("e\u0301rror", streamlog(msg="E\u0301RROR here"))

    def test_empty_phrase_matches_all(self) -> None:
        """If the phrase is empty, then every record has it."""
        assert matches('""', streamlog())

    def test_keywords_quoted_are_words(self) -> None:
        """If a keyword is quoted, then it is searched as a word."""
        assert matches('"and"', streamlog(msg="this and that"))
        assert not matches('"and"', streamlog(msg="this or that"))


class TestSpecialFields:
    """source, tag, flag and time read the record itself, not its fields."""

    def test_source(self) -> None:
        """If source is compared, then the record's source (the ip column) is."""
        assert matches("source=10.0.0.7", streamlog())
        assert matches("source=10.0.0.*", streamlog())
        assert matches(f"source={PEER}", rfc5424())

    def test_tag(self) -> None:
        """If tag is compared, then the streamlog tag is; syslog records have none."""
        assert matches("tag=sys_tag", streamlog())
        assert matches("tag~^sys", streamlog())
        assert not matches("tag=sys_tag", rfc5424())
        assert matches("tag!=sys_tag", rfc5424())
        assert streamlog().tags[STREAMLOG_TAG] == "sys_tag"

    def test_flag(self) -> None:
        """If flag=NAME, then any flag equal to NAME or NAME:detail matches."""
        truncated = streamlog().with_flags((truncated_flag(70000),))
        assert matches("flag=truncated", truncated)
        assert not matches("flag!=truncated", truncated)
        assert matches("flag=truncated:70000", truncated)
        assert not matches("flag=trunc", truncated)
        assert matches("flag=trunc*", truncated)
        assert matches("flag~^truncated:[0-9]+$", truncated)
        assert not matches("flag=truncated", streamlog())
        assert matches("flag!=truncated", streamlog())
        raw = PARSE(b"junk", PEER, 0)
        assert matches("flag=parse-error", raw)
        assert matches("not flag=parse-error", streamlog())


class TestPrecedence:
    """not > and > or; juxtaposition is and; parentheses group; keywords in any case."""

    RECORD = Record(T0, 0, ("a", "b", "c"), ["1", "1", "0"], "s", {})

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("a=1 or b=0 and c=1", True),  # a or (b and c)
            ("(a=1 or b=0) and c=1", False),
            ("c=1 and b=0 or a=1", True),  # (c and b) or a
            ("c=1 and (b=0 or a=1)", False),
            ("not a=1 or b=1", True),  # (not a) or b
            ("not (a=1 or b=1)", False),
            ("not a=1 and b=1", False),
            ("not not a=1", True),
            ("not not not a=1", False),
            ("a=1 b=1", True),
            ("a=1 c=1", False),
            ("a=1 b=1 or c=1", True),
            ("c=1 a=1 or b=0", False),  # (c and a) or b
            ("a=1 not c=1", True),
            ("A=1", False),  # field names are case-sensitive
            ("a=1 AND b=1", True),
            ("c=1 Or a=1", True),
            ("NOT c=1", True),
            ("((a=1))", True),
            ("(a=1)(b=1)", True),
            ("not(c=1)", True),
        ],
    )
    def test_table(self, text: str, expected: bool) -> None:
        """If operators mix, then not binds tightest and or loosest."""
        assert matches(text, self.RECORD) is expected


class TestQuoting:
    """Values bare or double-quoted; field names of rsyslog's alphabet."""

    def test_escapes(self) -> None:
        r"""If a quoted value holds \" or \\, then they are a quote and a backslash."""
        record = Record(T0, 0, ("x",), ['say "hi" \\ bye'], "s", {})
        assert matches(r'x="say \"hi\" \\ bye"', record)

    def test_other_backslashes_stay(self) -> None:
        r"""If a quoted value holds another backslash, then it is kept (for regexes)."""
        record = Record(T0, 0, ("x",), ["a\\d"], "s", {})
        assert matches(r'x="a\d"', record)
        assert matches(r'x~"^\d+$"', Record(T0, 0, ("x",), ["123"], "s", {}))

    def test_quoted_value_with_spaces_parens_operators(self) -> None:
        """If a value has spaces, parentheses or operators, then quotes carry it."""
        record = Record(T0, 0, ("x",), ["a (b) = c < d ~ e and f"], "s", {})
        assert matches('x="a (b) = c < d ~ e and f"', record)

    def test_keyword_values_in_quotes(self) -> None:
        """If the value is a keyword, then quoted it is a value."""
        assert matches('x="or"', Record(T0, 0, ("x",), ["or"], "s", {}))

    def test_keyword_prefixes_are_plain_words(self) -> None:
        """If a word only starts like a keyword, then it is a plain word or value."""
        record = Record(T0, 0, ("x", "msg"), ["android", "notice order andy"], "s", {})
        assert matches("x=android", record)
        assert matches("notice order andy", record)

    def test_field_names(self) -> None:
        """If field names use - . $ ! _, then they are read whole."""
        record = Record(T0, 0, ("$!foo", "a.b", "app-name", "_x_"), ["1", "2", "3", "4"], "s", {})
        assert matches("$!foo=1 a.b=2 app-name=3 _x_=4", record)
        assert matches("$!foo!=2", record)
        assert not matches("$!foo!=1", record)

    def test_spaces_around_operators(self) -> None:
        """If the operator has spaces around it, then it still compares."""
        assert matches("app-name = todo-list and _severity_ <= 5", streamlog())

    def test_unicode_spaces_separate_terms(self) -> None:
        """If a no-break space separates terms, then it is a space; inside quotes it is kept."""
        assert matches("app=todo-list\u00a0and\u3000create", streamlog())
        assert matches('"a\u00a0b"', streamlog(msg="a\u00a0b"))
        assert not matches('"a\u00a0b"', streamlog(msg="a b"))

    def test_bare_values_take_odd_characters(self) -> None:
        """If a bare value holds ! : / , * etc., then it is read whole."""
        record = Record(T0, 0, ("x",), ["a!b:/c,d"], "s", {})
        assert matches("x=a!b:/c,d", record)


class TestErrors:
    """Mistakes raise FilterError naming what was expected and where, with a caret line."""

    def test_issue_example(self) -> None:
        """If a value is missing at the end, then the message says so at the column after the operator."""
        error = error_of("app-name=todo-list and _severity_<=")
        lines = str(error).splitlines()
        assert lines[0] == 'filter: expected a value after "<=" at column 36'
        assert lines[1] == "  app-name=todo-list and _severity_<="
        assert lines[2] == "  " + " " * 35 + "^"
        assert (error.column, error.position, error.line) == (36, 35, 1)
        assert isinstance(error, ValueError)

    @pytest.mark.parametrize(
        ("text", "column", "says"),
        [
            ("a and", 6, 'expected a term (a word, a "phrase", field=value or "(") after "and"'),
            ("a or", 5, 'after "or"'),
            ("not", 4, 'after "not"'),
            ("a and or b", 7, 'after "and", found "or"'),
            ("and a", 1, '"and" needs a term before it'),
            ("(a or b", 8, 'to close the "("'),
            ("a or b)", 7, 'found ")" with no "(" before it'),
            ("()", 2, 'after "("'),
            ("=x", 1, '"=" needs a field name before it'),
            ("a b >= 3 <", 10, '"<" needs a field name before it'),
            ("x==y", 3, 'with one "="'),
            ("x=~y", 3, "field~regex"),
            ("x=and", 3, 'quote it: "and"'),
            ('x="abc', 3, 'this " opens a value that is never closed'),
            ('"abc', 1, 'this " opens a phrase that is never closed'),
            ("msg~(a)", 5, 'goes in quotes: msg~"..."'),
            (
                'msg~"a(b"',
                7,
                "the regular expression 'a(b' is not valid (missing ), unterminated subpattern",
            ),
            ("msg~a{2,1}", 7, "min repeat greater than max repeat"),
            ("flag<3", 5, '"flag" takes =, != or ~'),
            ("procid<abc", 8, "\"<\" compares numbers, but 'abc' is not one"),
            ("_severity_<=bogus", 13, 'expected a severity after "<="'),
            ("a/b=c", 1, "'a/b' is not a field name"),
            ("foo(bar)", 4, "the word 'foo' ends at '('"),
            ('x="a"b', 6, 'expected a space or ")" after the closing quote'),
            ('"a"=b', 4, "a field name cannot be quoted"),
            ("x=y(z)", 4, "the value ends at '('"),
            ('x=a"b"', 4, "the value ends at '\"'"),
        ],
    )
    def test_mistakes(self, text: str, column: int, says: str) -> None:
        """If the filter has a mistake, then the error points at it and says what to do."""
        error = error_of(text)
        first = str(error).splitlines()[0]
        assert says in first
        assert first.endswith(f" at column {column}"), first
        assert error.column == column
        caret_line = str(error).splitlines()[2]
        assert caret_line.index("^") == column + 1  # two spaces of indentation

    def test_multiline_filter(self) -> None:
        """If the filter spans lines, then the error names the line and shows only that line."""
        error = error_of("a=1\n  and (b=2\n   or")
        lines = str(error).splitlines()
        assert lines[0].endswith("at line 3, column 6")
        assert lines[1] == "     or"
        assert lines[2] == "       ^"

    def test_tabs_keep_the_caret_aligned(self) -> None:
        """If tabs precede the mistake, then the caret line repeats them."""
        lines = str(error_of("a\tand")).splitlines()
        assert lines[1] == "  a\tand"
        assert lines[2] == "   \t   ^"

    def test_unprintable_characters_are_shown_as_question_marks(self) -> None:
        """If the text holds control characters, then the shown line stays one line."""
        lines = str(error_of("a\x1b and")).splitlines()
        assert len(lines) == 3
        assert "\x1b" not in lines[1]

    def test_deep_nesting_is_refused(self) -> None:
        """If parentheses nest too deep, then it is a FilterError, not a RecursionError."""
        assert parse_filter("(" * 32 + "a" + ")" * 32).matches(streamlog(msg="a"))
        error = error_of("(" * 200 + "a" + ")" * 200)
        assert "nest deeper" in str(error)

    def test_parentheses_in_quotes_do_not_nest(self) -> None:
        """If parentheses are quoted, then they do not count as nesting."""
        assert matches('"' + "(" * 100 + '"', streamlog(msg="(" * 100))

    def test_parse_failures_keep_working_after_an_error(self) -> None:
        """If one parse fails, then the next one is unaffected (no state left in the grammar)."""
        error_of("a and")
        assert matches("create", streamlog())


class TestEmptyAndIdentity:
    """The empty filter, equality, hashing and the never-raising matches."""

    @pytest.mark.parametrize("text", ["", "   ", "\n\t "])
    def test_empty_matches_everything(self, text: str) -> None:
        """If the text is empty or blank, then the filter matches every record and needs no word."""
        f = parse_filter(text)
        assert f.text == text
        assert all(f.matches(r) for r in ALL_KINDS)
        assert f.matches(Record(0, 0, (), [], "", {}))
        assert f.required_words() == ()

    def test_equal_and_hashable_by_text(self) -> None:
        """If two filters have the same text, then they are equal and hash alike."""
        a, b = parse_filter("x=1 and y"), parse_filter("x=1 and y")
        assert a == b
        assert len({a, b, parse_filter("x=2")}) == 2
        assert isinstance(a, Filter)
        assert repr(a) == "Filter('x=1 and y')"

    def test_constructor_parses(self) -> None:
        """If a Filter is built directly, then it is parsed like parse_filter's."""
        assert Filter("app=todo-list").matches(streamlog())
        assert not Filter("app=billing").matches(streamlog())
        with pytest.raises(FilterError):
            Filter("app=")

    def test_immutable(self) -> None:
        """If someone sets an attribute, then the filter refuses."""
        f = parse_filter("x=1")
        with pytest.raises(AttributeError):
            f.text = "x=2"
        with pytest.raises(AttributeError):
            del f.matches

    def test_malformed_record_does_not_raise(self) -> None:
        """If a record's values are shorter than its keys, then matches is false, not an error."""
        broken = Record(0, 0, ("msg", "a"), [], "", {})
        assert parse_filter("a=1").matches(broken) is False
        assert parse_filter("word").matches(broken) is False

    def test_same_layout_new_tuple(self) -> None:
        """If records of equal keys come in different tuples, then each is read right."""
        f = parse_filter("x=1")
        for _ in range(3):
            assert f.matches(Record(0, 0, tuple(["y", "x"]), ["0", "1"], "", {}))
            assert not f.matches(Record(0, 0, tuple(["x", "y"]), ["0", "1"], "", {}))


class TestTree:
    """Parsing gives an immutable tree; the closures and the SQL are compiled from it."""

    @pytest.mark.parametrize(
        ("text", "tree"),
        [
            ("", And(())),
            ("app-name=todo-list", Comparison("app-name", "=", "todo-list")),
            ('x="a b"', Comparison("x", "=", "a b", quoted=True)),
            ("x != 1", Comparison("x", "!=", "1")),
            ("disk", TextSearch("disk")),
            ("dis*", TextSearch("dis*", wildcard=True)),
            ('"dis*"', TextSearch("dis*")),
            ("a b", And((TextSearch("a"), TextSearch("b")))),
            ("a and b or c", Or((And((TextSearch("a"), TextSearch("b"))), TextSearch("c")))),
            ("a or b c", Or((TextSearch("a"), And((TextSearch("b"), TextSearch("c")))))),
            ("(a b) c", And((And((TextSearch("a"), TextSearch("b"))), TextSearch("c")))),
            ("((a))", TextSearch("a")),
            ("not a", Not(TextSearch("a"))),
            ("not not a", TextSearch("a")),
            ("not not not a", Not(TextSearch("a"))),
            ('msg~"\\d+" flag=truncated', And((Comparison("msg", "~", "\\d+", quoted=True),
                                                Comparison("flag", "=", "truncated")))),
        ],
    )
    def test_shapes(self, text: str, tree: object) -> None:
        """If a filter is parsed, then its tree has the grammar's precedence and no double negation."""
        assert parse_filter(text).tree == tree

    def test_wildcard_is_unquoted_star_or_question_mark(self) -> None:
        """If a value is unquoted and holds * or ?, then the comparison is a wildcard."""
        assert Comparison("host", "=", "web-*").wildcard
        assert not Comparison("host", "=", "web-*", quoted=True).wildcard
        assert not Comparison("host", "=", "web-1").wildcard

    def test_nodes_are_immutable(self) -> None:
        """If someone sets a node's attribute, then it refuses; nodes have no __dict__."""
        node = parse_filter("a=1 b").tree
        assert isinstance(node, And)
        with pytest.raises(AttributeError):
            node.terms = ()  # type: ignore[misc]
        assert not hasattr(node, "__dict__")
        with pytest.raises(AttributeError):
            parse_filter("x").tree = node

    def test_tree_of_a_refused_filter_is_never_built(self) -> None:
        """If a comparison cannot compile (bad regex, non-number order), then parsing refuses it."""
        for text in ("x~(", "x<abc", "flag<3", "_severity_<bogus"):
            with pytest.raises(FilterError):
                parse_filter(text)


class TestRequiredWords:
    """Words every matching record's message has: a sound pre-filter for SQLite FTS5."""

    @pytest.mark.parametrize(
        ("text", "words"),
        [
            ("disk", ("disk",)),
            ("Disk FULL", ("disk", "full")),
            ('"disk full"', ("disk", "full")),
            ("disk and full", ("disk", "full")),
            ("disk (full and /var/tmp)", ("disk", "full", "var", "tmp")),
            ("disk or full", ()),
            ("not disk", ()),
            ("disk not full", ("disk",)),
            ("(disk or full) error", ("error",)),
            ("disk disk", ("disk",)),
            ("app=x disk", ("disk",)),
            ("disk* full", ("full",)),
            ("*isk error", ("error",)),
            ("a*b c?d e", ("e",)),
            ('"x*y"', ("x", "y")),
            ("café crème ok", ("ok",)),
            ('99% "usage=5"', ("99", "usage", "5")),
            ("disk_full", ("disk", "full")),
            ("e\u0301rror x", ("x",)),
            ("", ()),
            ("not not disk", ("disk",)),
        ],
    )
    def test_examples(self, text: str, words: tuple[str, ...]) -> None:
        """If full-text terms are joined by top-level and, then their whole ASCII words are required."""
        assert parse_filter(text).required_words() == words


# -- Properties ------------------------------------------------------------------

VOCABULARY = ["disk", "full", "DISK", "err", "error", "x", "12", "and", "café", "e\u0301"]
GLUE = [" ", " ", "-", "_", ".", "/", "", "é", "\u0301", "=", ": "]


@st.composite
def messages(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.sampled_from(VOCABULARY), max_size=8))
    glue = draw(st.lists(st.sampled_from(GLUE), min_size=len(parts), max_size=len(parts)))
    return "".join(g + p for g, p in zip(glue, parts, strict=True))


TERMS = st.sampled_from(
    [
        "disk",
        "full",
        "Disk",
        "err",
        "error",
        "x",
        "12",
        "café",
        "dis*",
        "*rr",
        "e?ror",
        '"disk full"',
        '"disk-full"',
        '"err x"',
        '"and"',
        "/x",
        "x.12",
        "disk_full",
        "*",
        '""',
    ]
)


def fts_tokens(message: str) -> set[str]:
    """What FTS5's unicode61 would index, near enough for ASCII words: lower-cased alnum runs."""
    return {w.lower() for w in re.findall(r"[^\W_]+", message)}


@pytest.fixture(scope="module")
def fts() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE m USING fts5(message)")
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no FTS5")
    yield db
    db.close()


class TestProperties:
    """Hypothesis: soundness of required_words, and nothing raises but FilterError."""

    # Most generated pairs do not match (assume below drops them): that is the point, not a slow strategy.
    @settings(
        max_examples=400, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    )
    @given(text=filter_expressions(TERMS), message=messages())
    def test_required_words_are_sound(
        self, fts: sqlite3.Connection, text: str, message: str
    ) -> None:
        """If a record matches, then an FTS5 query for all required words finds its message."""
        f = parse_filter(text)
        record = Record(T0, 0, ("msg",), [message], "s", {})
        assume(f.matches(record))
        words = f.required_words()
        assert set(words) <= fts_tokens(message)
        fts.execute("DELETE FROM m")
        fts.execute("INSERT INTO m(rowid, message) VALUES (1, ?)", (message,))
        if words:
            query = " AND ".join(f'"{w}"' for w in words)
            assert fts.execute("SELECT rowid FROM m WHERE m MATCH ?", (query,)).fetchall() == [(1,)]

    @settings(max_examples=300, deadline=None)
    @given(text=st.text(max_size=60))
    def test_any_text_raises_only_filter_error(self, text: str) -> None:
        """If the text is anything at all, then parse_filter returns or raises FilterError."""
        try:
            parse_filter(text)
        except FilterError as error:
            assert str(error).startswith("filter: ")
            assert 0 <= error.position <= len(text)

    @settings(max_examples=500, deadline=None)
    @given(
        text=st.lists(
            st.sampled_from(
                [
                    "a",
                    "b",
                    "=",
                    "!=",
                    "<",
                    "<=",
                    ">",
                    ">=",
                    "~",
                    "(",
                    ")",
                    '"',
                    "\\",
                    "*",
                    "?",
                    " ",
                    " ",
                    "\n",
                    "and",
                    "or",
                    "not",
                    "AND",
                    "_severity_",
                    "flag",
                    "time",
                    "tag",
                    "source",
                    "4",
                    "1.5",
                    "warning",
                    "é",
                    "\u0301",
                    "$!",
                    "-",
                ]
            ),
            max_size=25,
        ).map("".join)
    )
    def test_grammar_shaped_text_raises_only_filter_error(self, text: str) -> None:
        """If the text is made of the grammar's own pieces, then only FilterError is raised."""
        with contextlib.suppress(FilterError):
            parse_filter(text)

    RECORDS = st.builds(
        Record,
        st.integers(-(2**63), 2**63),
        st.integers(0, 10**9 - 1),
        st.lists(
            st.sampled_from(
                ["msg", "_content_", "pri-text", "app-name", "_severity_", "a", "b", "hostname"]
            ),
            max_size=5,
        ).map(tuple),
        st.lists(st.text(max_size=8), max_size=6),
        st.text(max_size=5),
        st.dictionaries(st.sampled_from([STREAMLOG_TAG, "z"]), st.text(max_size=4)),
        st.lists(st.text(max_size=6), max_size=3).map(tuple),
    )

    @settings(max_examples=300, deadline=None)
    @given(
        text=st.lists(
            st.sampled_from(
                [
                    "a=1",
                    "b!=x",
                    "a<2",
                    "b>=1.5",
                    "_severity_<=warning",
                    "severity=err",
                    "a~^x",
                    "b=*y*",
                    "host=h?",
                    "app=x",
                    "tag=t",
                    "source>1",
                    "flag=truncated",
                    "time>0",
                    "message~.",
                    "facility<3",
                    "word",
                    '"two words"',
                    "w*d",
                    "and",
                    "or",
                    "not",
                    "(",
                    ")",
                ]
            ),
            max_size=8,
        ).map(" ".join),
        records=st.lists(RECORDS, max_size=4),
    )
    def test_matches_never_raises(self, text: str, records: list[Record]) -> None:
        """If any filter meets any record, then matches returns a bool."""
        try:
            f = parse_filter(text)
        except FilterError:
            return
        for record in records:
            assert f.matches(record) in (True, False)

    @settings(max_examples=300, deadline=None)
    @given(
        pri_text=st.sampled_from(
            ["user.notice", "local0.err<131>", "kern.emerg", "x.y", "", "mail", "user.9"]
        )
        | st.text(max_size=12),
        name=st.sampled_from(
            ["_severity_", "severity", "syslogseverity", "_facility_", "facility", "app", "host"]
        ),
        shape=st.sampled_from(["streamlog", "with-severity"]),
    )
    def test_field_reader_agrees_with_lookup(self, pri_text: str, name: str, shape: str) -> None:
        """If the reader remembers layouts and pri-texts, then it still answers as lookup does."""
        keys: tuple[str, ...] = ("hostname", "pri-text", "app-name", "msg")
        values = ["web-1", pri_text, "todo", "m"]
        if shape == "with-severity":
            keys += ("severity",)
            values.append("2")
        read = field_reader(name)
        for _ in range(2):  # the second read is served from the caches
            record = Record(T0, 0, keys, list(values), "src", {})
            try:
                expected = lookup(record, name)
            except ValueError:  # formats.columns fails on some Unicode digits ("¹")
                with pytest.raises(ValueError):
                    read(record)
                assert parse_filter(f"{name}=1").matches(record) is False
                continue
            assert read(record) == expected

    @settings(max_examples=200, deadline=None)
    @given(
        keys=st.lists(st.sampled_from(["msg", "_content_", "rawmsg", "message", "x"]), max_size=4)
    )
    def test_message_reader_agrees_with_columns(self, keys: list[str]) -> None:
        """If the layout varies, then the full-text message is columns_of's message."""
        record = Record(T0, 0, tuple(keys), [f"v{i}" for i in range(len(keys))], "src", {})
        assert message_of(record) == columns_of(record).message


class TestWordCharacters:
    """The regex word class and the Python predicate agree on every code point."""

    def test_class_matches_predicate(self) -> None:
        """If a character is a letter, digit, mark or private use, then both call it a word character."""
        word = re.compile(word_class())
        mismatches = [
            hex(cp)
            for cp in range(sys.maxunicode + 1)
            if not 0xD800 <= cp <= 0xDFFF
            and bool(word.fullmatch(chr(cp))) != is_word_char(chr(cp))
        ]
        assert mismatches == []
        assert unicodedata.category("\u0301") == "Mn" and is_word_char("\u0301")
        assert not is_word_char("_")
