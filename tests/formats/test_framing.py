"""The deframers: LF, octet counting, auto per frame, datagrams, limits."""

from __future__ import annotations

import pytest

from formats.errors import FormatDefinitionError
from formats.framing import DatagramDeframer, FlaggedFrame, StreamDeframer, frame_flags
from tests.helpers import chunks, deframe, wire_sample

ALI = b"0.1 sys_tag 1795323666 127.0.0.1 myhost user.notice 0 myapp 123 -  plain message 1"
R5424 = b"<13>1 2026-10-11T22:14:15+00:00 myhost myapp 123 - - hello"


def octet(msg: bytes, *, with_lf: bool = True) -> bytes:
    """An octet-counted frame; rsyslog-style (LF counted) unless ``with_lf`` is off."""
    body = msg + b"\n" if with_lf else msg
    return str(len(body)).encode() + b" " + body


class TestLineFeed:
    def test_lines(self) -> None:
        """If lines end with LF, then each line is a frame without its LF."""
        frames, d = deframe(b"a\nbb\nccc\n", framing="lf")
        assert frames == [b"a", b"bb", b"ccc"]
        assert d.frames == 3

    def test_empty_lines_skipped_and_counted(self) -> None:
        """If a stream holds empty lines, then they are skipped and counted."""
        frames, d = deframe(b"\na\n\n\nb\n\n", framing="lf")
        assert frames == [b"a", b"b"]
        assert d.empty_frames == 4

    def test_digits_are_never_a_count_in_lf_mode(self) -> None:
        """If the listener is LF-only, then a line like '12 <13>x' is one frame."""
        frames, _ = deframe(b"12 <13>x\n", framing="lf")
        assert frames == [b"12 <13>x"]

    def test_carriage_return_is_kept(self) -> None:
        """If a sender ends lines with CRLF, then the CR stays in the frame (byte-exact)."""
        frames, _ = deframe(b"a\r\n", framing="lf")
        assert frames == [b"a\r"]


class TestOctetCounting:
    def test_frames(self) -> None:
        """If frames are octet-counted, then each frame is exactly its count of bytes."""
        frames, _ = deframe(octet(R5424) + octet(b"<13>two"), framing="octet")
        assert frames == [R5424, b"<13>two"]

    def test_one_trailing_lf_stripped(self) -> None:
        """If the count includes a trailing LF (rsyslog), then exactly one LF is stripped."""
        frames, _ = deframe(b"6 <1>a\n\n" + b"5 <1>b\n", framing="octet")
        assert frames == [b"<1>a\n", b"<1>b"]

    def test_logger_style_without_lf(self) -> None:
        """If the count excludes any LF (logger), then the frame is taken as is."""
        data = wire_sample("logger-tcp-case5.bin")
        frames, d = deframe(data, framing="octet")
        assert len(frames) == 4
        assert frames[1].endswith(b"line two")
        assert d.framing_errors == 0

    def test_embedded_lf_stays_inside(self) -> None:
        """If a counted frame holds an LF, then it stays one frame."""
        frames, _ = deframe(octet(b"<13>line one\nline two"), framing="octet")
        assert frames == [b"<13>line one\nline two"]

    def test_missing_count_is_flagged_not_lost(self) -> None:
        """If an LF sender talks to an octet listener, then lines arrive flagged framing-error."""
        frames, d = deframe(b"<13>hello\n" + octet(b"<13>x"), framing="octet")
        assert frames == [b"<13>hello", b"<13>x"]
        assert frame_flags(frames[0]) == ("framing-error",)
        assert d.framing_errors == 1

    def test_missing_count_flag_survives_chunking(self) -> None:
        """If a frame without a count arrives in pieces, then it keeps its framing-error flag."""
        frames, _ = deframe(chunks(b"<13>hello world\n", 3), framing="octet")
        assert frames == [b"<13>hello world"]
        assert frame_flags(frames[0]) == ("framing-error",)

    def test_zero_count_frame(self) -> None:
        """If a count frame holds only its LF, then it is an empty frame, skipped and counted."""
        frames, d = deframe(b"1 \n" + octet(b"<1>a"), framing="octet")
        assert frames == [b"<1>a"]
        assert d.empty_frames == 1


class TestAuto:
    @pytest.mark.parametrize(
        "line",
        [
            b"0.1 sys_tag 1795323666 127.0.0.1 h user.notice 0 a 1 - m",
            b"2024-01-02 03:04:05 plain text log",
            b"100 errors found in batch 7",
            b"12345",
            b"7 days ago <not a count because LF framed>",
            b"1\t<13>tab is not a count separator",
        ],
    )
    def test_lf_lines_beginning_with_digits(self, line: bytes) -> None:
        """If an LF message begins with digits, then it is never taken for an octet count."""
        frames, d = deframe(line + b"\n" + line + b"\n")
        assert frames == [line, line]
        assert d.truncated_frames == 0

    def test_octet_then_lf_then_octet(self) -> None:
        """If framings alternate frame by frame, then each frame is read in its own."""
        data = octet(R5424) + b"<13>lf framed\n" + octet(ALI) + ALI + b"\n" + octet(b"<13>x", with_lf=False)
        frames, _ = deframe(data)
        assert frames == [R5424, b"<13>lf framed", ALI, ALI, b"<13>x"]

    def test_streamlog_versions_configure_detection(self) -> None:
        """If a listener knows streamlog version 2.1, then '83 2.1 ...' is an octet frame."""
        line = b"2.1 tag 1455776661 10.0.0.1 ERROR m"
        frames, _ = deframe(octet(line), streamlog_versions=("2.1",))
        assert frames == [line]
        frames, _ = deframe(octet(line))
        assert frames == [octet(line)[:-1]]  # unknown version: one LF frame, count and all

    def test_count_arriving_byte_by_byte(self) -> None:
        """If a count arrives one byte at a time, then the deframer waits instead of guessing."""
        frames, _ = deframe(chunks(octet(R5424) + octet(R5424), 1))
        assert frames == [R5424, R5424]

    def test_undecided_start_at_end_of_stream(self) -> None:
        """If the stream ends while a frame start is undecided, then it is kept, flagged incomplete."""
        frames, d = deframe(b"<1>a\n42")
        assert frames == [b"<1>a", b"42"]
        assert frame_flags(frames[1]) == ("incomplete",)
        assert d.incomplete_frames == 1


class TestLimits:
    def test_oversize_lf_frame_is_cut_and_flagged(self) -> None:
        """If an LF frame exceeds the limit, then it is cut there, flagged with its length, and the next frame is intact."""
        big = b"<13>" + b"x" * 100
        frames, d = deframe(big + b"\n<13>next\n", max_frame_bytes=16)
        assert frames == [big[:16], b"<13>next"]
        assert frame_flags(frames[0]) == ("truncated:104",)
        assert d.truncated_frames == 1

    def test_oversize_octet_frame_keeps_sync(self) -> None:
        """If an octet frame exceeds the limit, then the rest of it is skipped and never read as a message."""
        big = b"<13>" + b"7 <13>fake " * 20
        frames, _ = deframe(octet(big) + octet(b"<13>next"), max_frame_bytes=32)
        assert frames == [big[:32], b"<13>next"]
        assert frame_flags(frames[0]) == (f"truncated:{len(big) + 1}",)

    @pytest.mark.parametrize("size", [1, 2, 3, 5, 17, 1000])
    def test_oversize_in_pieces(self, size: int) -> None:
        """If oversize frames arrive in pieces of any size, then the result is the same."""
        data = b"<13>" + b"y" * 300 + b"\n" + octet(b"<13>" + b"z" * 300) + b"<13>ok\n"
        whole, _ = deframe(data, max_frame_bytes=64)
        pieces, _ = deframe(chunks(data, size), max_frame_bytes=64)
        assert pieces == whole
        assert [frame_flags(f) for f in pieces] == [("truncated:304",), ("truncated:305",), ()]

    def test_cut_never_splits_a_utf8_character(self) -> None:
        """If the limit falls inside a UTF-8 character, then the cut moves back to its start."""
        line = b"<13>" + "é".encode() * 10  # 4 + 20 bytes
        frames, _ = deframe(line + b"\n", max_frame_bytes=7)
        assert bytes(frames[0]) == "<13>é".encode()
        frames[0].decode()

    def test_ten_megabyte_line_uses_bounded_memory(self) -> None:
        """If a 10 MB line arrives in 64 KB reads, then no more than the limit is held."""
        d = StreamDeframer(max_frame_bytes=65536)
        line = b"<13>" + b"a" * (10 * 1024 * 1024)
        held = 0
        out: list[bytes] = []
        for piece in chunks(line + b"\n<13>after\n", 65536):
            out += d.feed(piece)
            held = max(held, d.buffered_bytes)
        assert held <= 65536
        assert [len(f) for f in out] == [65536, 9]
        assert frame_flags(out[0]) == (f"truncated:{len(line)}",)

    def test_incomplete_octet_frame_at_end(self) -> None:
        """If the sender closes mid-frame, then the complete frames are kept and the partial one is flagged."""
        frames, d = deframe(octet(b"<13>done") + b"50 <13>half")
        assert frames == [b"<13>done", b"<13>half"]
        assert frame_flags(frames[1]) == ("incomplete",)
        assert d.incomplete_frames == 1

    def test_bad_options_are_refused(self) -> None:
        """If a framing or limit is not valid, then construction says so."""
        with pytest.raises(FormatDefinitionError, match="framing"):
            StreamDeframer(framing="crlf")  # type: ignore[arg-type]
        with pytest.raises(FormatDefinitionError, match="max_frame_bytes"):
            StreamDeframer(max_frame_bytes=0)


class TestChunkBoundaries:
    @pytest.mark.parametrize(
        "name",
        [
            "rsyslog-ALI_LOG_FMT-tcp.bin",
            "rsyslog-SyslogProtocol23-tcp-octet-counted.bin",
            "syslog-ng-syslog-tcp-octet.bin",
            "logger-tcp-case5.bin",
            "loggen-tcp-15688-002.bin",
        ],
    )
    def test_every_chunk_size(self, name: str) -> None:
        """If a capture is replayed at every chunk size up to 64, then the frames never change."""
        data = wire_sample(name)
        whole, _ = deframe(data)
        for size in range(1, 65):
            assert deframe(chunks(data, size))[0] == whole, size


class TestDatagram:
    def test_one_record_with_or_without_lf(self) -> None:
        """If a datagram holds one record, then a trailing LF is a terminator, not a record."""
        d = DatagramDeframer()
        assert d.feed(b"<13>a\n") == [b"<13>a"]
        assert d.feed(b"<13>a") == [b"<13>a"]
        assert d.empty_frames == 0

    def test_several_records(self) -> None:
        """If a datagram holds LF-separated records, then each is a frame; empties are counted."""
        d = DatagramDeframer()
        assert d.feed(b"a\n\nb\n") == [b"a", b"b"]
        assert d.empty_frames == 1
        assert d.feed(b"") == []
        assert d.empty_frames == 2

    def test_oversize_record(self) -> None:
        """If a record in a datagram is over the limit, then it is cut and flagged."""
        d = DatagramDeframer(max_frame_bytes=4)
        out = d.feed(b"abcdefgh\nok")
        assert out == [b"abcd", b"ok"]
        assert isinstance(out[0], FlaggedFrame)
        assert out[0].flags == ("truncated:8",)
