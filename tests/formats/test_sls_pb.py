"""The hand-written SLS LogGroup protobuf, checked against the official SDK's classes."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import pytest
from aliyun.log.log_logs_pb2 import LogGroup  # type: ignore[attr-defined]  # generated
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import sls_pb
from formats.errors import SlsDecodeError
from formats.record import Record
from formats.sls_pb import DecodedLog, DecodedLogGroup, decode_log_group, encode_log_group

# sls.md: the SDK's body for one log k=v, msg=hello, Time_ns 123, topic topic1,
# source 10.0.0.1, tag __tag__=x.
CAPTURED_HEX = (
    "0a2108f2ebc98e0612060a016b120176120c0a036d7367120568656c6c6f257b0000001a06746f70696331"
    "220831302e302e302e31320c0a075f5f7461675f5f120178"
)
T0 = 1641182706

Group = dict[str, Any]


def rec(
    fields: list[tuple[str, str]],
    time: int = T0,
    time_ns: int = 0,
    flags: tuple[str, ...] = (),
) -> Record:
    """A record with only what the encoder reads mattering."""
    keys = tuple(k for k, _ in fields)
    return Record(time, time_ns, keys, [v for _, v in fields], "10.0.0.1", {}, flags)


def sdk_bytes(
    records: Sequence[Record],
    *,
    topic: str = "",
    source: str = "",
    machine_uuid: str = "",
    tags: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The SDK's serialization of the same content, set as our encoder writes it."""
    group = LogGroup()
    for r in records:
        log = group.Logs.add()
        log.Time = r.time
        if r.time_ns:
            log.Time_ns = r.time_ns
        for k, v in r.fields:
            content = log.Contents.add()
            content.Key = k
            content.Value = v
    if topic:
        group.Topic = topic
    if source:
        group.Source = source
    if machine_uuid:
        group.MachineUUID = machine_uuid
    for k, v in tags:
        tag = group.LogTags.add()
        tag.Key = k
        tag.Value = v
    data: bytes = group.SerializeToString()
    return data


def sdk_view(data: bytes) -> Group:
    """What the SDK reads from ``data``, absent optional fields as None."""
    group = LogGroup()
    group.ParseFromString(data)
    return {
        "logs": [
            (
                log.Time,
                [(c.Key, c.Value) for c in log.Contents],
                log.Time_ns if log.HasField("Time_ns") else None,
            )
            for log in group.Logs
        ],
        "topic": group.Topic if group.HasField("Topic") else None,
        "source": group.Source if group.HasField("Source") else None,
        "machine_uuid": group.MachineUUID if group.HasField("MachineUUID") else None,
        "reserved": group.Reserved if group.HasField("Reserved") else None,
        "tags": [(t.Key, t.Value) for t in group.LogTags],
    }


def our_view(decoded: DecodedLogGroup) -> Group:
    """Our decoder's result in the shape of :func:`sdk_view`."""
    return {
        "logs": [(log.time, log.contents, log.time_ns) for log in decoded.logs],
        "topic": decoded.topic,
        "source": decoded.source,
        "machine_uuid": decoded.machine_uuid,
        "reserved": decoded.reserved,
        "tags": decoded.tags,
    }


def expected_view(
    records: Sequence[Record],
    *,
    topic: str = "",
    source: str = "",
    machine_uuid: str = "",
    tags: Sequence[tuple[str, str]] = (),
) -> Group:
    """What a reader should find in our encoding of ``records``."""
    return {
        "logs": [(r.time, list(r.fields), r.time_ns or None) for r in records],
        "topic": topic or None,
        "source": source or None,
        "machine_uuid": machine_uuid or None,
        "reserved": None,
        "tags": list(tags),
    }


UNICODE_RECORDS = [
    rec([("k", "v"), ("msg", "hello")], time_ns=123),
    rec(
        [("app-name", "café"), ("_content_", "日本語のログ 🚀🔥"), ("emoji-🔑", "é")],
        time_ns=999_999_999,
    ),
    rec([("empty", ""), ("", "empty key"), ("x", "")], time=0),
    rec([(f"field_{i}", f"value {i} " * (i % 7)) for i in range(60)], time=2**32 - 1, time_ns=1),
    rec([("_content_", "x" * 70_000), ("tail", "after a large value")]),
    rec([]),
]
GROUP_OPTIONS: dict[str, Any] = {
    "topic": "syslog",
    "source": "10.0.0.1",
    "machine_uuid": "3f1c9a2e-0000-4000-8000-000000000001",
    "tags": [("__tag__:__hostname__", "rx1"), ("__tag__:app-name", "日本"), ("__tag__:e", "")],
}


class TestCapturedExample:
    def test_byte_identical_to_sdk_capture(self) -> None:
        """If we encode sls.md's captured example, then the bytes equal the SDK capture exactly."""
        data = encode_log_group(
            [rec([("k", "v"), ("msg", "hello")], time_ns=123)],
            topic="topic1",
            source="10.0.0.1",
            tags=[("__tag__", "x")],
        )
        assert data.hex() == CAPTURED_HEX

    def test_capture_decodes(self) -> None:
        """If we decode the SDK capture, then we read its log, topic, source and tag."""
        assert decode_log_group(bytes.fromhex(CAPTURED_HEX)) == DecodedLogGroup(
            logs=[DecodedLog(time=T0, contents=[("k", "v"), ("msg", "hello")], time_ns=123)],
            topic="topic1",
            source="10.0.0.1",
            machine_uuid=None,
            reserved=None,
            tags=[("__tag__", "x")],
        )


class TestEncodeReadBySdk:
    def test_sdk_reads_our_records(self) -> None:
        """If the SDK parses our bytes, then it reads every log, content, Time_ns, topic, source and tag."""
        data = encode_log_group(UNICODE_RECORDS, **GROUP_OPTIONS)
        assert sdk_view(data) == expected_view(UNICODE_RECORDS, **GROUP_OPTIONS)

    def test_each_record_alone(self) -> None:
        """If a group holds one record, then the SDK reads exactly that record."""
        for r in UNICODE_RECORDS:
            assert sdk_view(encode_log_group([r])) == expected_view([r])

    def test_same_bytes_as_sdk(self) -> None:
        """If the SDK serializes the same content, then its bytes equal ours."""
        assert encode_log_group(UNICODE_RECORDS, **GROUP_OPTIONS) == sdk_bytes(
            UNICODE_RECORDS, **GROUP_OPTIONS
        )

    def test_empty_group(self) -> None:
        """If there are no records and no group fields, then the body is empty, as the SDK's is."""
        assert encode_log_group([]) == b"" == sdk_bytes([])

    def test_time_ns_zero_is_omitted(self) -> None:
        """If a record's time_ns is 0, then no Time_ns is written (absent means 0 to SLS)."""
        data = encode_log_group([rec([("a", "b")], time_ns=0)])
        assert sdk_view(data)["logs"] == [(T0, [("a", "b")], None)]
        assert b"\x25" not in data

    def test_time_ns_nonzero_is_written(self) -> None:
        """If a record's time_ns is not 0, then Time_ns is written as fixed32."""
        data = encode_log_group([rec([], time_ns=1)])
        assert data.endswith(b"\x25\x01\x00\x00\x00")

    def test_empty_group_strings_are_omitted(self) -> None:
        """If topic, source or machine_uuid are empty, then the fields are absent."""
        view = sdk_view(encode_log_group([rec([("a", "b")])], topic="", source="", machine_uuid=""))
        assert view["topic"] is view["source"] is view["machine_uuid"] is None

    def test_tags_keep_order_and_duplicates(self) -> None:
        """If tags are given, then they are written in order, duplicates kept."""
        tags = [("b", "1"), ("a", "2"), ("b", "3")]
        assert sdk_view(encode_log_group([], tags=tags))["tags"] == tags

    def test_field_order_and_duplicates_kept(self) -> None:
        """If a record repeats a key, then every content is written in record order."""
        fields = [("z", "1"), ("a", "2"), ("z", "3")]
        assert sdk_view(encode_log_group([rec(fields)]))["logs"][0][1] == fields

    def test_record_source_tags_error_not_written(self) -> None:
        """If a record has source, tags, flags and error, then only time and fields are written."""
        r = Record(T0, 0, ("a",), ["b"], "192.0.2.1", {"t": "v"}, ("truncated:9",), "oops")
        assert encode_log_group([r]) == encode_log_group([rec([("a", "b")])])


class TestSdkBytesDecoded:
    def test_sdk_serialization_decodes(self) -> None:
        """If the SDK serializes records, then our decoder reads the same logs and group fields."""
        data = sdk_bytes(UNICODE_RECORDS, **GROUP_OPTIONS)
        assert our_view(decode_log_group(data)) == expected_view(UNICODE_RECORDS, **GROUP_OPTIONS)
        assert our_view(decode_log_group(data)) == sdk_view(data)

    def test_explicit_empty_and_zero_fields(self) -> None:
        """If the SDK sets Topic to '' and Time_ns to 0 (as its put_logs does), then we read '' and 0, not None."""
        group = LogGroup()
        group.Topic = ""
        log = group.Logs.add()
        log.Time = T0
        log.Time_ns = 0
        group.Reserved = "r"
        decoded = decode_log_group(group.SerializeToString())
        assert decoded.topic == ""
        assert decoded.reserved == "r"
        assert decoded.logs == [DecodedLog(time=T0, contents=[], time_ns=0)]


class TestFlagsField:
    def test_flags_appended_as_content(self) -> None:
        """If flags_field is given and a record has flags, then one content joins them with spaces."""
        r = rec([("a", "b")], flags=("parse-error", "truncated:9000"))
        view = sdk_view(encode_log_group([r], flags_field="_flags_"))
        assert view["logs"] == [(T0, [("a", "b"), ("_flags_", "parse-error truncated:9000")], None)]

    def test_no_flags_no_content(self) -> None:
        """If a record has no flags, then flags_field adds nothing."""
        r = rec([("a", "b")])
        assert encode_log_group([r], flags_field="_flags_") == encode_log_group([r])

    def test_record_not_modified(self) -> None:
        """If flags are appended, then the record's own fields are left as they were."""
        r = rec([("a", "b")], flags=("bad-pri",))
        encode_log_group([r], flags_field="_flags_")
        assert r.fields == [("a", "b")]


class TestEncodeErrors:
    @pytest.mark.parametrize("time", [-1, 2**32])
    def test_time_out_of_range(self, time: int) -> None:
        """If a record's time is not a uint32, then ValueError is raised."""
        with pytest.raises(ValueError, match="uint32"):
            encode_log_group([rec([], time=time)])

    @pytest.mark.parametrize("time_ns", [-1, 1_000_000_000, 2**32])
    def test_time_ns_out_of_range(self, time_ns: int) -> None:
        """If a record's time_ns is outside 0..999999999, then ValueError is raised."""
        with pytest.raises(ValueError, match="time_ns"):
            encode_log_group([rec([], time_ns=time_ns)])

    def test_lone_surrogates_replaced(self) -> None:
        """If a string holds a lone surrogate, then it is written as U+FFFD (valid UTF-8)."""
        records = [rec([("k\ud800", "a\udfffb")], flags=("x\ud800",)), rec([("ok", "fine")])]
        data = encode_log_group(records, topic="t\ud801", tags=[("k", "\udc00")], flags_field="f")
        view = sdk_view(data)
        assert view["logs"] == [
            (T0, [("k\ufffd", "a\ufffdb"), ("f", "x\ufffd")], None),
            (T0, [("ok", "fine")], None),
        ]
        assert view["topic"] == "t\ufffd"
        assert view["tags"] == [("k", "\ufffd")]


VARINT_TIMES = [0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**32 - 1]


class TestVarintBoundaries:
    @pytest.mark.parametrize("time", VARINT_TIMES)
    def test_time(self, time: int) -> None:
        """If Time sits at a varint boundary, then SDK and our decoder read it and the bytes match the SDK."""
        records = [rec([("a", "b")], time=time)]
        data = encode_log_group(records)
        assert data == sdk_bytes(records)
        assert decode_log_group(data).logs[0].time == time

    def test_known_encodings(self) -> None:
        """If Time is 128 or 2**32-1, then it is written as the base-128 varint 80 01 / ff ff ff ff 0f."""
        assert encode_log_group([rec([], time=128)]) == bytes.fromhex("0a03088001")
        assert encode_log_group([rec([], time=2**32 - 1)]) == bytes.fromhex("0a0608ffffffff0f")

    @pytest.mark.parametrize("boundary", [128, 16384, 2**21])
    def test_lengths(self, boundary: int) -> None:
        """If a value, content or log length crosses a varint boundary, then the bytes match the SDK."""
        for size in range(boundary - 8, boundary + 8):
            records = [rec([("k", "v" * size)])]
            data = encode_log_group(records)
            assert data == sdk_bytes(records), size
            assert decode_log_group(data).logs[0].contents == [("k", "v" * size)]

    def test_group_string_lengths(self) -> None:
        """If topic, source or tag lengths cross varint boundaries, then the bytes match the SDK."""
        for size in (127, 128, 16383, 16384):
            options: dict[str, Any] = {
                "topic": "t" * size,
                "source": "s" * size,
                "tags": [("k" * size, "v" * size)],
            }
            assert encode_log_group([], **options) == sdk_bytes([], **options)

    def test_record_with_zero_fields(self) -> None:
        """If a record has no fields, then its Log holds Time only and the SDK agrees."""
        records = [rec([]), rec([], time_ns=5)]
        data = encode_log_group(records)
        assert data == sdk_bytes(records)
        assert [log.contents for log in decode_log_group(data).logs] == [[], []]


class TestHeadCache:
    def test_bounded_cache_still_correct(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the content-head cache is full, then encoding goes on and still matches the SDK."""
        monkeypatch.setattr(sls_pb, "_heads", {})
        monkeypatch.setattr(sls_pb, "_key_parts", {})
        monkeypatch.setattr(sls_pb, "_layouts", {})
        monkeypatch.setattr(sls_pb, "_head_count", 0)
        monkeypatch.setattr(sls_pb, "_MAX_KEYS", 3)
        monkeypatch.setattr(sls_pb, "_MAX_HEADS", 5)
        monkeypatch.setattr(sls_pb, "_MAX_LAYOUTS", 2)
        records = [rec([(f"key{i % 7}", "v" * (i % 11)) for i in range(n)]) for n in range(40)]
        for _ in range(2):  # the second pass reads the cache the first one filled
            assert encode_log_group(records) == sdk_bytes(records)
        assert len(sls_pb._key_parts) == 3
        assert len(sls_pb._layouts) == 2
        assert sum(len(h) for h in sls_pb._heads.values()) == 5

    def test_shared_and_equal_layouts(self) -> None:
        """If records share one keys tuple, or equal ones, alternating with others, then the bytes match the SDK."""
        a = ("_program_", "_content_")
        b = ("_content_", "_program_", "extra")
        records = [
            Record(T0, i, a if i % 3 else tuple(a), [f"p{i}", "m" * i], "s", {})
            if i % 2
            else Record(T0, 0, b, ["m" * (i * 7), "p", ""], "s", {})
            for i in range(50)
        ]
        assert encode_log_group(records) == sdk_bytes(records)

    def test_keys_values_mismatch(self) -> None:
        """If a record has more values than keys, then ValueError is raised, not a wrong body."""
        with pytest.raises(ValueError, match="1 keys and 2 values"):
            encode_log_group([Record(T0, 0, ("a",), ["1", "2"], "s", {})])

    def test_long_keys_not_cached(self) -> None:
        """If a key is longer than any SLS key, then it is encoded right but not cached."""
        key = "k" * 300
        records = [rec([(key, "v")]), rec([(key, "vv")])]
        assert encode_log_group(records) == sdk_bytes(records)
        assert key not in sls_pb._key_parts

    def test_same_key_different_lengths(self) -> None:
        """If one key comes with many value lengths, then each content has its own correct length."""
        records = [rec([("_content_", "é" * n)]) for n in range(300)]
        assert encode_log_group(records) == sdk_bytes(records)


def wire(number: int, wire_type: int) -> bytes:
    """A field key byte (small field numbers only)."""
    return bytes([number << 3 | wire_type])


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field (payload under 128 bytes)."""
    return wire(number, 2) + bytes([len(payload)]) + payload


LOG_OK = ld(1, b"\x08\x01" + ld(2, ld(1, b"k") + ld(2, b"v")))


class TestDecodeMalformed:
    @pytest.mark.parametrize(
        ("data", "why"),
        [
            (b"\x0a", "truncated varint"),
            (b"\x0a\x80", "truncated varint"),
            (b"\x0a\x05\x08\x01", "past the end"),
            (b"\x0a\x01\x08", "truncated varint"),
            (b"\x0a\x02\x08\xff", "truncated varint"),
            (b"\x08" + b"\xff" * 10 + b"\x01", "longer than 10"),
            (b"\x08\x01", "wire type"),  # Logs as varint
            (ld(3, b"\xff"), "UTF-8"),  # Topic not UTF-8
            (ld(1, b"\x08\x01" + ld(2, ld(1, b"\xc3") + ld(2, b"v"))), "UTF-8"),
            (ld(1, b"\x08\x01" + ld(2, ld(1, b"k") + ld(2, b"\xed\xa0\x80"))), "UTF-8"),
            (ld(1, ld(2, ld(1, b"k") + ld(2, b"v"))), "without Time"),
            (ld(1, b"\x08\x01" + ld(2, ld(2, b"v"))), "without Key"),
            (ld(1, b"\x08\x01" + ld(2, ld(1, b"k"))), "without Value"),
            (ld(6, ld(1, b"k")), "LogTag without Value"),
            (ld(1, b"\x0d\x01\x00\x00\x00"), "wire type"),  # Time as fixed32
            (ld(1, b"\x08\x01\x20\x01"), "wire type"),  # Time_ns as varint
            (ld(1, b"\x08\x01\x25\x01\x00"), "truncated fixed"),
            (b"\x39\x01\x02", "truncated fixed"),  # unknown fixed64, short
            (b"\x3b\x3c", "wire type 3"),  # a group
            (b"\x3e", "wire type 6"),
            (b"\x02\x00", "field number 0"),
            (b"\x80\x80\x80\x80\x10\x00", "field number"),  # key above 32 bits
        ],
    )
    def test_rejected(self, data: bytes, why: str) -> None:
        """If the bytes are malformed, then SlsDecodeError says why."""
        with pytest.raises(SlsDecodeError, match=why):
            decode_log_group(data)

    def test_truncations_of_a_valid_body(self) -> None:
        """If a valid body is cut anywhere but between top-level fields, then SlsDecodeError is raised."""
        data = bytes.fromhex(CAPTURED_HEX)
        boundaries = {35, 43, 53}  # after Logs, Topic, Source
        for end in range(1, len(data)):
            if end in boundaries:
                assert our_view(decode_log_group(data[:end])) == sdk_view(data[:end])
            else:
                with pytest.raises(SlsDecodeError):
                    decode_log_group(data[:end])


class TestDecodeProto2:
    def test_unknown_fields_skipped(self) -> None:
        """If unknown fields of every wire type appear at every level, then they are skipped."""
        unknown = b"\x38\x96\x01" + b"\x41" + bytes(8) + ld(9, b"xyz") + b"\x55" + bytes(4)
        content = ld(1, b"k") + unknown + ld(2, b"v")
        log = b"\x08\x01" + unknown + ld(2, content) + ld(3, b"?")
        data = unknown + ld(1, log) + ld(6, ld(1, b"t") + unknown + ld(2, b"u")) + ld(7, b"")
        decoded = decode_log_group(data)
        assert our_view(decoded) == sdk_view(data)
        assert decoded.logs == [DecodedLog(time=1, contents=[("k", "v")], time_ns=None)]

    def test_last_optional_wins(self) -> None:
        """If an optional field appears twice, then the last one wins, as in protobuf."""
        data = ld(3, b"first") + ld(1, b"\x08\x01\x08\x02") + ld(3, b"second") + ld(2, b"r")
        decoded = decode_log_group(data)
        assert decoded.topic == "second"
        assert decoded.reserved == "r"
        assert decoded.logs[0].time == 2
        assert our_view(decoded) == sdk_view(data)

    def test_large_time_keeps_low_32_bits(self) -> None:
        """If Time is a varint above 32 bits, then its low 32 bits are kept, as protobuf does."""
        data = ld(1, b"\x08" + b"\x81\x80\x80\x80\x10")  # 2**32 + 1
        assert decode_log_group(data).logs[0].time == 1 == sdk_view(data)["logs"][0][0]

    def test_empty_strings_present(self) -> None:
        """If topic and source are present but empty, then they read as '' (not None)."""
        decoded = decode_log_group(ld(3, b"") + ld(4, b"") + ld(5, b""))
        assert (decoded.topic, decoded.source, decoded.machine_uuid) == ("", "", "")

    def test_accepts_bytearray_and_memoryview(self) -> None:
        """If the body is a bytearray or memoryview, then it decodes as the bytes would."""
        data = bytes.fromhex(CAPTURED_HEX)
        assert decode_log_group(bytearray(data)) == decode_log_group(memoryview(data))
        assert decode_log_group(LOG_OK).logs[0].contents == [("k", "v")]


def varint(n: int) -> bytes:
    """A base-128 varint, written independently of the module under test."""
    out = []
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


# Hypothesis strategies: st.text() never yields lone surrogates.

records_st = st.builds(
    rec,
    st.lists(st.tuples(st.text(), st.text()), max_size=12),
    time=st.integers(0, 2**32 - 1),
    time_ns=st.integers(0, 999_999_999),
    flags=st.lists(st.text(min_size=1), max_size=3).map(tuple),
)
group_st = st.fixed_dictionaries(
    {
        "topic": st.text(),
        "source": st.text(),
        "machine_uuid": st.text(),
        "tags": st.lists(st.tuples(st.text(), st.text()), max_size=5),
    }
)

# Protobuf-shaped bytes: fields 1..7 of every valid wire type, nested at random,
# so the known fields often come with the wrong wire type or missing parts.
_number = st.integers(1, 7)
_leaf = st.one_of(
    st.tuples(_number, st.integers(0, 2**64 - 1)).map(lambda f: varint(f[0] << 3) + varint(f[1])),
    st.tuples(_number, st.binary(min_size=4, max_size=4)).map(
        lambda f: bytes([f[0] << 3 | 5]) + f[1]
    ),
    st.tuples(_number, st.binary(min_size=8, max_size=8)).map(
        lambda f: bytes([f[0] << 3 | 1]) + f[1]
    ),
    st.tuples(_number, st.text(max_size=4).map(str.encode) | st.binary(max_size=3)).map(
        lambda f: bytes([f[0] << 3 | 2]) + varint(len(f[1])) + f[1]
    ),
)
protobuf_st = st.recursive(
    st.lists(_leaf, max_size=4).map(b"".join),
    lambda inner: st.lists(
        _leaf
        | st.tuples(_number, inner).map(
            lambda f: bytes([f[0] << 3 | 2]) + varint(len(f[1])) + f[1]
        ),
        max_size=5,
    ).map(b"".join),
    max_leaves=24,
)


class TestProperties:
    @given(st.lists(records_st, max_size=8), group_st)
    def test_round_trip(self, records: list[Record], options: dict[str, Any]) -> None:
        """If any records are encoded, then decoding gives back their times, fields and the group fields."""
        decoded = decode_log_group(encode_log_group(records, **options))
        assert our_view(decoded) == expected_view(records, **options)

    @given(st.lists(records_st, max_size=8), group_st)
    @settings(deadline=None)
    def test_sdk_agrees(self, records: list[Record], options: dict[str, Any]) -> None:
        """If any records are encoded, then the SDK reads what we read, and serializes the same bytes."""
        data = encode_log_group(records, **options)
        assert sdk_view(data) == our_view(decode_log_group(data))
        assert data == sdk_bytes(records, **options)

    @given(
        st.lists(st.lists(st.text(max_size=5), max_size=6).map(tuple), min_size=1, max_size=4),
        st.data(),
    )
    @settings(deadline=None)
    def test_shared_layouts(self, layouts: list[tuple[str, ...]], data: st.DataObject) -> None:
        """If records share a few keys tuples, then the bytes match the SDK's."""
        records = []
        for _ in range(data.draw(st.integers(0, 12))):
            keys = data.draw(st.sampled_from(layouts))
            values = data.draw(st.lists(st.text(), min_size=len(keys), max_size=len(keys)))
            records.append(Record(T0, 0, keys, values, "s", {}))
        assert encode_log_group(records) == sdk_bytes(records)

    @given(st.lists(records_st, max_size=4), st.text(min_size=1))
    def test_flags_field_round_trip(self, records: list[Record], flags_field: str) -> None:
        """If flags_field is given, then each record with flags decodes with one extra content."""
        decoded = decode_log_group(encode_log_group(records, flags_field=flags_field))
        for r, log in zip(records, decoded.logs, strict=True):
            extra = [(flags_field, " ".join(r.flags))] if r.flags else []
            assert log.contents == r.fields + extra

    @given(st.binary(max_size=200))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """If arbitrary bytes are decoded, then a group or SlsDecodeError comes back, nothing else."""
        try:
            decoded = decode_log_group(data)
        except SlsDecodeError:
            return
        assert isinstance(decoded, DecodedLogGroup)

    @given(protobuf_st)
    def test_protobuf_shaped_bytes(self, data: bytes) -> None:
        """If protobuf-shaped bytes decode, then the SDK reads the same; else SlsDecodeError is raised."""
        try:
            decoded = decode_log_group(data)
        except SlsDecodeError:
            return
        assert our_view(decoded) == sdk_view(data)

    @given(st.lists(records_st, min_size=1, max_size=3), st.data())
    def test_mutated_bodies(self, records: list[Record], data: st.DataObject) -> None:
        """If bytes of a valid body are flipped or cut, then decoding returns or raises SlsDecodeError only."""
        body = bytearray(encode_log_group(records, topic="t", tags=[("k", "v")]))
        for _ in range(data.draw(st.integers(1, 4))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
        body = body[: data.draw(st.integers(0, len(body)))]
        with contextlib.suppress(SlsDecodeError):
            decode_log_group(bytes(body))
