"""Streamlog formats read from rsyslog templates (formats.rsyslog_template)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.errors import TemplateError
from formats.rsyslog_template import (
    RsyslogTemplate,
    streamlog_format_of,
    streamlog_formats_in,
    templates_in,
)
from formats.streamlog import BUILTIN_FORMATS, StreamlogFormat

# Alibaba's deployment guide, byte for byte.
ALI_LEGACY = r'$template ALI_LOG_FMT,"0.1 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% %pri-text% %protocol-version% %app-name% %procid% %msgid% %msg:::drop-last-lf%\n"'
ALI_TEXT = "0.1 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% %pri-text% %protocol-version% %app-name% %procid% %msgid% %msg:::drop-last-lf%\n"
ALI_RAINERSCRIPT = r"""template(name="ALI_LOG_FMT" type="string" string="0.1 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% %pri-text% %protocol-version% %app-name% %procid% %msgid% %msg:::drop-last-lf%\n")"""
ALI_LIST = r"""template(name="ALI_LOG_FMT" type="list") {
    constant(value="0.1 sys_tag ")
    property(name="timegenerated" dateFormat="unixtimestamp")
    constant(value=" ")
    property(name="fromhost-ip")
    constant(value=" ") property(name="hostname")
    constant(value=" ") property(name="pri-text")
    constant(value=" ") property(name="protocol-version")
    constant(value=" ") property(name="app-name")
    constant(value=" ") property(name="procid")
    constant(value=" ") property(name="msgid")
    constant(value=" ") property(name="msg" droplastlf="on")
    constant(value="\n")
}"""
ALI_FORMAT = StreamlogFormat(
    version="0.1",
    fields=("hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid"),
    tag="sys_tag",
)
TIME_IP = "%timegenerated:::date-unixtimestamp% %fromhost-ip%"

# A whole configuration as operators paste it: modules, inputs, directives,
# comments, actions, one streamlog template and one that is not.
REALISTIC_CONF = r"""# /etc/rsyslog.conf  Configuration file for rsyslog.
#
#  For more information see /usr/share/doc/rsyslog-doc/html/configuration/index.html

#################
#### MODULES ####
#################

module(load="imuxsock") # provides support for local system logging
module(load="imklog" permitnonkernelfacility="on")
module(load="imtcp")
input(type="imtcp" port="514")

$ActionFileDefaultTemplate RSYSLOG_TraditionalFileFormat
$RepeatedMsgReduction on
$FileOwner syslog
$WorkDirectory /var/spool/rsyslog
$IncludeConfig /etc/rsyslog.d/*.conf

global(workDirectory="/var/spool/rsyslog" maxMessageSize="64k")

# Alibaba Logtail streamlog, as the deployment guide gives it.
$template ALI_LOG_FMT,"0.1 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% %pri-text% %protocol-version% %app-name% %procid% %msgid% %msg:::drop-last-lf%\n"

/* An old experiment, kept for reference:
$template OLD,"9.9 old %msg%\n"
*/

# A forwarding format for the central relay (not a streamlog line).
template(name="FwdLike" type="string"
         string="<%PRI%>%TIMESTAMP:::date-rfc3339% %HOSTNAME% %syslogtag:1:32%%msg:::sp-if-no-1st-sp%%msg%\n")

:msg, contains, "template(name=\"fake\")"  /var/log/odd.log
# Don't forward cron's chatter; it's noisy.
if $programname == 'cron' then stop
*.* @@127.0.0.1:11111;ALI_LOG_FMT
action(type="omfwd" target="relay.example.com" port="514" protocol="tcp"
       template="FwdLike" queue.type="LinkedList")
auth,authpriv.*                 /var/log/auth.log
*.*;auth,authpriv.none          -/var/log/syslog
"""


def only_template(text: str) -> RsyslogTemplate:
    [template] = templates_in(text)
    return template


def format_of(text: str) -> StreamlogFormat:
    return streamlog_format_of(only_template(text))


def legacy(string: str, name: str = "T") -> str:
    """A ``$template`` line around ``string`` (written as in rsyslog.conf)."""
    return f'$template {name},"{string}"'


def rejection(text: str) -> str:
    with pytest.raises(TemplateError) as caught:
        format_of(text)
    return str(caught.value)


def definition_error(text: str) -> str:
    with pytest.raises(TemplateError) as caught:
        templates_in(text)
    return str(caught.value)


class TestTemplatesIn:
    def test_alibaba_legacy_line(self) -> None:
        """If the text holds Alibaba's $template line, then its name, unescaped text and line are read."""
        assert templates_in(ALI_LEGACY) == [RsyslogTemplate("ALI_LOG_FMT", ALI_TEXT, 1)]

    def test_rainerscript_string_template(self) -> None:
        """If the same template is a template() object, then the same template is read."""
        assert templates_in(ALI_RAINERSCRIPT) == [RsyslogTemplate("ALI_LOG_FMT", ALI_TEXT, 1)]

    def test_single_quotes(self) -> None:
        """If template() values are in single quotes, then they read like double-quoted ones."""
        text = ALI_RAINERSCRIPT.replace('"', "'")
        assert templates_in(text) == [RsyslogTemplate("ALI_LOG_FMT", ALI_TEXT, 1)]

    def test_parameters_in_any_order_over_lines(self) -> None:
        """If parameters come in any order, spread over lines with comments and other
        parameters between them, then the template still reads."""
        text = (
            "\n"
            "template (\n"
            "    string = 'x %msg%'   # the layout\n"
            '    option.sql="on" /* escaping for a database */\n'
            '\ttype="string",\n'
            '    NAME="Mine"\n'
            ")\n"
        )
        assert templates_in(text) == [RsyslogTemplate("Mine", "x %msg%", 2)]

    def test_line_is_where_the_definition_starts(self) -> None:
        """If several templates are defined, then each one's line is where its definition starts."""
        text = f"# header\n\n{ALI_LEGACY}\nmodule(load='imtcp')\n\n  {ALI_RAINERSCRIPT.replace('ALI_LOG_FMT', 'B')}\n"
        assert [(t.name, t.line) for t in templates_in(text)] == [("ALI_LOG_FMT", 3), ("B", 6)]

    def test_unrelated_lines_are_ignored(self) -> None:
        """If the text holds modules, actions, directives and selectors, then only templates are read."""
        assert [t.name for t in templates_in(REALISTIC_CONF)] == ["ALI_LOG_FMT", "FwdLike"]

    @pytest.mark.parametrize(
        "text",
        [
            f"# {ALI_LEGACY}",
            f"#{ALI_RAINERSCRIPT}",
            f"/* {ALI_RAINERSCRIPT}\n{ALI_LEGACY}\n*/",
            f"/* never closed\n{ALI_LEGACY}",
            'action(type="omfwd" template="ALI_LOG_FMT")',
            ':msg, contains, "template(name=\\"x\\")" /var/log/x',
            "if $msg contains 'template(' then stop",
            "mytemplate(name='x' type='string' string='y')",
            "$templatedir /tmp",
            "",
        ],
    )
    def test_text_that_only_mentions_templates(self, text: str) -> None:
        """If a template appears only in a comment, a string or another word, then none is read."""
        assert templates_in(text) == []

    def test_keywords_ignore_case(self) -> None:
        """If the keywords and parameter names are in another case, then they still read, as in rsyslog."""
        text = "$Template A,\"a\"\nTEMPLATE(Name='B' TYPE='string' String='b')"
        assert [(t.name, t.string) for t in templates_in(text)] == [("A", "a"), ("B", "b")]

    def test_list_template_in_string_form(self) -> None:
        """If a list template is read, then its string is the equivalent string template."""
        assert only_template(ALI_LIST).string == (
            "0.1 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% "
            "%pri-text% %protocol-version% %app-name% %procid% %msgid% %msg%\n"
        )

    def test_list_outname_in_string_form(self) -> None:
        """If a list property has an outname, then the string form carries it as the field part."""
        text = "template(name='L' type='list') { property(name='$!x' outname='y') }"
        assert only_template(text).string == "%$!x::::y%"

    @pytest.mark.parametrize(
        "text",
        [
            "$template S,=mystrgen",
            'template(name="S" type="plugin" plugin="mystrgen")',
            'template(name="S" type="subtree" subtree="$!usr")',
        ],
    )
    def test_templates_without_text_are_listed(self, text: str) -> None:
        """If a template is made by a module or is a subtree, then it is listed (with no text)."""
        assert [(t.name, t.string) for t in templates_in(text)] == [("S", "")]


class TestEscapes:
    @pytest.mark.parametrize(
        ("written", "meant"),
        [
            (r"a\nb", "a\nb"),
            (r"a\rb", "a\rb"),
            (r"a\\b", "a\\b"),
            (r"100\% sure", "100% sure"),
            (r"say \"hi\"", 'say "hi"'),
            (r"\65\066", "AB"),  # decimal codes
            (r"a\tb", "atb"),  # rsyslog's template parser knows no \t
            (r"it\'s", "it's"),
        ],
    )
    def test_legacy_escapes(self, written: str, meant: str) -> None:
        """If a $template line uses escapes, then they mean what rsyslog's template parser makes of them."""
        assert only_template(legacy(written)).string == meant

    @pytest.mark.parametrize(
        ("written", "meant"),
        [
            (r"a\nb", "a\nb"),
            (r"a\tb", "a\tb"),
            (r"a\\b", "a\\b"),
            (r"say \"hi\"", 'say "hi"'),
            (r"it\'s", "it's"),
            (r"\101\x42", "AB"),  # octal and hex codes
            (r"\$", "$"),
        ],
    )
    def test_rainerscript_escapes(self, written: str, meant: str) -> None:
        """If a template() value uses escapes, then they mean what RainerScript makes of them."""
        text = f'template(name="T" type="string" string="{written}")'
        assert only_template(text).string == meant

    def test_escaped_quote_does_not_end_a_single_quoted_value(self) -> None:
        r"""If a single-quoted value holds \', then the value goes on past it."""
        text = r"template(name='T' type='string' string='it\'s %msg%')"
        assert only_template(text).string == "it's %msg%"

    def test_list_constants_are_unescaped_twice(self) -> None:
        r"""If a list constant holds an escaped backslash escape, then rsyslog's second pass applies."""
        text = r"template(name='L' type='list') { constant(value='a\\nb') }"
        assert only_template(text).string == "a\nb"

    def test_legacy_literal_percent_is_text(self) -> None:
        r"""If a $template line writes \%, then the percent is literal text, not a property."""
        text = legacy(rf"2.1 100\%tag {TIME_IP} %msg%")
        assert format_of(text) == StreamlogFormat("2.1", (), tag="100%tag")

    def test_list_constant_can_hold_a_percent(self) -> None:
        """If a list constant holds a percent, then it is literal text."""
        text = ALI_LIST.replace('value="0.1 sys_tag "', 'value="0.1 sys%tag "')
        assert format_of(text).tag == "sys%tag"

    def test_rainerscript_percent_escape_is_refused(self) -> None:
        r"""If a template() string writes \%, then the error says rsyslog refuses it and what to do."""
        message = definition_error('\ntemplate(name="T" type="string"\n  string="100\\% %msg%")')
        assert "rsyslog template 'T' (line 2)" in message
        assert "line 3" in message
        assert "'\\%'" in message
        assert 'constant(value="%")' in message

    @pytest.mark.parametrize(
        "text", [legacy("100%% %msg%"), "template(name='T' type='string' string='%%')"]
    )
    def test_double_percent_is_not_an_escape(self, text: str) -> None:
        r"""If a template writes %%, then the error says it is an empty property and how to write a percent."""
        message = definition_error(text)
        assert "rsyslog template 'T' (line 1)" in message
        assert "'%%' names no property" in message
        assert "\\%" in message


class TestDefinitionErrors:
    @pytest.mark.parametrize(
        ("text", "fragments"),
        [
            (
                legacy("0.1 t %msg%").removesuffix('"'),
                ["rsyslog template 'T' (line 1)", "no closing double quote"],
            ),
            (
                '\n\ntemplate(name="X" type="string" string="0.1 t %msg%)\n',
                ["rsyslog template 'X'", "line 3", 'this " opens a value that is never closed'],
            ),
            (
                "template(name='X'\n type='string'\n string='abc\n)",
                ["rsyslog template 'X'", "line 3", "this ' opens a value that is never closed"],
            ),
            (legacy("0.1 t %msg"), ["rsyslog template 'T' (line 1)", "no second '%' closes"]),
            (
                "template(name='X' type='string' string='0.1 %msg')",
                ["rsyslog template 'X' (line 1)", "no second '%' closes"],
            ),
            ("$template A 0.1", ["line 1", "needs a name, a comma"]),
            ("$template A,0.1", ["rsyslog template 'A' (line 1)", "in double quotes"]),
            ('template(type="string" string="a")', ["line 1", 'has no name="..."']),
            ('template(name="X" string="a")', ["rsyslog template 'X' (line 1)", "no type="]),
            ('template(name="X" type="foo")', ["'X'", 'type="foo" is not a template type']),
            ('template(name="X" type="string")', ["'X'", 'needs string="..."']),
            ('template(name="X" type="list")', ["'X'", 'type="list" needs a body']),
            ('template(name="X" type=string string="a")', ["'X'", "line 1", "not quoted"]),
            ('template(name="X" type="string" string=`echo $F`)', ["'X'", "backtick"]),
            ('template(name="X" type="string" string=["a"])', ["'X'", "not an array"]),
            ('template(name="X" type="string" string="a"', ["'X'", "line 1", "')'", "end of text"]),
            ('template(name="X" type="string" string="a" junk)', ["'X'", "found 'junk'"]),
            (
                'template(name="X" type="list") {\n constant(value="a")\n bogus\n}',
                ["'X'", "line 3", "found 'bogus'"],
            ),
            (
                'template(name="X" type="list") { property(dateFormat="unixtimestamp") }',
                ["'X'", 'has no name="..."'],
            ),
            ('template(name="X" type="list") { constant(outname="c") }', ["'X'", 'no value="..."']),
            ('template(name="X" type="string" string="a" Name="Y")', ["'X'", "name= twice"]),
        ],
    )
    def test_broken_definition(self, text: str, fragments: list[str]) -> None:
        """If a template definition cannot be read, then the error names its line and the problem."""
        message = definition_error(text)
        for fragment in fragments:
            assert fragment in message

    def test_one_broken_definition_fails_the_file(self) -> None:
        """If one definition in a file is broken, then reading the file fails, as rsyslog's start would."""
        with pytest.raises(TemplateError, match="line 2"):
            streamlog_formats_in(f"{ALI_LEGACY}\n{legacy('0.1 t %msg')}")


class TestStreamlogFormatOf:
    @pytest.mark.parametrize("text", [ALI_LEGACY, ALI_RAINERSCRIPT, ALI_LIST])
    def test_alibaba_template(self, text: str) -> None:
        """If Alibaba's template is read in any of its forms, then it is the built-in 0.1 layout with its tag."""
        fmt = format_of(text)
        assert fmt == ALI_FORMAT
        assert fmt.fields == BUILTIN_FORMATS[0].fields

    def test_custom_version(self) -> None:
        """If a template writes Logtail's documented 2.1 example, then version, tag and fields follow it."""
        text = legacy(rf"2.1 streamlog_tag {TIME_IP} %syslogseverity-text% %programname% %msg%\n")
        assert format_of(text) == StreamlogFormat(
            "2.1", ("syslogseverity-text", "programname"), "streamlog_tag"
        )

    def test_final_newline_is_optional(self) -> None:
        """If the template has no final \\n, then it is the same layout."""
        assert format_of(legacy(f"2.1 t {TIME_IP} %hostname% %msg%")) == StreamlogFormat(
            "2.1", ("hostname",), "t"
        )

    def test_no_middle_fields(self) -> None:
        """If only time, ip and msg follow the tag, then the format has no middle fields."""
        assert format_of(legacy(f"2.1 t {TIME_IP} %msg%")).fields == ()

    def test_field_names_follow_property_names(self) -> None:
        """If properties are upper-case or variables, then fields are named in lower case without the sigil."""
        text = legacy(
            f"2.1 t {TIME_IP} %HOSTNAME% %$!Usr!Level% %$.local% %$/global% %$year% %msg%"
        )
        assert format_of(text).fields == ("hostname", "usr!level", "local", "global", "year")

    def test_explicit_field_name_wins(self) -> None:
        """If a property gives a field name (fifth part or outname=), then the field takes that name."""
        assert format_of(legacy(f"2.1 t {TIME_IP} %$!:::jsonf:level% %msg%")).fields == ("level",)
        text = ALI_LIST.replace('property(name="procid")', 'property(name="procid" outname="pid")')
        assert format_of(text).fields == (
            "hostname",
            "pri-text",
            "protocol-version",
            "app-name",
            "pid",
            "msgid",
        )

    @pytest.mark.parametrize(
        "ip", ["%fromhost%", "%hostname%", "%$!client%", "%fromhost-ip:::lowercase%"]
    )
    def test_any_property_is_the_ip_column(self, ip: str) -> None:
        """If any space-free property fills the ip position, then it is the ip column, not a field."""
        text = legacy(f"2.1 t %timereported:::date-unixtimestamp% {ip} %msg%")
        assert format_of(text) == StreamlogFormat("2.1", (), "t")

    @pytest.mark.parametrize(
        "msg", ["%rawmsg%", "%msg:::drop-last-lf%", "%$!all-json%", "%structured-data%"]
    )
    def test_any_property_is_the_msg_column(self, msg: str) -> None:
        """If any property ends the line, then it is the msg field."""
        assert format_of(legacy(f"2.1 t {TIME_IP} %hostname% {msg}")).fields == ("hostname",)

    def test_time_option_may_come_with_others(self) -> None:
        """If the time property has more options, then the last date option decides."""
        text = legacy(
            "2.1 t %timegenerated:::date-rfc3339,date-utc,date-unixtimestamp% %fromhost-ip% %msg%"
        )
        assert format_of(text).version == "2.1"

    def test_hand_built_template(self) -> None:
        """If a template is built by hand from its string, then the string is read as a template() string."""
        template = RsyslogTemplate("Mine", f"2.1 t {TIME_IP} %app-name% %msg%\n", 7)
        assert streamlog_format_of(template) == StreamlogFormat("2.1", ("app-name",), "t")

    def test_hand_built_template_with_bad_string(self) -> None:
        """If a hand-built template's string has an unclosed property, then the error names it."""
        with pytest.raises(
            TemplateError, match=r"rsyslog template 'Mine' \(line 7\).*no second '%'"
        ):
            streamlog_format_of(RsyslogTemplate("Mine", "2.1 t %msg", 7))


class TestStreamlogRejections:
    @pytest.mark.parametrize(
        ("string", "fragments"),
        [
            # Literal text between columns.
            (
                f"0.1 t {TIME_IP} %app-name%[%procid%] %msg%",
                ["'['", "%app-name%", "%procid%", "exactly one space"],
            ),
            (f"0.1 t {TIME_IP}  %msg%", ["'  '", "exactly one space"]),
            (f"0.1 t {TIME_IP} %hostname%%msg%", ["%hostname% and %msg% are not separated"]),
            (
                f"0.1 t {TIME_IP} %msg% \\n",
                ["' \\n' follows the last column %msg%", "only a final \\n"],
            ),
            # Version and tag.
            (f"0.1 sys tag {TIME_IP} %msg%", ["3 words", "'0.1 sys tag'", "one word each"]),
            (f"0.1 {TIME_IP} %msg%", ["only one word, '0.1'", "add the tag"]),
            (f"0.1  t {TIME_IP} %msg%", ["extra spaces", "exactly one space"]),
            (f" 0.1 t {TIME_IP} %msg%", ["extra spaces"]),
            (f"0.1 t{TIME_IP} %msg%", ["'t' runs straight into %timegenerated"]),
            (f"%hostname% 0.1 t {TIME_IP} %msg%", ["starts with %hostname%"]),
            (f"<%PRI%>{TIME_IP} %msg%", ["starts with '<%PRI%>'"]),
            ("0.1 t", ["only literal text"]),
            (f"0.1\\9t {TIME_IP} %msg%", ["'\\t'", "plain words"]),  # \9 is a tab
            # The time column.
            (
                "0.1 t %timegenerated% %fromhost-ip% %msg%",
                ["%timegenerated%", "add :::date-unixtimestamp"],
            ),
            (
                "0.1 t %timereported:::date-rfc3339% %fromhost-ip% %msg%",
                ["replace date-rfc3339 with date-unixtimestamp"],
            ),
            (
                "0.1 t %fromhost-ip% %hostname% %msg%",
                [
                    "%fromhost-ip% is not rendered as a unix timestamp",
                    "%timegenerated:::date-unixtimestamp%",
                ],
            ),
            # Too few columns.
            (f"0.1 t {TIME_IP}", ["only 2 column(s)", "at least a time, an ip and a msg column"]),
            ("0.1 t %msg%", ["only 1 column(s)"]),
            # Columns that would hold spaces.
            (f"0.1 t {TIME_IP} %msg% %hostname%", ["%msg% is column 3", "must be the last column"]),
            (
                "0.1 t %timegenerated:::date-unixtimestamp% %msg% %hostname%",
                ["%msg% is the ip column"],
            ),
            (f"0.1 t {TIME_IP} %timereported% %msg%", ["holds spaces", ":::date-rfc3339"]),
            (f"0.1 t {TIME_IP} %structured-data% %msg%", ["can hold spaces"]),
            # Field names.
            (
                f"0.1 t {TIME_IP} %hostname% %HOSTNAME% %msg%",
                ["%hostname% and %HOSTNAME% both give the field 'hostname'"],
            ),
            (f"0.1 t {TIME_IP} %$!a% %$.a% %msg%", ["%$!a% and %$.a%"]),
            (f"0.1 t {TIME_IP} %hostname::::msg% %msg%", ["is named msg"]),
            (f"0.1 t {TIME_IP} %$!% %msg%", ["gives no field name", "%$!::::NAME%"]),
        ],
    )
    def test_not_a_streamlog_layout(self, string: str, fragments: list[str]) -> None:
        """If a template is not a streamlog layout, then the error names it and says what to change."""
        message = rejection(legacy(string))
        assert message.startswith("rsyslog template 'T' (line 1): ")
        for fragment in fragments:
            assert fragment in message

    def test_list_time_without_unix_format(self) -> None:
        """If a list template's time property has no unix format, then the fix is in list syntax."""
        text = ALI_LIST.replace(' dateFormat="unixtimestamp"', "")
        assert 'give it dateFormat="unixtimestamp"' in rejection(text)

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("$template S,=mystrgen", "string generator module 'mystrgen'"),
            ('template(name="S" type="plugin" plugin="x")', "plugin"),
            ('template(name="S" type="subtree" subtree="$!usr")', "subtree template"),
        ],
    )
    def test_templates_without_text(self, text: str, reason: str) -> None:
        """If a template has no text layout, then the error says what kind it is."""
        message = rejection(text)
        assert message.startswith("rsyslog template 'S' (line 1) ")
        assert reason in message


class TestStreamlogFormatsIn:
    def test_realistic_configuration(self) -> None:
        """If a whole rsyslog.conf is read, then its streamlog template is a format and the other is reported."""
        formats, others = streamlog_formats_in(REALISTIC_CONF)
        assert formats == [ALI_FORMAT]
        [(template, error)] = others
        assert (template.name, template.line) == ("FwdLike", 30)
        assert str(error).startswith("rsyslog template 'FwdLike' (line 30): ")
        assert "version and a tag" in str(error)

    def test_several_formats_in_order(self) -> None:
        """If several streamlog templates are defined, then all come back in file order."""
        text = "\n".join(
            [
                legacy(f"2.1 a {TIME_IP} %hostname% %msg%\\n", "A"),
                ALI_LIST,
                f"template(name='C' type='string' string='3.0 c {TIME_IP} %programname% %msg%')",
            ]
        )
        formats, others = streamlog_formats_in(text)
        assert [(f.version, f.tag, f.fields) for f in formats] == [
            ("2.1", "a", ("hostname",)),
            ("0.1", "sys_tag", ALI_FORMAT.fields),
            ("3.0", "c", ("programname",)),
        ]
        assert others == []

    def test_nothing_to_read(self) -> None:
        """If the text defines no template, then there is nothing in either list."""
        assert streamlog_formats_in("*.* @@host:11111;ALI_LOG_FMT\n") == ([], [])


# Pieces of rsyslog syntax, so that generated text reaches deep into the grammar.
FRAGMENTS = [
    "$template ", "template(", "template (", "property(", "constant(", "name=", "type=",
    "string=", "value=", "dateFormat=", "outname=", '"string"', '"list"', "'plugin'", '"',
    "'", "`", "(", ")", "{", "}", "[", "]", ",", "=", "%", "%%", ":", ":::", "\\", "\\n",
    "\\%", "\\101", "#", "/*", "*/", "\n", " ", "\t", "T", "0.1 sys_tag ", "%msg%",
    "%timegenerated:::date-unixtimestamp%", "%fromhost-ip%", "%$!x%", "%msg:R:a--end%",
    "date-unixtimestamp", "--end", "$", "x", "é", "\x00",
]  # fmt: skip


def survives(text: str) -> None:
    """Read ``text`` every way; only TemplateError may come out."""
    with contextlib.suppress(TemplateError):
        for template in templates_in(text):
            with contextlib.suppress(TemplateError):
                streamlog_format_of(template)
    with contextlib.suppress(TemplateError):
        streamlog_formats_in(text)


WORD = st.from_regex(r"[0-9A-Za-z._-]{1,8}", fullmatch=True)
# Names that are fine as middle columns (no free text, no default-format dates).
SPACED = {
    "msg",
    "rawmsg",
    "structured-data",
    "jsonmesg",
    "timegenerated",
    "timereported",
    "timestamp",
}
FIELD = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True).filter(lambda n: n not in SPACED)


class TestArbitraryText:
    @settings(max_examples=300)
    @given(st.text())
    def test_any_text(self, text: str) -> None:
        """If any text is read, then nothing but TemplateError is raised."""
        survives(text)

    @settings(max_examples=500)
    @given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
    def test_rsyslog_like_text(self, text: str) -> None:
        """If text made of rsyslog syntax is read, then nothing but TemplateError is raised."""
        survives(text)

    @given(WORD, WORD, st.lists(FIELD, unique=True, max_size=8), st.booleans())
    def test_generated_layouts(
        self, version: str, tag: str, fields: list[str], rainerscript: bool
    ) -> None:
        """If a template lays out any version, tag and fields, then the format has exactly those."""
        columns = " ".join(f"%{name}%" for name in fields)
        string = f"{version} {tag} {TIME_IP} {columns}{' ' if fields else ''}%msg%\\n"
        text = (
            f"template(name='G' type='string' string='{string}')"
            if rainerscript
            else legacy(string)
        )
        assert format_of(text) == StreamlogFormat(version, tuple(fields), tag)
