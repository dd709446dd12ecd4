"""The deframers: LF, octet counting, auto per frame, datagrams, limits."""

from __future__ import annotations

import pytest

from formats.errors import FormatDefinitionError
from formats.framing import (
    DatagramDeframer,
    FlaggedFrame,
    StreamDeframer,
    frame_flags,
    message_bytes,
)
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


class TestNul:
    """Python's logging.handlers.SysLogHandler: '<PRI>message' and a NUL, no LF over TCP."""

    PYTHON = b"<14>app[7]: first\0<14>app[7]: second\0<11>app[7]: third\0"

    def test_nul_ends_frames_in_auto(self) -> None:
        """If messages end with NUL and no LF, then each is a frame, complete before the stream ends."""
        d = StreamDeframer()
        assert d.feed(self.PYTHON) == [b"<14>app[7]: first", b"<14>app[7]: second", b"<11>app[7]: third"]
        assert d.finish() == []
        assert d.incomplete_frames == 0

    def test_nul_and_lf_mixed(self) -> None:
        """If some frames end with LF and others with NUL, then each ends at its own terminator."""
        frames, d = deframe(b"<14>a\0<14>b\n<14>c\0<14>d\n")
        assert frames == [b"<14>a", b"<14>b", b"<14>c", b"<14>d"]
        assert d.empty_frames == 0

    def test_nul_then_lf_is_one_end(self) -> None:
        """If a message ending with LF is then ended with NUL, then the empty frame between is skipped and counted."""
        frames, d = deframe(b"<14>line\n\0<14>next\0")
        assert frames == [b"<14>line", b"<14>next"]
        assert d.empty_frames == 1

    def test_count_may_follow_a_nul(self) -> None:
        """If an octet-counted frame follows a NUL-ended one, then its count is read as a count."""
        frames, _ = deframe(b"<14>a\0" + octet(R5424) + b"<14>b\0")
        assert frames == [b"<14>a", R5424, b"<14>b"]

    def test_digits_after_a_nul_are_not_always_a_count(self) -> None:
        """If a NUL-ended message begins with digits but no message start follows, then it is one frame."""
        frames, _ = deframe(b"<14>a\x00100 errors\0" + ALI + b"\0")
        assert frames == [b"<14>a", b"100 errors", ALI]

    def test_octet_frames_keep_their_nuls(self) -> None:
        """If an octet-counted frame holds NULs, then it is taken byte-exact, NULs included."""
        frames, _ = deframe(octet(b"<13>a\0b\0", with_lf=False) + octet(b"<13>c\0d"))
        assert frames == [b"<13>a\0b\0", b"<13>c\0d"]

    @pytest.mark.parametrize("framing", ["lf", "octet"])
    def test_lf_and_octet_framing_keep_nul(self, framing: str) -> None:
        """If the listener's framing is lf or octet, then NUL is a message byte, not an end."""
        frames, _ = deframe(b"<14>a\0<14>b\0\n", framing=framing)
        assert [bytes(f) for f in frames] == [b"<14>a\0<14>b\0"]

    def test_setting_off(self) -> None:
        """If nul_ends_frame is off, then a NUL-ended stream without LF is one frame, incomplete at the end."""
        frames, _ = deframe(self.PYTHON, nul_ends_frame=False)
        assert frames == [self.PYTHON]
        assert frame_flags(frames[0]) == ("incomplete",)

    def test_oversize_nul_frame_keeps_sync(self) -> None:
        """If a NUL-ended frame exceeds the limit, then it is cut and flagged, and the next frame is intact."""
        big = b"<13>" + b"x" * 100
        for data in (big + b"\0<13>next\0", b"<13>first\0" + big + b"\0<13>next\0"):
            frames, d = deframe(data, max_frame_bytes=16)
            assert frames[-2:] == [big[:16], b"<13>next"]
            assert frame_flags(frames[-2]) == ("truncated:104",)
            assert d.truncated_frames == 1

    def test_every_chunk_size(self) -> None:
        """If NUL-ended, LF-ended and counted frames are replayed at every chunk size up to 64, then the frames never change."""
        data = (
            self.PYTHON * 3 + b"<14>lf\n" + octet(R5424) + b"<14>x\0" + b"100 errors\0"
            + octet(b"<13>in\0side") + b"<14>tail\n\0" + ALI + b"\0"
        )
        want = [
            *[b"<14>app[7]: first", b"<14>app[7]: second", b"<11>app[7]: third"] * 3,
            b"<14>lf", R5424, b"<14>x", b"100 errors", b"<13>in\0side", b"<14>tail", ALI,
        ]
        for size in range(1, 65):
            frames, d = deframe(chunks(data, size))
            assert frames == want, size
            assert (d.incomplete_frames, d.empty_frames) == (0, 1), size


class TestMessageBytes:
    @pytest.mark.parametrize(
        ("frame", "message"),
        [
            (b"msg", b"msg"),
            (b"msg\0", b"msg"),
            (b"msg\r", b"msg"),
            (b"msg\r\0", b"msg"),
            (b"msg\r\r", b"msg\r"),
            (b"msg\0\0", b"msg\0"),
            (b"msg\0\r", b"msg\0"),
            (b"\r\0", b""),
            (b"", b""),
        ],
    )
    def test_frame_ends(self, frame: bytes, message: bytes) -> None:
        """If a frame ends with NUL, CR or CR NUL, then the message is the frame without them, one of each at most."""
        assert message_bytes(frame) == message


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

    @pytest.mark.parametrize("datagram", [b"<14>a\0", b"<14>a\n\0", b"<14>a\n", b"<14>a"])
    def test_trailing_nul(self, datagram: bytes) -> None:
        """If a datagram ends with NUL (Python's SysLogHandler), LF, or LF then NUL, then it is one record without them."""
        d = DatagramDeframer()
        assert d.feed(datagram) == [b"<14>a"]
        assert d.empty_frames == 0

    def test_oversize_record(self) -> None:
        """If a record in a datagram is over the limit, then it is cut and flagged."""
        d = DatagramDeframer(max_frame_bytes=4)
        out = d.feed(b"abcdefgh\nok")
        assert out == [b"abcd", b"ok"]
        assert isinstance(out[0], FlaggedFrame)
        assert out[0].flags == ("truncated:8",)
