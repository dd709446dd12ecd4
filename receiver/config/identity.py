"""Who the appliance is and which machine groups its senders belong to.

The appliance's identities follow Logtail: ``/etc/ilogtail/user_defined_id``
(one identity per line, trimmed, empty lines skipped, several allowed; the
file is re-read at most once a minute, and its removal means "no identity"
again) plus the comma-separated ``ALIYUN_LOGTAIL_USER_DEFINED_ID``. They tag
every group delivered upstream as ``__user_defined_id__``.

A sender belongs to the machine groups whose networks contain its address or
whose hostname patterns match the hostname its records name; delivery tags
its groups ``__machine_group__``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from receiver.config.networks import SourceNetworks

__all__ = [
    "DEFAULT_USER_DEFINED_ID_FILE",
    "ENV_USER_DEFINED_ID",
    "GROUP_TAGS",
    "Identities",
    "MachineGroup",
    "MachineGroups",
    "SenderSet",
    "group_tags",
]

DEFAULT_USER_DEFINED_ID_FILE = Path("/etc/ilogtail/user_defined_id")
ENV_USER_DEFINED_ID = "ALIYUN_LOGTAIL_USER_DEFINED_ID"
REREAD_SECONDS = 60.0

GROUP_TAGS = (
    "__client_ip__",
    "__receive_time__",
    "__hostname__",
    "__user_defined_id__",
    "__machine_group__",
    "__pack_id__",
)
"""The tags every delivered group carries, in this order."""


class Identities:
    """The appliance's user-defined identities, re-read at most every minute."""

    def __init__(
        self,
        path: Path = DEFAULT_USER_DEFINED_ID_FILE,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float],
    ) -> None:
        self._path = path
        self._from_env = tuple(i.strip() for i in environ.get(ENV_USER_DEFINED_ID, "").split(",") if i.strip())
        self._clock = clock
        self._read_at: float | None = None
        self._ids: tuple[str, ...] = ()
        self.problem: str | None = None
        """Why the file could not be read last time (None when fine or absent)."""

    def current(self) -> tuple[str, ...]:
        """The identities now: the file's (in order) then the environment's, without repeats."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= REREAD_SECONDS:
            self._read_at = now
            self._ids = tuple(dict.fromkeys((*self._read_file(), *self._from_env)))
        return self._ids

    def _read_file(self) -> list[str]:
        try:
            text = self._path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            self.problem = None
            return []
        except OSError as e:
            self.problem = f"cannot read {self._path}: {e.strerror}"
            return []
        self.problem = None
        return [line.strip() for line in text.splitlines() if line.strip()]


@dataclasses.dataclass(frozen=True, slots=True)
class MachineGroup:
    """A named set of senders, by network (CIDR) and/or hostname pattern (shell style, case-insensitive)."""

    name: str
    networks: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()


class SenderSet:
    """Senders named by networks (CIDR) and/or hostname patterns (shell style, case-insensitive): a
    sender is in the set when its address is in a network or the hostname its records name matches a
    pattern. What machine groups and parse profiles both choose senders by."""

    def __init__(self, networks: Sequence[str], hostnames: Sequence[str]) -> None:
        self.networks = SourceNetworks(networks)
        self.hostnames = (
            re.compile("|".join(fnmatch.translate(p.lower()) for p in hostnames)) if hostnames else None
        )

    def has_address(self, address: str) -> bool:
        return self.networks.contains(address)

    def has_hostname(self, hostname: str) -> bool:
        return self.hostnames is not None and bool(hostname) and self.hostnames.match(hostname.lower()) is not None

    def has(self, address: str, hostname: str) -> bool:
        return self.has_address(address) or self.has_hostname(hostname)


class MachineGroups:
    """Which groups a sender belongs to; answers are cached per (address, hostname)."""

    def __init__(self, groups: Sequence[MachineGroup]) -> None:
        self._groups = [(g.name, SenderSet(g.networks, g.hostnames)) for g in groups]
        self.of = lru_cache(maxsize=65536)(self._of)

    def _of(self, address: str, hostname: str) -> tuple[str, ...]:
        """The names of the groups that ``address`` (an IP) or ``hostname`` belong to, in configured order."""
        return tuple(name for name, senders in self._groups if senders.has(address, hostname))


def appliance_hostname() -> str:
    """This machine's name, as ``__hostname__`` shows it."""
    return socket.gethostname()


def group_tags(
    *,
    client_ip: str,
    receive_time_s: int,
    hostname: str,
    identities: Sequence[str],
    machine_groups: Sequence[str],
    pack_id: str,
) -> list[tuple[str, str]]:
    """The tags of one delivered group, Logtail's keys in a fixed order (empty ones left out)."""
    values = (
        client_ip,
        str(receive_time_s),
        hostname,
        " ".join(identities),
        " ".join(machine_groups),
        pack_id,
    )
    return [(key, value) for key, value in zip(GROUP_TAGS, values, strict=True) if value]
