"""RELP frames: the deframer in any chunking, limits, malformed input, and the answers' bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats.framing import frame_flags
from formats.relp import (
    RelpDeframer,
    RelpFrame,
    RelpFramingError,
    encode_frame,
    offers,
    parse_offers,
    response,
)
from tests.helpers import chunks

OPEN_DATA = b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog"
SESSION = (
    b"1 open %d %s\n" % (len(OPEN_DATA), OPEN_DATA)
    + b"2 syslog 17 <13>hello world 1\n"
    + b"3 syslog 0\n"
    + b"4 syslog 9 two\nlines\n"
    + b"5 close 0\n"
)
EXPECTED = [
    RelpFrame(1, "open", OPEN_DATA),
    RelpFrame(2, "syslog", b"<13>hello world 1"),
    RelpFrame(3, "syslog", b""),
    RelpFrame(4, "syslog", b"two\nlines"),
    RelpFrame(5, "close", b""),
]


def feed_all(deframer: RelpDeframer, parts: list[bytes]) -> list[RelpFrame]:
    return [frame for part in parts for frame in deframer.feed(part)]


class TestDeframer:
    @pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
    def test_any_chunking(self, size: int) -> None:
        """If a session arrives in chunks of any size, then the same frames come out."""
        deframer = RelpDeframer(65536)
        assert feed_all(deframer, list(chunks(SESSION, size))) == EXPECTED
        assert deframer.frames == 5 and deframer.buffered == 0

    def test_data_with_an_lf_inside(self) -> None:
        """If DATA holds LF bytes, then DATALEN alone says where it ends."""
        assert RelpDeframer(100).feed(b"7 syslog 3 a\nb\n") == [RelpFrame(7, "syslog", b"a\nb")]

    @pytest.mark.parametrize("size", [1, 5, 1000])
    def test_long_data_is_cut_flagged_and_the_stream_stays_in_step(self, size: int) -> None:
        """If DATA is longer than the limit, then the first bytes are kept, flagged truncated, the rest
        skipped as it streams by, and the next frame is read right."""
        data = b"x" * 300
        stream = b"1 syslog 300 %s\n2 syslog 2 ok\n" % data
        deframer = RelpDeframer(100)
        frames = feed_all(deframer, list(chunks(stream, size)))
        assert [(f.txnr, bytes(f.data)) for f in frames] == [(1, b"x" * 100), (2, b"ok")]
        assert frame_flags(frames[0].data) == ("truncated:300",)
        assert deframer.truncated_frames == 1
        assert deframer.buffered < 120  # the skipped bytes were never held

    def test_the_kept_part_of_a_long_frame_grows_in_place(self) -> None:
        """If a long frame's data arrives in many pieces, then the part kept is extended in place, not
        copied anew with every piece (which made a frame cost the square of its length)."""
        deframer = RelpDeframer(1000)
        deframer.feed(b"1 syslog 5000 " + b"x" * 100)
        kept = deframer._kept
        for piece in chunks(b"y" * 4900, 100):
            assert deframer.feed(piece) == []
            assert deframer._kept is kept
        assert len(kept) == 1000
        [frame] = deframer.feed(b"\n")
        assert bytes(frame.data) == b"x" * 100 + b"y" * 900

    @pytest.mark.parametrize(
        ("stream", "says"),
        [
            (b"x syslog 3 abc\n", "not a RELP frame header"),
            (b"1234567890 syslog 1 a\n", "not a RELP frame header"),
            (b"1 sys-log 1 a\n", "not a RELP frame header"),
            (b"1 syslog 3 abcd\n", "LF expected after 3 bytes"),
            (b"1 syslog 0 \n", "DATALEN 0 must be followed by LF"),
            (b"1 syslog 3\nabc\n", "SP expected after DATALEN"),
            (b"1 " + b"a" * 40 + b" 0\n", "not a RELP frame header"),
        ],
    )
    def test_malformed_frames_raise_saying_what(self, stream: bytes, says: str) -> None:
        """If the bytes break the frame syntax, then feed raises RelpFramingError naming the problem."""
        with pytest.raises(RelpFramingError, match=says):
            RelpDeframer(100).feed(stream)

    def test_a_frame_cut_by_the_end_of_the_stream_is_nothing(self) -> None:
        """If the stream ends inside a frame, then finish gives nothing: the sender resends it."""
        deframer = RelpDeframer(100)
        assert deframer.feed(b"1 syslog 10 abc") == []
        assert deframer.finish() == [] and deframer.buffered == 0

    def test_limit_must_be_positive(self) -> None:
        """If the limit is below one byte, then the deframer refuses to be made."""
        with pytest.raises(ValueError, match="at least 1"):
            RelpDeframer(0)

    @given(st.lists(st.binary(max_size=80), max_size=20), st.integers(1, 64))
    def test_no_input_raises_anything_else(self, parts: list[bytes], limit: int) -> None:
        """If any bytes arrive, then the deframer returns frames or raises RelpFramingError, nothing else,
        and keeps its memory within the limit plus one header."""
        deframer = RelpDeframer(limit)
        try:
            for part in parts:
                for frame in deframer.feed(part):
                    assert len(frame.data) <= limit
                assert deframer.buffered <= limit + 60 + len(part)
        except RelpFramingError:
            pass
        deframer.finish()

    @given(st.lists(st.tuples(st.integers(1, 999_999_999), st.sampled_from(["syslog", "open", "close"]),
                              st.binary(max_size=200))), st.integers(1, 50))
    def test_encoded_frames_read_back(self, frames: list[tuple[int, str, bytes]], size: int) -> None:
        """If frames are encoded, then reading them back in any chunking gives them again."""
        stream = b"".join(encode_frame(*frame) for frame in frames)
        got = feed_all(RelpDeframer(1000), list(chunks(stream, size)))
        assert [(f.txnr, f.command, f.data) for f in got] == frames


class TestAnswers:
    def test_response_bytes(self) -> None:
        """If answers are made, then their bytes are those librelp sends and reads."""
        assert response(2, 200, "OK") == b"2 rsp 6 200 OK\n"
        assert response(1, 500, "command disabled") == b"1 rsp 20 500 command disabled\n"
        assert encode_frame(6, "rsp") == b"6 rsp 0\n"
        assert encode_frame(0, "serverclose") == b"0 serverclose 0\n"

    def test_open_answer_with_offers(self) -> None:
        """If open is answered with offers, then they follow the status line, one per line, no trailing LF inside."""
        body = offers({"relp_version": "0", "commands": "syslog"})
        assert response(1, 200, "OK", body) == b"1 rsp 37 200 OK\nrelp_version=0\ncommands=syslog\n"

    def test_parse_offers(self) -> None:
        """If an open's offers are read, then each name maps to its value."""
        assert parse_offers(OPEN_DATA) == {
            "relp_version": "0", "relp_software": "librelp,1.11.0,http://librelp.adiscon.com", "commands": "syslog",
        }
