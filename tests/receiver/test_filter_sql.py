"""Filters as ClickHouse SQL: the Python predicate, chDB and clickhouse-server 18.16 take the same rows.

One clickhouse-server (the one ``tests/install-programs.sh`` installed: 18.16
on Debian 12) is started for the module, beside a chDB session (ClickHouse's
current release in-process), each with the sink's table
(:func:`receiver.deliver.sinks.clickhouse.create_table_sql`). Records go in as
JSONEachRow rows (:func:`rows_of`) and every filter's
:meth:`~receiver.filters.expression.Filter.to_clickhouse` runs on both. Without
clickhouse-server these tests fail (ProgramMissingError says to run
tests/install-programs.sh); they never skip.
"""

from __future__ import annotations

import decimal
import itertools
import json
import math
import re
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

import pytest
from chdb import session as chdb_session
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from formats.columns import columns_of
from formats.parse import make_parser
from formats.record import Record, truncated_flag
from formats.streamlog import STREAMLOG_TAG
from receiver.deliver.sinks.clickhouse import create_table_sql
from receiver.filters.expression import (
    CLICKHOUSE_18_16,
    ClickHouseDialect,
    Filter,
    FilterError,
    parse_filter,
)
from tests.helpers import filter_expressions
from tests.support.clickhouse import ClickHouseServer, ClickHouseUser

pytestmark = pytest.mark.integration

CHDB_SESSION: Any = chdb_session.Session  # chDB ships no type information

PARSE = make_parser()
PEER = "10.0.0.9"
T0 = 1_795_323_666
DATABASE = "filters"
TABLE = "records"
MAX_TIME = 2**32 - 1


def rows_of(records: Sequence[Record], pack_id: str) -> bytes:
    """The records as the ClickHouse sink's rows, JSONEachRow.

    Column for column what receiver/deliver/sinks/clickhouse.py writes (its
    ``encode_rows``, now being replaced by a binary encoder): host, app,
    severity, facility and message from :func:`formats.columns.columns_of`,
    the fields as ``field_keys`` / ``field_values`` in order, the flags, the
    streamlog tag ("" for none), the source and the time; the row's index in
    ``pack_row``.
    """
    lines = []
    for index, record in enumerate(records):
        host, app, severity, facility, message = columns_of(record)
        row = {
            "time": min(max(record.time, 0), MAX_TIME), "time_ns": 0,
            "host": host, "app": app, "severity": severity, "facility": facility, "message": message,
            "source": record.source, "client_ip": PEER, "tag": record.tags.get(STREAMLOG_TAG, ""),
            "field_keys": list(record.keys), "field_values": list(record.values), "flags": list(record.flags),
            "pack_id": pack_id, "pack_row": index,
        }
        lines.append(json.dumps(row, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


class Engines:
    """The sink's table in clickhouse-server and in chDB; records in, matching row numbers out."""

    def __init__(self, server: ClickHouseServer, local: Any) -> None:
        self.server = server
        self.local = local
        self.dialects = {
            "clickhouse-server": ClickHouseDialect.from_version(server.version()),
            "chdb": ClickHouseDialect.from_version(self._local("SELECT version()", "TSV").strip()),
        }
        self._packs = itertools.count(1)
        for run in (server.query, self._local):
            run(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            run(create_table_sql(DATABASE, TABLE))

    def _local(self, sql: str, output: str = "JSONEachRow") -> str:
        return str(self.local.query(sql, output))

    def insert(self, records: Sequence[Record]) -> str:
        """The records under a new pack id, which the selects then look at alone."""
        pack_id = f"p{next(self._packs)}"
        body = rows_of(records, pack_id)
        self.server.query(f"INSERT INTO {DATABASE}.{TABLE} FORMAT JSONEachRow", data=body)
        # chDB takes the rows inline, after FORMAT, as they are.
        self._local(f"INSERT INTO {DATABASE}.{TABLE} FORMAT JSONEachRow\n{body.decode()}")
        return pack_id

    def select(self, condition: str, pack_id: str) -> dict[str, set[int]]:
        """The row numbers each engine selects with ``condition`` among the pack's rows."""
        sql = f"SELECT pack_row FROM {DATABASE}.{TABLE} WHERE pack_id = '{pack_id}' AND ({condition})"
        return {
            "clickhouse-server": {row["pack_row"] for row in self.server.rows(sql)},
            "chdb": {json.loads(line)["pack_row"] for line in self._local(sql).splitlines() if line.strip()},
        }

    def verdicts(self, condition: str, column: str, values: Sequence[str]) -> dict[str, list[bool]]:
        """``condition`` on one row per value, the value in ``column`` ("message", or field ``x``)."""
        listed = "[" + ", ".join(literal(v) for v in values) + "]"
        value = f"arrayElement({listed}, i)"
        columns = f"{value} AS message" if column == "message" else f"['x'] AS field_keys, [{value}] AS field_values"
        sql = (
            f"SELECT i, ({condition}) AS ok FROM (SELECT i, {columns} "
            f"FROM (SELECT arrayJoin(arrayEnumerate({listed})) AS i)) ORDER BY i"
        )
        answers = {
            "clickhouse-server": [row["ok"] for row in self.server.rows(sql)],
            "chdb": [json.loads(line)["ok"] for line in self._local(sql).splitlines() if line.strip()],
        }
        return {engine: [bool(ok) for ok in oks] for engine, oks in answers.items()}

    def scalar(self, sql: str) -> dict[str, str]:
        """One value from each engine, as JSON text."""
        return {
            "clickhouse-server": self.server.scalar(f"{sql} FORMAT JSONEachRow"),
            "chdb": self._local(sql).strip(),
        }


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    server = ClickHouseServer(
        tmp_path_factory.mktemp("clickhouse"), users={"default": ClickHouseUser("filters-pw")}
    )
    local: Any = CHDB_SESSION(str(tmp_path_factory.mktemp("chdb")))
    try:
        server.start()
        engines = Engines(server, local)
        print({name: d.version for name, d in engines.dialects.items()})
        yield engines
    finally:
        local.close()
        server.close()


def literal(text: str) -> str:
    """A string literal by its bytes (not the code under test): ``unhex('...')``."""
    return f"unhex('{text.encode('utf-8', 'surrogatepass').hex()}')"


def python_rows(f: Filter, records: Sequence[Record]) -> set[int]:
    return {i for i, record in enumerate(records) if f.matches(record)}


def check_agreement(engines: Engines, text: str, records: Sequence[Record], pack_id: str) -> None:
    """If the SQL of ``text`` is exact, then each engine selects what the predicate takes; else a superset."""
    f = parse_filter(text)
    expected = python_rows(f, records)
    for engine, dialect in engines.dialects.items():
        condition = f.to_clickhouse(dialect)
        got = engines.select(condition.sql, pack_id)[engine]
        if condition.exact:
            assert got == expected, (engine, text, [records[i] for i in got ^ expected])
        else:
            assert got >= expected, (engine, text, [records[i] for i in expected - got])
            assert {i for i in got if f.matches(records[i])} == expected


# -- Records and filters -----------------------------------------------------------------

def streamlog(pri_text: str = "user.notice", app: str = "todo-list", msg: str = "Create a new task",
              *, tag: str = "sys_tag", procid: str = "705", ts: str = str(T0)) -> Record:
    line = f"0.1 {tag} {ts} 10.0.0.7 web-1 {pri_text} 0 {app} {procid} - {msg}"
    return PARSE(line.encode(), PEER, T0 * 10**9)


def fields(*pairs: tuple[str, str], source: str = "src", tag: str | None = None,
           flags: tuple[str, ...] = (), time: int = T0) -> Record:
    return Record(time, 0, tuple(k for k, _ in pairs), [v for _, v in pairs], source,
                  {STREAMLOG_TAG: tag} if tag is not None else {}, flags)


TRICKY_VALUES = [
    "", "0", "7", "-1", "705", "+5", "1.5", ".5", "5.", "1e3", "1E+3", "-0", "00", "-0.0e-5",
    "1e400", "-1e400", "1e-400", "9" * 25, "0" * 4301 + "1", "1" * 4301, "9007199254740993",
    "0.30000000000000004", "1.7976931348623157e308", "1.797693134862315807937289714053e308",
    "2.4703282292062328e-324", "2.4703282292062327e-324", "705.0000000000000001", "704.99999999999999999",
    "1e99999999999999999999", "1e-99999999999999999999", " 3 ", "\u30003\u2028", "０", "err", "ERR",
    " Warning\t", "warn", "notice", "info", "emerg", "x", "web-1", "İstanbul", "ıi", "ΣΑΣ", "σας",
    "\u212a", "K", "é", "e\u0301", "a\nb", "a\n", "a b", "\x00", "«disk»", "disk", "Disk full",
    "diskette", "DİSK", "dis\u212a", "truncated:70000", "a*b?", "[x]", "100%", "it's", "back\\slash",
    "' OR 1=1 --", "\\'", "😀", "\ue000", "\U0010fffd", "édisk", "diské", "ڊdisk", "disk\u0301",
]


def test_rows_hold_the_tricky_values(engines: Engines) -> None:
    """If every tricky value is a field, then both engines store it as it is (the rows are faithful)."""
    record = fields(*((f"k{i}", v) for i, v in enumerate(TRICKY_VALUES)))
    pack_id = engines.insert([record])
    sql = f"SELECT field_values FROM {DATABASE}.{TABLE} WHERE pack_id = '{pack_id}'"
    for answer in engines.scalar(sql).values():
        assert json.loads(answer)["field_values"] == TRICKY_VALUES


def sample_records() -> list[Record]:
    """Parsed frames of every kind and hand-made field lists holding the tricky values."""
    records = [
        streamlog(),
        streamlog("local0.err<131>", app="billing", msg="Disk full on /var/tmpfs"),
        streamlog("USER.WARNING", msg="DİSK error: e\u0301rror «disk»", tag=""),
        streamlog("kern.emerg", msg="ΟΔΟΣ σας ΣΑΣ", procid="+5", ts="bogus"),
        streamlog("x.y", msg="", procid="1e3", tag="42"),
        PARSE(b'<28>1 2026-11-22T10:01:06Z web-1 todo-list 705 ID7 [x@1 a="b"] Create a new task', PEER, T0 * 10**9),
        PARSE(b"<13>Nov 22 10:01:06 web-2 app3164[99]: message 3164 dis\xe2\x84\xaa", PEER, T0 * 10**9),
        PARSE(b"<999>garbage \xff frame", PEER, 0),
        PARSE(b"", PEER, MAX_TIME * 10**9),
        fields(("msg", "x"), ("n", "9"), flags=(truncated_flag(70000), "parse-error"), tag="t", time=0),
        fields(("host", ""), ("_hostname_", "h1"), ("n", "nine"), source="", time=MAX_TIME),
        fields(("hostname", ""), ("severity", " Warning\t"), ("facility", "local0"), source="web-1"),
        fields(("_severity_", "-1"), ("severity", "3"), ("app", ""), ("_program_", "p")),
        fields(("message", "Diskette"), ("rawmsg", "raw disk"), ("msg", "a\nb"), ("x", "a\nb")),
        fields(("x", "1"), ("x", "2"), ("procid", "0" * 4301 + "1"), ("_process_id_", "7")),
    ]
    records += [fields(("n", v), ("x", v), ("msg", v), ("severity", v)) for v in TRICKY_VALUES]
    return [r for r in records if storable(r)]


def storable(record: Record) -> bool:
    """Whether the sink can make a row of the record: columns_of raises on a severity of 4301 digits."""
    try:
        columns_of(record)
    except ValueError:
        return False
    return True


RECORDS = sample_records()


@pytest.fixture(scope="module")
def sample_pack(engines: Engines) -> str:
    return engines.insert(RECORDS)


TRICKY_FILTERS = [
    # fields, equivalents, missing fields
    "app-name=todo-list and _severity_<=4", "host=web-1", "host=h1", 'host=""', "host!=web-1",
    "hostname=web-1", "app=p", 'app=""', "app!=todo-list", 'message=""', "message=Diskette",
    "procid=705", "msgid=ID7", "x=1", "x!=2", "nosuch=x", 'nosuch=""', "nosuch!=x", 'x=""',
    'x="a\\nb"' if False else 'x~"^a\\nb$"', "$!foo!=1",
    # severities and facilities
    "_severity_=err", "_severity_=3", "severity=warning", "severity<=warning", "_severity_>info",
    "syslogseverity<4", "severity=-1", "_severity_=-1", "facility=16", "facility<2", "facility=local0",
    "_facility_>=1", "severity~^[0-9]$",
    # numbers
    "n<10", "n>=9.0", "n>1", "n<0", "n>-1", "n=9", "n>=705", "n<705.5", "n>0.30000000000000004", "n>0.3",
    "n<1e400", "n>1e308", "n>=1.7976931348623157e308", "n>0", "n<5e-324", "n<=0", "n>9007199254740992",
    "n<=2.4703282292062328e-324", "procid>1", "procid<2", "source>1", "tag>1", "tag<43",
    # wildcards, regexes
    "host=web-*", "host=*-1", "host=web-?", "x=*", "x=?", "msg=a*b?", 'msg="a*b?"', "x=[x]*",
    "msg~^Create", 'msg~"(?i)create"', 'msg~"\\\\d+"', 'x~"^\\\\w+$"', 'x~"(?i)^k$"', 'x~"(?i)^i"',
    'x~"\\\\bdisk\\\\b"', 'msg~"disk\\\\b"', 'x~"\\\\Bisk"', 'x~"(a)\\\\1"', 'x~"(?<=d)isk"', "x~$",
    'x~"a$"', 'x~"a$\\\\n"', 'x~"(?m)^b"', 'x~"(?s)a.b"', "x~a.b", 'x~"[^a]"', 'x~"\\\\Z"', "x~^$",
    'x~"a{1001}"', 'x~"(?:\\\\w{100}){20}"', 'x~"x*+"', 'x~"(?>x+)"', 'x~"(?a)\\\\w+"', 'x~"\\\\x00"',
    "nosuch~.*", 'x~"\\\\s"', 'x~"[\\\\s\\\\S]"', 'x~"(?i)σ"', "time~^17", "time=179*", f"time={T0}",
    f"time>={T0}", f"time<{T0 + 0.5}", "time=0", f"time={MAX_TIME}", "time!=0", "time=abc",
    # flags, tags, sources
    "flag=truncated", "flag!=truncated", "flag=trunc*", "flag~^truncated:[0-9]+$", "flag=parse-error",
    'flag=""', "flag=*", "tag=sys_tag", 'tag=""', "tag!=sys_tag", 'tag!=""', "tag=*", "tag~^$",
    "source=10.0.0.7", 'source=""', "source=10.0.0.*",
    # full text
    "create", '"NEW TASK"', "disk", "DISK", "isk", "diskette", "dis*", "*kette", "*tmp*", "dis?ette",
    "e\u0301rror", "rror", "i", "İ", '"i\u0307"', "dİsk", "k", "σας", "ΣΑΣ", "ς", "ΟΔΟΣ", "*", "?", '""',
    "99%", '"a*b?"', "«disk»", "/var/", "error", "\\", "it's", '"\\" OR 1=1 --"',
    # nesting
    "not disk", "disk or full", "not (app=p or x=1)", "not x~\"(a)\\\\1\"", "not (x=1 and not tag=\"\")",
    "(disk or nosuch=1) not flag=truncated", "not not create",
]


@pytest.mark.parametrize("text", TRICKY_FILTERS)
def test_tricky_filters_agree(engines: Engines, sample_pack: str, text: str) -> None:
    """If a filter reaches an edge of either engine, then the SQL still takes what the predicate takes."""
    check_agreement(engines, text, RECORDS, sample_pack)


# -- The property: generated records and filters -----------------------------------------

KEYS = [
    "msg", "_content_", "rawmsg", "message", "pri-text", "_severity_", "severity", "syslogseverity",
    "_facility_", "facility", "app-name", "_program_", "app", "programname", "hostname", "_hostname_",
    "host", "fromhost", "source", "procid", "_process_id_", "msgid", "n", "x", "$!foo",
]
ALPHABET = st.sampled_from(
    [*"aAbBdDiIkKsS019 -_.:*?'\"\\\n\t", "é", "İ", "ı", "Σ", "σ", "ς", "\u212a", "\u0301", "\u00a0", "«", "😀", "\x00"]
)
COMMON = ["705", "5", "3", "err", "Warning", "web-1", "x", "a\nb", "", "1.5", "-1", "Disk full", "disk", "İ"]
"""Values both the records and the filters draw often, so that filters take some records and not others."""
VALUES = st.sampled_from(COMMON) | st.sampled_from(TRICKY_VALUES) | st.text(ALPHABET, max_size=6)
WORDS = st.sampled_from(["disk", "full", "Disk", "DISK", "err", "error", "x", "12", "café", "k", "i", "σ", "ΣΑΣ"])
GLUE = st.sampled_from([" ", " ", "-", "_", ".", "/", "", "é", "\u0301", "=", ": ", "\n", "«", "İ", "\u212a"])


@st.composite
def messages(draw: st.DrawFn) -> str:
    parts = draw(st.lists(WORDS, max_size=5))
    glue = draw(st.lists(GLUE, min_size=len(parts) + 1, max_size=len(parts) + 1))
    return "".join(g + p for g, p in zip(glue, [*parts, ""], strict=True))


def token(text: str) -> str:
    """A streamlog column: no spaces."""
    return text.replace(" ", "").replace("\n", "") or "-"


@st.composite
def parsed_records(draw: st.DrawFn) -> Record:
    kind = draw(st.sampled_from(["streamlog", "rfc5424", "rfc3164", "garbage"]))
    msg = draw(messages())
    app = token(draw(st.sampled_from(["todo-list", "billing", "app", "İ"]) | VALUES))
    procid = token(draw(st.sampled_from(["705", "+5", "1e3", "-", "0" * 30 + "7"]) | VALUES))
    if kind == "streamlog":
        tag = draw(st.sampled_from(["sys_tag", "", "42", "t"]))
        ts = draw(st.sampled_from([str(T0), "0", "bogus", str(MAX_TIME), str(MAX_TIME + 1)]))
        pri = draw(st.sampled_from(["user.notice", "local0.err<131>", "kern.emerg", "x.y", "mail", "user.9",
                                    "USER.WARNING", "auth.crit<999>"]))
        line = f"0.1 {tag} {ts} 10.0.0.7 {token(draw(VALUES))} {pri} 0 {app} {procid} - {msg}"
    elif kind == "rfc5424":
        pri = draw(st.sampled_from(["0", "28", "165", "191", "192", "x"]))
        line = f'<{pri}>1 2026-11-22T10:01:06Z {token(draw(VALUES))} {app} {procid} ID7 [x@1 a="b"] {msg}'
    elif kind == "rfc3164":
        pri = draw(st.sampled_from(["13", "28", "0", "200"]))
        line = f"<{pri}>Nov 22 10:01:06 {token(draw(VALUES))} {app}[{procid}]: {msg}"
    else:
        line = msg
    record = PARSE(line.encode(), PEER, T0 * 10**9)
    flags = draw(st.lists(st.sampled_from([truncated_flag(70000), "truncated", "incomplete", "x:y"]), max_size=2))
    return record.with_flags(tuple(flags))


@st.composite
def made_records(draw: st.DrawFn) -> Record:
    keys = draw(st.lists(st.sampled_from(["msg", "n", "x", "severity", "procid"]) | st.sampled_from(KEYS), max_size=5))
    values = [draw(VALUES | messages()) for _ in keys]
    tag = draw(st.none() | st.sampled_from(["sys_tag", "", "42"]) | VALUES)
    flags = draw(st.lists(st.sampled_from([truncated_flag(70000), "parse-error", "", "trunc"]) | VALUES, max_size=2))
    time = draw(st.sampled_from([T0, 0, MAX_TIME, 5]))
    source = draw(st.sampled_from(["src", "", "10.0.0.7", "web-1"]) | VALUES)
    return Record(time, 0, tuple(keys), values, source, {STREAMLOG_TAG: tag} if tag is not None else {},
                  tuple(flags))


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


BARE = re.compile(r"(?:[^\s()\"=<>~!]|!(?!=))+")


def written(value: str, draw: st.DrawFn) -> str:
    """The value bare when the grammar allows it (and the draw says so), else quoted."""
    bare_ok = BARE.fullmatch(value) is not None and value.lower() not in ("and", "or", "not")
    return value if bare_ok and draw(st.booleans()) else quoted(value)


FIELDS = st.sampled_from(["msg", "app", "host", "severity", "_severity_", "procid", "n", "x"]) | st.sampled_from(
    [*KEYS, "nosuch", "tag", "source", "time", "flag"]
)
REGEXES = st.sampled_from([
    "^x", "disk", "(?i)DISK", r"\d+", r"\w+\s", "^$", "", "a|b", "[^a]", r"\bdisk\b", r"(?<=a)b", r"(a)\1",
    "x$", "$\n", "(?m)^b", "(?s)a.b", "a.b", r"\Bisk", "é", "(?i)σ", "(?i)k", "(?i)i", r"\x00",
    "a{2,3}", "a{1001}", "(?:ab)+?", "a*+", "(?>a+)b", r"\Z", r"\A", r"[\s\S]", r"\W", r"\D", r"(?a)\w+",
    r"(?a)\bx", r"^\s*[0-9]+$", "(?i)^warn", r"\.", "[-.]", "(?x) a b ", r"(?P<n>a)(?P=n)", "(?(1)a|b)",
    r"\u00e9", "[é-ü]", "(?i)[a-k]", r"\S+$", "^.{0,3}$",
])
NUMBERS = st.sampled_from([
    "5", "705", "-1", "1.5", "0", "1e3", "1e400", "-1e400", "0.1", "0.3", "4294967295", str(T0), "9007199254740993",
    "2.5e-324", "1.7976931348623157e308", ".5", "5.", "+7", "-0.0", "9" * 20, "1" * 4300,
])
SEVERITIES = st.sampled_from(["0", "3", "7", "err", "warning", "warn", "INFO", "emerg", "04", "panic"])
GLOBS = st.sampled_from(["web-*", "*", "?", "*-1", "trunc*", "x*y?z", "*e*", "??", "*\u212a", "*İ*", "?:*"])


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    field = draw(FIELDS)
    op = draw(st.sampled_from(["=", "!=", "~", "<", "<=", ">", ">="]))
    if op == "~":
        value = written(draw(REGEXES | st.sampled_from(COMMON) | VALUES), draw)
    elif op in ("<", "<=", ">", ">="):
        value = written(draw(SEVERITIES if field in ("severity", "_severity_", "syslogseverity") else NUMBERS), draw)
    else:
        value = draw(GLOBS) if draw(st.booleans()) else written(draw(st.sampled_from(COMMON) | VALUES | SEVERITIES | NUMBERS), draw)
    return f"{field}{op}{value}"


@st.composite
def text_searches(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return quoted(draw(messages() | VALUES))
    word = draw(WORDS | GLOBS | st.sampled_from(["dis*", "*rr", "e?ror", "99%", "/var/", "ıi", "İ", "ς"]))
    return word if BARE.fullmatch(word) and word.lower() not in ("and", "or", "not") else quoted(word)


class TestEnginesAgree:
    """Hypothesis: for generated records and filters, the predicate, chDB and 18.16 take the same rows."""

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        records=st.lists(parsed_records() | made_records(), min_size=1, max_size=8),
        texts=st.lists(filter_expressions(comparisons() | text_searches()), min_size=1, max_size=4),
    )
    def test_same_rows(self, engines: Engines, records: list[Record], texts: list[str]) -> None:
        """If the SQL is exact, then both engines take the predicate's rows; if not, a superset of them."""
        records = [r for r in records if storable(r)]
        assume(records)
        pack_id = engines.insert(records)
        for text in texts:
            try:
                f = parse_filter(text)
            except FilterError:
                event("filter refused")
                continue
            taken = len(python_rows(f, records))
            event("takes " + ("none" if not taken else "all" if taken == len(records) else "some"))
            event(f"exact: {f.to_clickhouse(CLICKHOUSE_18_16).exact}")
            check_agreement(engines, text, records, pack_id)


def check_verdicts(engines: Engines, text: str, column: str, values: Sequence[str]) -> None:
    """If ``text`` tests ``column`` (field ``x`` or the message), then the engines agree with the predicate."""
    f = parse_filter(text)
    key = "msg" if column == "message" else "x"
    expected = [f.matches(fields((key, v))) for v in values]
    for engine, dialect in engines.dialects.items():
        condition = f.to_clickhouse(dialect)
        got = engines.verdicts(condition.sql, column, values)[engine]
        for value, want, have in zip(values, expected, got, strict=True):
            if condition.exact:
                assert have == want, (engine, text, value)
            else:
                assert have or not want, (engine, text, value)


PIECES = st.sampled_from([
    "a", "b", "k", "s", "i", "é", "Σ", "ς", "İ", ".", "^", "$", r"\b", r"\B", r"\d", r"\w", r"\s", r"\W", r"\Z",
    r"\A", "[a-k]", "[^a]", r"[\w-]", "(?i)", "(?m)", "(?s)", "(?a)", "*", "+", "?", "{2}", "{1,3}", "*?", "|",
    "(", ")", "(?:", "(?=a)", "(?!b)", "(?<=a)", r"\1", r"\n", "\n", "-", "K", "\u212a",
])
STRINGS = st.lists(st.text(ALPHABET, max_size=6) | st.sampled_from(["", "\n", "a\n", "ab", "İi", "Kk\u212a"]),
                   min_size=1, max_size=8)


class TestRegularExpressions:
    """Hypothesis: re2 as written by the filter answers as Python's re.search does."""

    @settings(max_examples=150, deadline=None)
    @given(pattern=st.lists(PIECES, min_size=1, max_size=8).map("".join), values=STRINGS)
    def test_search(self, engines: Engines, pattern: str, values: list[str]) -> None:
        """If a pattern is valid Python, then the SQL runs on both engines and answers as re.search."""
        try:
            parse_filter(f"x~{quoted(pattern)}")
        except FilterError:
            assume(False)
        check_verdicts(engines, f"x~{quoted(pattern)}", "x", values)

    def test_translations(self) -> None:
        """If the pattern uses what re2 has, then the SQL is exact; lookaround and backreferences are not."""
        exact = [r"^\d+$", r"(?i)error", r"\bdisk\b", "a$", r"\Bisk", "(?m)^b$", "(?s)a.b", "[^a]", "(?a)\\w\\b"]
        inexact = [r"(a)\1", "(?<=a)b", "(?!a)b", "a$\n", "a{1001}", "x*+", "(?>x)", "a\\bb", "(x)?(?(1)a|b)"]
        for pattern in exact + inexact:
            condition = parse_filter(f"x~{quoted(pattern)}").to_clickhouse(CLICKHOUSE_18_16)
            assert condition.exact == (pattern in exact), pattern


NUMBER_TEXTS = st.sampled_from([
    "0", "-0", "+0", "00", "705", "705.0", "705.", "+705", "0705", ".5", "-.5", "1e3", "1E+3", "1e-3", "9" * 30,
    "9007199254740993", "9007199254740992", "1e400", "-1e400", "1e-400", "2.4703282292062328e-324",
    "2.4703282292062327e-324", "4.9406564584124654e-324", "1.7976931348623157e308",
    "1.797693134862315807937289714053e308", "1.797693134862315807937289714054e308", "0.30000000000000004",
    "0.3", "0.1", "1" * 4300, "1" * 4301, "0" * 4301 + "5", "1e99999999999999999999", "abc", "", "1_000",
    " 5", "5 ", "inf", "nan", "0x10", "1e", "e5", ".", "-", "1.5e", "９",
])


class TestNumbers:
    """Hypothesis: numbers compared as text against exact thresholds agree with Python's int() and float()."""

    @settings(max_examples=150, deadline=None)
    @given(
        op=st.sampled_from(["<", "<=", ">", ">="]),
        limit=NUMBER_TEXTS.filter(lambda t: t.strip() == t and t not in ("", "abc", "inf", "nan"))
        | st.floats(allow_nan=False).map(repr) | st.integers(-(10**30), 10**30).map(str),
        values=st.lists(NUMBER_TEXTS | st.floats(allow_nan=False).map(repr)
                        | st.floats(allow_nan=False).map(lambda f: f"{f:.25e}") | st.integers().map(str),
                        min_size=1, max_size=8),
    )
    def test_compare(self, engines: Engines, op: str, limit: str, values: list[str]) -> None:
        """If a value is compared with a limit, then both engines answer as Python does, exactly."""
        try:
            f = parse_filter(f"x{op}{quoted(limit)}")
        except FilterError:
            assume(False)
        assert f.to_clickhouse(CLICKHOUSE_18_16).exact
        check_verdicts(engines, f"x{op}{quoted(limit)}", "x", values)


def exact_decimal(value: Fraction) -> str:
    """The exact decimal text of a binary fraction."""
    return format(decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator), "f")


def rounding_edges(limit: float) -> list[str]:
    """Decimals on and beside the points where Python's float() rounding crosses ``limit``."""
    out = []
    for low, high in ((math.nextafter(limit, -math.inf), limit), (limit, math.nextafter(limit, math.inf))):
        if math.isinf(low) or math.isinf(high):
            continue
        middle = (Fraction(low) + Fraction(high)) / 2
        tiny = (Fraction(high) - Fraction(low)) / 1000
        out += [exact_decimal(middle), exact_decimal(middle - tiny), exact_decimal(middle + tiny)]
    return out


class TestRoundingEdges:
    """A decimal exactly halfway between two doubles rounds to the even one, in Python and in the SQL."""

    @pytest.mark.parametrize("limit", [1.5, 706.0, 0.1, 5e-324, 2.0**53, 1e300, 1.7976931348623157e308, -0.3])
    @pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
    def test_halfway(self, engines: Engines, limit: float, op: str) -> None:
        """If a value lies on a rounding edge of the limit, then the comparison answers as Python's."""
        with decimal.localcontext() as context:
            context.prec = 2000
            values = rounding_edges(limit)
        check_verdicts(engines, f"x{op}{quoted(repr(limit))}", "x", values)


class TestFullText:
    """Hypothesis: words and phrases on word boundaries, case-insensitively, as the predicate finds them."""

    @settings(max_examples=150, deadline=None)
    @given(term=WORDS | st.text(ALPHABET, min_size=1, max_size=4), wildcard=st.booleans(),
           values=st.lists(messages() | st.text(ALPHABET, max_size=8), min_size=1, max_size=8))
    def test_search(self, engines: Engines, term: str, wildcard: bool, values: list[str]) -> None:
        """If a term is searched, then the engines find the messages the predicate finds."""
        text = term if wildcard and BARE.fullmatch(term) and term.lower() not in ("and", "or", "not") else quoted(term)
        try:
            parse_filter(text)
        except FilterError:
            assume(False)
        check_verdicts(engines, text, "message", values)


class TestQuoting:
    """Values reach ClickHouse as they were written, whatever they hold."""

    @settings(max_examples=100, deadline=None)
    @given(value=st.text(st.characters() | st.sampled_from(["'", "\\", "\x00", "\ud800", "\udfff", "\x7f"]), min_size=1))
    def test_literals(self, engines: Engines, value: str) -> None:
        """If a value holds quotes, backslashes, control characters or surrogates, then its literal has its bytes."""
        sql = parse_filter(f"x={quoted(value)}").to_clickhouse(CLICKHOUSE_18_16).sql
        literal_text = sql.rpartition(" = ")[2]
        expected = json.dumps(value.encode("utf-8", "surrogatepass").hex().upper())
        for answer in engines.scalar(f"SELECT hex({literal_text}) AS h").values():
            assert json.loads(answer)["h"] == json.loads(expected)

    @settings(max_examples=100, deadline=None)
    @given(value=st.text(st.characters(codec="utf-8")) | st.sampled_from(["'", "\\", "\"", "' --", "/*", "');"]),
           other=st.text(st.characters(codec="utf-8"), max_size=3))
    def test_no_injection(self, engines: Engines, value: str, other: str) -> None:
        """If a filter compares with any text, then the SQL takes exactly the rows holding that text."""
        check_verdicts(engines, f"x={quoted(value)}", "x", [value, value + other, other])
        check_verdicts(engines, f"x!={quoted(value)}", "x", [value, other])
        check_verdicts(engines, quoted(value), "message", [value, f"a {value} b", other])


class TestDialect:
    """ClickHouseDialect comes from the server's version()."""

    @pytest.mark.parametrize(
        ("text", "version"),
        [("18.16.1", (18, 16, 1)), ("26.9.2.1", (26, 9, 2, 1)), (" 24.8.4.13\n", (24, 8, 4, 13)), ("19.1", (19, 1))],
    )
    def test_from_version(self, text: str, version: tuple[int, ...]) -> None:
        """If version() answers a release number, then the dialect holds it."""
        assert ClickHouseDialect.from_version(text).version == version

    @pytest.mark.parametrize("text", ["", "clickhouse", "18", "1.1.54343", "18.14.19"])
    def test_refused(self, text: str) -> None:
        """If the text is no version, or one older than 18.16, then it is refused."""
        with pytest.raises(ValueError, match=r"ClickHouse|version"):
            ClickHouseDialect.from_version(text)

    def test_same_sql_for_every_release(self, engines: Engines) -> None:
        """If the dialects differ, then the SQL does not yet: it uses only what 18.16 has."""
        f = parse_filter("app-name=todo-list and _severity_<=4 disk not flag=truncated")
        texts = {f.to_clickhouse(d).sql for d in (CLICKHOUSE_18_16, *engines.dialects.values())}
        assert len(texts) == 1


class TestSqlText:
    """The SQL reads the sink's columns the way formats.columns.lookup reads a record."""

    def sql(self, text: str) -> str:
        return parse_filter(text).to_clickhouse(CLICKHOUSE_18_16).sql

    def test_empty_filter(self) -> None:
        """If the filter is empty, then the condition is true."""
        assert parse_filter("").to_clickhouse(CLICKHOUSE_18_16) == parse_filter("").to_clickhouse(CLICKHOUSE_18_16)
        assert self.sql("  ") == "1"

    def test_plain_field(self) -> None:
        """If a field has no equivalent, then it is read from the arrays; absent reads "", which = refuses."""
        assert self.sql("x=1") == "field_values[indexOf(field_keys, 'x')] = '1'"
        assert self.sql('x=""') == "multiIf(has(field_keys, 'x'), field_values[indexOf(field_keys, 'x')] = '', 0)"
        assert self.sql("x!=1") == "not(field_values[indexOf(field_keys, 'x')] = '1')"

    def test_equivalents_and_columns(self) -> None:
        """If a field has equivalents, then they are tried in formats.columns' order, then the column."""
        app = self.sql("app-name=a")
        assert app.startswith("multiIf(has(field_keys, 'app-name'), ")
        assert "hasAny(field_keys, ['_program_', 'app-name', 'programname', 'syslogtag']), app = 'a'" in app
        host = self.sql("host=h")
        assert host.index("'_hostname_'") < host.index("'hostname'") < host.index("'fromhost'")
        assert host.endswith("source = 'h')")
        assert self.sql("_severity_<=4").endswith("(severity >= 0 AND severity <= 4))")
        assert self.sql("source=s") == "source = 's'"
        assert self.sql("time>=5") == "time >= 5" and self.sql("time<1.5") == "time <= 1"

    def test_quotes_in_values(self) -> None:
        """If a value holds a quote or a backslash, then the literal escapes it."""
        assert self.sql('x="it\'s \\\\ ok"') == "field_values[indexOf(field_keys, 'x')] = 'it\\'s \\\\ ok'"

    def test_lowercase_is_one_character_but_for_dotted_capital_i(self) -> None:
        """If the SQL spells out İ and treats Σ as inexact, then no other character lowercases otherwise."""
        characters = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
        assert [c for c in characters if len(c.lower()) != 1] == ["\u0130"]
        assert [c for c in characters if ("a" + c).lower() != "a" + c.lower()] == ["\u03a3"]

    @pytest.mark.parametrize(
        ("text", "exact"),
        [
            ("app-name=todo-list and _severity_<=warning", True),
            ("host=web-* (timeout or \"connection reset\") not flag=truncated", True),
            ("procid<706 and n>=1.5e3", True),
            ("msg~\"(?i)^error: \\\\d+\"", True),
            ("tag=sys_tag", True),
            ('tag=""', False),  # the row holds "" for no tag
            ("ΣΑΣ", False),  # Σ lowercases by context
            ("x~\"(a)\\\\1\"", False),
            ("not x~\"(?=a)\"", False),
        ],
    )
    def test_exactness(self, text: str, exact: bool) -> None:
        """If a term can read differently in re2 or in the row, then the SQL says it is not exact."""
        assert parse_filter(text).to_clickhouse(CLICKHOUSE_18_16).exact is exact
