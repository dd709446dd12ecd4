"""Structured payloads: key=value, CEF and LEEF readers, and their fields on records.

Where the samples come from:

- FortiGate: the FortiOS Log Message Reference's traffic log layout
  (``date= time= devname= devid= logid= type= subtype= ... srcip= ... msg=``),
  values shortened.
- CEF: the example in ArcSight's "Implementing ArcSight Common Event Format"
  (``CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232``)
  and its escaping rules (``\\|`` ``\\\\`` in the header; ``\\=`` ``\\\\`` ``\\n`` ``\\r`` in the extension).
- LEEF: IBM QRadar's "Log Event Extended Format" guide, its 1.0 example
  (Microsoft MSExchange, tab-separated) and 2.0 example (Lancope StealthWatch, ``^`` delimiter).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from formats.errors import FormatDefinitionError
from formats.parse import make_parser
from formats.payloads import payload_fields, read_cef, read_kv, read_leef

PEER = "192.0.2.4"
RECEIVED = 1_796_000_000 * 10**9
PROFILE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FORTIGATE = (
    'date=2026-12-06 time=10:00:01 devname="FG100" devid="FG100E4Q17000000" logid="0000000013" type="traffic" '
    'subtype="forward" level="notice" vd="root" srcip=10.0.0.7 srcport=51234 dstip=198.51.100.9 dstport=443 '
    'action="accept" msg="a \\"quoted\\" value"'
)
CEF = "CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232"
LEEF_1 = "LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.0\tdst=172.50.123.1\tsev=5\tcat=anomaly\tusrName=joe.black"
LEEF_2 = "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^srcPort=81^dstPort=21"


class TestKeyValue:
    def test_fortigate(self) -> None:
        """If a FortiGate traffic log is read, then every pair is a field, quotes removed and escapes resolved."""
        fields = dict(read_kv(FORTIGATE))
        assert fields["kv.date"] == "2026-12-06" and fields["kv.devname"] == "FG100"
        assert fields["kv.srcip"] == "10.0.0.7" and fields["kv.msg"] == 'a "quoted" value'
        assert len(fields) == 15

    def test_duplicate_keys_keep_the_first(self) -> None:
        """If a key repeats, then its first value is kept."""
        assert read_kv("a=1 b=2 a=3") == [("kv.a", "1"), ("kv.b", "2")]

    def test_words_that_are_not_pairs(self) -> None:
        """If words are not pairs (prose, a=b glued to text), then they are skipped."""
        assert read_kv('hello user=bob x"y=1 logged in =z k="v"w') == [("kv.user", "bob")]

    def test_other_backslashes_kept(self) -> None:
        """If a quoted value holds a backslash that escapes nothing, then it is kept (Windows paths)."""
        assert read_kv(r'path="C:\temp\x"') == [("kv.path", "C:\\temp\\x")]

    @PROFILE
    @given(
        pairs=st.dictionaries(
            st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.:-]{0,10}\Z", fullmatch=True), st.text(max_size=20), max_size=8
        )
    )
    def test_round_trip(self, pairs: dict[str, str]) -> None:
        """If pairs are rendered quoted with escapes, then they read back exactly, in order."""
        rendered = " ".join(f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for k, v in pairs.items())
        assert read_kv(rendered) == [("kv." + k, v) for k, v in pairs.items()]


def kv_by_the_rule(text: str) -> list[tuple[str, str]]:
    """read_kv's rule spelled out as a scan: at the start of each word, a pair if one is there whole
    (a quoted value's closing quote must end the word), else on to the next word."""
    pair = re.compile(r'([A-Za-z_][A-Za-z0-9_.:-]*)=(?:"((?:[^"\\]|\\.)*)"|(\S*))', re.DOTALL)
    pairs: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        m = pair.match(text, pos)
        if m is not None and (pos == 0 or text[pos - 1].isspace()) and (m.end() == n or text[m.end()].isspace()):
            quoted = m.group(2)
            value = m.group(3) if quoted is None else re.sub(r'\\(["\\])', r"\1", quoted)
            if "kv." + m.group(1) not in dict(pairs):
                pairs.append(("kv." + m.group(1), value))
            pos = m.end()
            continue
        while pos < n and not text[pos].isspace():
            pos += 1
        pos += 1
    return pairs


@settings(max_examples=1000)
@given(st.text(alphabet=st.sampled_from('ab=" \\\t\u00a0x1_.:-\n'), max_size=40))
@example('k="v w"x y=1')  # a quoted value that does not end its word: no pair, not k="v
def test_kv_reads_as_the_rule_says(text: str) -> None:
    """For any text of the characters that matter (quotes, escapes, =, kinds of white space), read_kv
    finds what a word-by-word scan finds."""
    assert read_kv(text) == kv_by_the_rule(text)


class TestCef:
    def test_vendor_example(self) -> None:
        """If ArcSight's example is read, then the seven header fields and the extension are fields."""
        assert read_cef("Sep 19 08:26:10 host " + CEF) == [
            ("cef.version", "0"), ("cef.device_vendor", "Security"), ("cef.device_product", "threatmanager"),
            ("cef.device_version", "1.0"), ("cef.signature_id", "100"), ("cef.name", "worm successfully stopped"),
            ("cef.severity", "10"), ("cef.src", "10.0.0.1"), ("cef.dst", "2.1.2.2"), ("cef.spt", "1232"),
        ]

    def test_escapes_and_spaces(self) -> None:
        """If header fields escape | and \\, and extension values hold spaces and escapes, then all are resolved."""
        fields = dict(read_cef(r"CEF:0|Ven\|dor|Pro\\duct|1|2|detected a\|b|5|msg=User a=b\=c went\n home act=blocked"))
        assert fields["cef.device_vendor"] == "Ven|dor" and fields["cef.device_product"] == "Pro\\duct"
        assert fields["cef.name"] == "detected a|b"
        assert fields["cef.msg"] == "User"  # "a=" starts the next pair: an unescaped '=' in a value is not CEF
        assert fields["cef.a"] == "b=c went\n home" and fields["cef.act"] == "blocked"

    @pytest.mark.parametrize("text", ["CEF:0|a|b|c|d|e", "xCEF:0|a|b|c|d|e|f|g", "CEF:x|a|b|c|d|e|f|", "plain"])
    def test_not_cef(self, text: str) -> None:
        """If the header is cut short or not at a word's start, then there is no CEF."""
        assert read_cef(text) == []

    @PROFILE
    @given(
        header=st.lists(st.text(max_size=10), min_size=6, max_size=6),
        extension=st.dictionaries(st.from_regex(r"\Ax[A-Za-z0-9_]{0,8}\Z", fullmatch=True), st.text(max_size=20), max_size=6),
    )
    @example(header=["", "", "", "", "", ""], extension={"x": " a "})
    def test_round_trip(self, header: list[str], extension: dict[str, str]) -> None:
        """If header fields and extension values are rendered with CEF's escapes, then they read back exactly."""
        head = "|".join(h.replace("\\", "\\\\").replace("|", "\\|") for h in header)
        ext = " ".join(
            f"{k}=" + v.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")
            for k, v in extension.items()
        )
        names = ["device_vendor", "device_product", "device_version", "signature_id", "name", "severity"]
        assert read_cef(f"CEF:0|{head}|{ext}") == [
            ("cef.version", "0"), *(("cef." + n, h) for n, h in zip(names, header, strict=True)),
            *(("cef." + k, v) for k, v in extension.items()),
        ]


class TestLeef:
    def test_version_1(self) -> None:
        """If a LEEF 1.0 event is read, then its header and tab-separated attributes are fields."""
        fields = dict(read_leef(LEEF_1))
        assert (fields["leef.vendor"], fields["leef.product_version"], fields["leef.event_id"]) == ("Microsoft", "4.0 SP1", "15345")
        assert (fields["leef.src"], fields["leef.usrName"]) == ("192.0.2.0", "joe.black")

    @pytest.mark.parametrize(
        "text",
        [LEEF_2, LEEF_2.replace("|^|", "|x5E|"), LEEF_2.replace("|^|", "|0x5e|"),
         LEEF_2.replace("|^|", "|x09|").replace("^", "\t"), LEEF_2.replace("|^|", "||").replace("^", "\t")],
    )
    def test_version_2_delimiters(self, text: str) -> None:
        """If LEEF 2.0 declares its delimiter as a character, in hex, or not at all (tab), then attributes split on it."""
        fields = dict(read_leef(text))
        assert (fields["leef.src"], fields["leef.dst"], fields["leef.dstPort"]) == ("10.0.1.8", "10.0.0.5", "21")

    @pytest.mark.parametrize("text", ["LEEF:1.0|a|b|c", "LEEF:2.0|a|b|c|d|xZZ|k=v", "LEEF:3.0|a|b|c|d|k=v"])
    def test_not_leef(self, text: str) -> None:
        """If the header is cut short, the delimiter unreadable or the version unknown, then there is no LEEF."""
        assert read_leef(text) == []


class TestNeverRaise:
    @PROFILE
    @given(
        text=st.one_of(
            st.text(max_size=200),
            st.lists(st.sampled_from(["CEF:0|", "LEEF:2.0|", "LEEF:1.0|", "|", "=", "\\", '"', " ", "\t", "a", "x09", "^", "k="]),
                     max_size=40).map("".join),
        ),
        grammar=st.sampled_from(["kv", "cef", "leef", "auto"]),
    )
    def test_readers(self, text: str, grammar: str) -> None:
        """If any text is read by any grammar, then the result is a list of string pairs."""
        for name, value in payload_fields(text, grammar):
            assert isinstance(name, str) and isinstance(value, str)


class TestOnRecords:
    def test_off_by_default(self) -> None:
        """If no payload is asked for, then a key=value line has only the syslog fields."""
        record = make_parser()(b"<189>" + FORTIGATE.encode(), PEER, RECEIVED)
        assert not any(k.startswith("kv.") for k in record.keys)

    def test_kv_fields_after_the_raw_text(self) -> None:
        """If payload=kv, then the pairs follow the syslog fields and _content_ keeps the raw text."""
        record = make_parser(payload="kv")(b"<189>" + FORTIGATE.encode(), PEER, RECEIVED)
        assert record.get("_content_") == FORTIGATE
        assert record.keys[8] == "kv.date" and record.get("kv.msg") == 'a "quoted" value'

    def test_auto(self) -> None:
        """If payload=auto, then CEF, LEEF and key=value lines each get their fields, and prose with one '=' none."""
        parse = make_parser(payload="auto")
        assert parse(b"<13>Sep 19 08:26:10 host " + CEF.encode(), PEER, RECEIVED).get("cef.name") == "worm successfully stopped"
        assert parse(b"<13>Sep 19 08:26:10 host " + LEEF_2.encode(), PEER, RECEIVED).get("leef.sev") == "5"
        assert parse(b"<189>" + FORTIGATE.encode(), PEER, RECEIVED).get("kv.srcip") == "10.0.0.7"
        assert len(parse(b"<13>app: set x=1 please", PEER, RECEIVED).keys) == 8

    def test_sd_fields(self) -> None:
        """If sd_fields is on, then each SD-PARAM is a field sd.<SD-ID>.<PARAM>, the first of a repeated one."""
        frame = b'<13>1 2026-10-11T22:14:15Z h app - - [exampleSDID@32473 iut="3" eventSource="App"][x@1 a="1" a="2"] m'
        record = make_parser(sd_fields=True)(frame, PEER, RECEIVED)
        assert [(k, v) for k, v in record.fields if k.startswith("sd.")] == [
            ("sd.exampleSDID@32473.iut", "3"), ("sd.exampleSDID@32473.eventSource", "App"), ("sd.x@1.a", "1"),
        ]
        assert record.get("_structured_data_") == '{"exampleSDID@32473":{"iut":"3","eventSource":"App"},"x@1":{"a":["1","2"]}}'

    def test_parse_errors_untouched(self) -> None:
        """If a frame does not parse, then no payload fields are added to its raw record."""
        record = make_parser(payload="kv")(b"a=1 b=2", PEER, RECEIVED)
        assert record.flags == ("parse-error",) and len(record.keys) == 8

    def test_shapes_share_keys(self) -> None:
        """If two lines have the same payload keys, then their records share one keys tuple."""
        parse = make_parser(payload="kv")
        assert parse(b"<13>a=1 b=2", PEER, RECEIVED).keys is parse(b"<13>a=3 b=4", PEER, RECEIVED).keys

    def test_unknown_payload_refused(self) -> None:
        """If the payload setting is unknown, then make_parser refuses it."""
        with pytest.raises(FormatDefinitionError, match="payload"):
            make_parser(payload="json")  # type: ignore[arg-type]
