"""Every source the receiver has heard from: Logtail's "heartbeat" view of a fleet.

Per sender address: connections open now, frames and bytes in total and in
the last full minute, when it was first and last heard. ``receiverctl
senders`` shows them with a state:

- ``connected``: a TCP connection is open and data came within a minute;
- ``idle``: a TCP connection is open, but nothing came for a minute or more;
- ``sending``: no connection (UDP), data within a minute;
- ``silent``: no connection and nothing for a minute or more: a server that
  stopped forwarding (or was switched off) shows up here.

Updated once per read (not per frame) on the reactor thread. At most
``limit`` senders are remembered: a new one then makes the receiver forget
the sender without a connection heard least recently (a disconnect counts
as being heard, for that order), and ``on_forgotten`` counts it. Senders
with an open connection are never forgotten; they are kept apart, so
finding the one to forget is O(1) however many are connected (spoofed UDP
sources arrive faster than a scan of 100,000 could keep up with). When the
connected ones alone reach ``limit``, the table holds them plus one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["Senders"]

_ACTIVE_SECONDS = 60.0


class _Sender:
    __slots__ = ("bytes", "connections", "first_seen", "frames", "last_seen", "minute", "minute_bytes",
                 "minute_frames", "previous_bytes", "previous_frames")

    def __init__(self, now: float) -> None:
        self.connections = 0
        self.frames = 0
        self.bytes = 0
        self.first_seen = now
        self.last_seen = now
        self.minute = int(now // 60)
        self.minute_frames = 0
        self.minute_bytes = 0
        self.previous_frames = 0
        self.previous_bytes = 0

    def roll(self, minute: int) -> None:
        """Move to ``minute``: the counts of the minute before it become the 'last minute' figures."""
        if minute != self.minute:
            adjacent = minute == self.minute + 1
            self.previous_frames = self.minute_frames if adjacent else 0
            self.previous_bytes = self.minute_bytes if adjacent else 0
            self.minute, self.minute_frames, self.minute_bytes = minute, 0, 0


class Senders:
    """The senders heard from; ``clock`` gives wall-clock seconds; ``on_forgotten`` is called for each one
    forgotten to stay within ``limit``."""

    def __init__(
        self, clock: Callable[[], float], *, limit: int = 100_000, on_forgotten: Callable[[], object] | None = None
    ) -> None:
        self._clock = clock
        self.limit = limit
        self._on_forgotten = on_forgotten
        # Each sender is in one of the two. The order is the order heard, not of last_seen: the
        # wall clock may step back.
        self._unconnected: OrderedDict[str, _Sender] = OrderedDict()
        self._connected: dict[str, _Sender] = {}

    def _make_room(self) -> None:
        """Before adding a sender: if full, forget the one without a connection heard least recently."""
        if len(self) >= self.limit and self._unconnected:
            self._unconnected.popitem(last=False)
            if self._on_forgotten is not None:
                self._on_forgotten()

    def connected(self, peer: str) -> None:
        now = self._clock()
        sender = self._connected.get(peer)
        if sender is None:
            sender = self._unconnected.pop(peer, None)
            if sender is None:
                self._make_room()
                sender = _Sender(now)
            self._connected[peer] = sender
        sender.connections += 1
        sender.last_seen = now

    def disconnected(self, peer: str) -> None:
        sender = self._connected.get(peer)
        if sender is None:
            return
        sender.connections -= 1
        if sender.connections == 0:
            del self._connected[peer]
            self._unconnected[peer] = sender

    def received(self, peer: str, frames: int, nbytes: int) -> None:
        now = self._clock()
        sender = self._connected.get(peer)
        if sender is None:
            sender = self._unconnected.get(peer)
            if sender is None:
                self._make_room()
                sender = self._unconnected[peer] = _Sender(now)
            else:
                self._unconnected.move_to_end(peer)
        sender.roll(int(now // 60))
        sender.frames += frames
        sender.bytes += nbytes
        sender.minute_frames += frames
        sender.minute_bytes += nbytes
        sender.last_seen = now

    def __len__(self) -> int:
        return len(self._unconnected) + len(self._connected)

    def snapshot(self, groups_of: Callable[[str], tuple[str, ...]] | None = None) -> list[dict[str, Any]]:
        """Every sender, most recently heard first."""
        now = self._clock()
        minute = int(now // 60)
        out: list[dict[str, Any]] = []
        for peer, s in (*self._connected.items(), *self._unconnected.items()):
            s.roll(minute)
            recent = now - s.last_seen < _ACTIVE_SECONDS
            if s.connections:
                state = "connected" if recent else "idle"
            else:
                state = "sending" if recent else "silent"
            out.append({
                "address": peer, "state": state, "connections": s.connections,
                "machine_groups": list(groups_of(peer)) if groups_of is not None else [],
                "frames": s.frames, "bytes": s.bytes,
                "frames_last_minute": s.previous_frames, "bytes_last_minute": s.previous_bytes,
                "first_seen": s.first_seen, "last_seen": s.last_seen,
            })
        out.sort(key=lambda x: float(x["last_seen"]), reverse=True)
        return out
