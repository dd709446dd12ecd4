"""NDJSON bodies for the HTTP sink."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from formats.ndjson import decode_ndjson, encode_ndjson
from formats.record import Record


def rec(
    fields: list[tuple[str, str]], flags: tuple[str, ...] = (), error: str | None = None
) -> Record:
    """A record at a fixed time from a fixed peer."""
    keys = tuple(k for k, _ in fields)
    values = [v for _, v in fields]
    return Record(
        1700000000, 123456789, keys, values, "10.0.0.1", {"peer": "10.0.0.1"}, flags, error
    )


RECORDS = [
    rec([("_program_", "nginx"), ("_content_", "GET / 200")]),
    rec([("msg", "café 日本語 🚀"), ("empty", "")], flags=("invalid-utf8", "truncated:70000")),
    rec([("_content_", "<999>garbage")], flags=("parse-error",), error="PRI out of range"),
]


class TestEncode:
    def test_exact_lines(self) -> None:
        """If records are encoded, then each line is the compact JSON of to_dict() plus LF, in UTF-8."""
        expected = "".join(
            json.dumps(r.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
            for r in RECORDS
        )
        assert encode_ndjson(RECORDS) == expected.encode("utf-8")

    def test_one_line_per_record(self) -> None:
        """If values hold newlines, then they are escaped and each record is still one line."""
        records = [*RECORDS, rec([("multi", "a\nb\r\nc")])]
        lines = encode_ndjson(records).split(b"\n")
        assert len(lines) == len(records) + 1
        assert lines[-1] == b""

    def test_unicode_stays_raw_utf8(self) -> None:
        """If a value is not ASCII, then it is written as raw UTF-8, not \\u escapes."""
        body = encode_ndjson([RECORDS[1]])
        assert "café 日本語 🚀".encode() in body
        assert b"\\u" not in body

    def test_flags_and_error(self) -> None:
        """If a record has flags and an error, then both are in its object; without, error is absent."""
        first, _, third = decode_ndjson(encode_ndjson(RECORDS))
        assert first["flags"] == [] and "error" not in first
        assert third["flags"] == ["parse-error"]
        assert third["error"] == "PRI out of range"

    def test_field_order_preserved(self) -> None:
        """If fields come in some order, then the object's fields keep that order."""
        fields = [("z", "1"), ("a", "2"), ("m", "3"), ("_content_", "4")]
        (obj,) = decode_ndjson(encode_ndjson([rec(fields)]))
        assert list(obj["fields"].items()) == fields

    def test_no_records(self) -> None:
        """If there are no records, then the body is empty."""
        assert encode_ndjson([]) == b""
        assert decode_ndjson(b"") == []

    def test_lone_surrogate_replaced(self) -> None:
        """If a value holds a lone surrogate, then it becomes U+FFFD and the body is valid UTF-8."""
        (obj,) = decode_ndjson(encode_ndjson([rec([("k", "a\ud800b")])]))
        assert obj["fields"] == {"k": "a\ufffdb"}


class TestDecode:
    def test_round_trip(self) -> None:
        """If records are encoded then decoded, then each object equals the record's to_dict()."""
        assert decode_ndjson(encode_ndjson(RECORDS)) == [r.to_dict() for r in RECORDS]

    def test_line_separators_inside_strings(self) -> None:
        """If a value holds U+2028 or U+0085, then decoding still splits at LF only."""
        records = [rec([("k", "a\u2028b\u0085c")])]
        assert decode_ndjson(encode_ndjson(records)) == [records[0].to_dict()]

    def test_blank_lines_skipped(self) -> None:
        """If the body has blank lines or no final LF, then only the objects come back."""
        assert decode_ndjson(b'\n{"a":1}\n\n{"b":2}') == [{"a": 1}, {"b": 2}]

    def test_not_an_object(self) -> None:
        """If a line is JSON but not an object, then ValueError is raised."""
        try:
            decode_ndjson(b"[1]\n")
        except ValueError as e:
            assert "line 1" in str(e)
        else:
            raise AssertionError("no ValueError")

    @given(
        st.lists(
            st.builds(
                rec,
                st.lists(st.tuples(st.text(), st.text()), max_size=6),
                flags=st.lists(st.text(), max_size=3).map(tuple),
                error=st.none() | st.text(),
            ),
            max_size=6,
        )
    )
    def test_round_trip_any_text(self, records: list[Record]) -> None:
        """If records hold any text, then the body decodes to their to_dict(), one line each."""
        body = encode_ndjson(records)
        assert body.count(b"\n") == len(records)
        assert decode_ndjson(body) == [r.to_dict() for r in records]
