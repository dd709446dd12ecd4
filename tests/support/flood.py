"""What a plain TCP flood may lose when the receiver is killed: the bound, and the queues it is made of.

Shared by the kill -9 integration test and the reliability scenario, so both
hold the receiver to the same bound.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

__all__ = ["KILL_SPOOL", "TWISTED_READ_BYTES", "kill9_loss_bound_bytes", "socket_queues", "sysctl_max"]

KILL_SPOOL = {
    "segment_max_delay_ms": 5,
    "segment_max_bytes": 256 * 1024,
    "memory_high_watermark_bytes": 8 * 1024 * 1024,
    "memory_low_watermark_bytes": 2 * 1024 * 1024,
}
"""The receiver's spool settings under a kill -9 flood: a small memory high watermark keeps the bound small."""

TWISTED_READ_BYTES = 65536  # what one doRead of a Twisted TCP transport reads at most


def socket_queues(port: int) -> list[tuple[int, int]]:
    """(Recv-Q, Send-Q) of every established TCP socket bound to local ``port`` (from ``ss``)."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True, text=True, timeout=10, check=False,
    ).stdout
    return [(int(m.group(1)), int(m.group(2))) for m in re.finditer(r"^\s*(\d+)\s+(\d+)\s", out, re.M)]


def sysctl_max(name: str) -> int:
    """The maximum (third field) of ``net.ipv4.tcp_rmem`` / ``tcp_wmem``."""
    return int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])


def kill9_loss_bound_bytes(sender_sndbuf: int) -> int:
    """The most bytes written by a sender but lost when a receiver with :data:`KILL_SPOOL` is killed (-9).

    Read but not yet committed (up to the memory high watermark, plus one read),
    the receiver's kernel receive buffer (``tcp_rmem`` max) and the sender's
    send buffer.
    """
    return KILL_SPOOL["memory_high_watermark_bytes"] + TWISTED_READ_BYTES + sysctl_max("tcp_rmem") + sender_sndbuf
