"""receiverctl spool stats and frames, on a spool written here."""

from __future__ import annotations

import json
from pathlib import Path

from formats.framing import FlaggedFrame
from receiver.spool.segment import Entry, encode_segment, read_summary
from receiver.spool.store import SpoolStore
from tests.support.receiverctl import receiverctl

ALI = b"0.1 sys_tag 1795323666 127.0.0.1 web-1 user.notice 0 app 1 - hello"


def make_spool(directory: Path) -> Path:
    store = SpoolStore(directory)
    for entry in (
        Entry(1_795_323_666 * 10**9, "10.0.0.7", 40000, "tcp", "tcp", [ALI, b"<13>Oct 11 22:14:15 h app: two"]),
        Entry(1_795_323_667 * 10**9, "10.0.0.8", 5140, "udp", "udp", [FlaggedFrame(b"<13>cut", ("truncated:99",))],
              {0: ("truncated:99",)}),
    ):
        blob = encode_segment([entry])
        store.append(blob, read_summary(blob))
    store.close()
    return directory


class TestSpoolStats:
    def test_json(self, tmp_path: Path) -> None:
        """If stats are asked as JSON, then segments, frames and times are the spool's counters."""
        spool = make_spool(tmp_path / "spool")
        result = receiverctl("spool", "stats", "--spool", str(spool), "--json")
        assert result.returncode == 0, result.stderr
        stats = json.loads(result.stdout)
        assert (stats["segments"], stats["frames"], stats["frames_written"]) == (2, 3, 3)
        assert stats["oldest_receive_time_ns"] == 1_795_323_666 * 10**9
        assert stats["newest_receive_time_ns"] == 1_795_323_667 * 10**9

    def test_table(self, tmp_path: Path) -> None:
        """If stats are asked for people, then each line names what it counts."""
        result = receiverctl("spool", "stats", "--spool", str(make_spool(tmp_path / "spool")))
        assert "frames    3 held" in result.stdout
        assert "oldest    2026-11-22T" in result.stdout

    def test_missing_spool(self, tmp_path: Path) -> None:
        """If there is no spool where pointed, then the command exits 2 saying so, creating nothing."""
        result = receiverctl("spool", "stats", "--spool", str(tmp_path / "none"))
        assert result.returncode == 2
        assert "no spool here" in result.stderr
        assert not (tmp_path / "none").exists()


class TestSpoolFrames:
    def test_envelopes(self, tmp_path: Path) -> None:
        """If frames are listed, then each comes with its envelope and flags, oldest first."""
        result = receiverctl("spool", "frames", "--spool", str(make_spool(tmp_path / "spool")))
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(x["peer"], x["listener"], x["frame"], x["flags"]) for x in lines] == [
            ("10.0.0.7", "tcp", ALI.decode(), []),
            ("10.0.0.7", "tcp", "<13>Oct 11 22:14:15 h app: two", []),
            ("10.0.0.8", "udp", "<13>cut", ["truncated:99"]),
        ]

    def test_raw_last(self, tmp_path: Path) -> None:
        """If --raw --last 2 is given, then the newest two frames' bytes come out, one per line."""
        result = receiverctl("spool", "frames", "--spool", str(make_spool(tmp_path / "spool")), "--raw", "--last", "2")
        assert result.stdout == "<13>Oct 11 22:14:15 h app: two\n<13>cut\n"

    def test_parse(self, tmp_path: Path) -> None:
        """If --parse is given, then records come out as delivery will make them, with the frame's flags."""
        result = receiverctl("spool", "frames", "--spool", str(make_spool(tmp_path / "spool")), "--parse")
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert records[0]["fields"]["app-name"] == "app"
        assert records[0]["source"] == "10.0.0.7"  # streamlog's 127.0.0.1 is the peer
        assert records[2]["flags"][0] == "truncated:99"

    def test_parse_in_each_listeners_format(self, tmp_path: Path) -> None:
        """If a listener fixes its format, then --parse reads that listener's frames in it, as delivery does."""
        spool = make_spool(tmp_path / "spool")
        config = tmp_path / "receiver.toml"
        config.write_text(
            f'[spool]\ndirectory = "{spool}"\n'
            '[[listeners]]\nname = "tcp"\ntransport = "tcp"\nformat = "rfc5424"\n'
            '[[listeners]]\nname = "udp"\ntransport = "udp"\n'
        )
        result = receiverctl("spool", "frames", "-c", str(config), "--parse")
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert ["parse-error" in record["flags"] for record in records] == [True, True, False]  # tcp's are not RFC 5424
