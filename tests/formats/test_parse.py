"""make_parser: the parse function a listener uses, whatever frame reaches it."""

from __future__ import annotations

import pytest

from formats.framing import DatagramDeframer
from formats.parse import make_parser
from tests.helpers import deframe

PEER = "192.0.2.9"
RECEIVED = 1_800_000_000_000_000_000
ENDS = [b"\0", b"\r", b"\r\0"]


def record(frame: bytes, **options: object) -> dict[str, object]:
    return make_parser(**options)(frame, PEER, RECEIVED).to_dict()  # type: ignore[arg-type]


class TestFrameEnds:
    @pytest.mark.parametrize("end", ENDS)
    @pytest.mark.parametrize(
        "frame",
        [
            b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 app 705 - hello",
            b"<13>1 2026-10-11T22:14:15Z h app - - - hello",
            b"<13>Oct 11 22:14:15 h app: hello",
            b"<14>pyapp[7]: hello",
            b"not syslog at all",
        ],
    )
    @pytest.mark.parametrize("format", ["auto", "streamlog", "rfc5424", "rfc3164"])
    def test_every_format_and_raw_record(self, frame: bytes, end: bytes, format: str) -> None:
        """If a frame ends with NUL, CR or CR NUL, then its record is the record of the frame without them."""
        assert record(frame + end, format=format) == record(frame, format=format)

    def test_raw_record_content(self) -> None:
        """If an unparseable frame ends with CR NUL, then _content_ is the text before them."""
        r = record(b"plain text\r\0")
        assert r["flags"] == ["parse-error"]
        assert r["fields"]["_content_"] == "plain text"  # type: ignore[index]

    def test_only_one_of_each(self) -> None:
        """If a message itself ends with CR or NUL before the frame's own end, then those bytes stay."""
        assert record(b"<14>app: two\r\r\0")["fields"]["_content_"] == "two\r"  # type: ignore[index]
        assert record(b"<14>app: nul\0\0")["fields"]["_content_"] == "nul\0"  # type: ignore[index]


class TestPythonSysLogHandler:
    """What logging.handlers.SysLogHandler sends: '<PRI>' + the formatted message + NUL."""

    LINES = (b"<14>pyapp[42]: first message", b"<11>pyapp[42]: second, an error", "<15>pyapp[42]: d\u00e9j\u00e0 vu".encode())

    def expected(self) -> list[tuple[str, str, str]]:
        return [("pyapp", "14", "first message"), ("pyapp", "11", "second, an error"), ("pyapp", "15", "d\u00e9j\u00e0 vu")]

    @staticmethod
    def summary(frames: list[bytes]) -> list[tuple[str, str, str]]:
        parse = make_parser()
        out = []
        for frame in frames:
            r = parse(frame, PEER, RECEIVED)
            assert r.flags == ()
            f = dict(r.fields)
            assert f["_process_id_"] == "42"
            out.append((f["_program_"], f["_priority_"], f["_content_"]))
        return out

    def test_tcp(self) -> None:
        """If the handler sends over TCP (NUL after each message, no LF), then each message is one clean record."""
        frames, d = deframe(b"".join(line + b"\0" for line in self.LINES))
        assert d.incomplete_frames == 0
        assert self.summary(frames) == self.expected()

    def test_udp(self) -> None:
        """If the handler sends datagrams (a NUL at the end of each), then each record is clean."""
        d = DatagramDeframer()
        frames = [f for line in self.LINES for f in d.feed(line + b"\0")]
        assert self.summary(frames) == self.expected()

    def test_message_ending_with_lf(self) -> None:
        """If a logged message itself ends with LF, then over TCP and UDP it is one record without it."""
        sent = b"<14>pyapp[42]: first message\n\0"
        frames, _ = deframe(sent)
        assert self.summary(frames) == self.expected()[:1]
        assert self.summary(DatagramDeframer().feed(sent)) == self.expected()[:1]
