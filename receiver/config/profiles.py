"""Parse profiles: how the frames of some senders are read, where one setting for the whole appliance is wrong.

Devices write local time without a zone, and a fleet spans regions; a
router's dialect or a firewall's key=value payload is a property of that
device. A profile names its senders (by listener, by network, by the
hostname their records give) and the settings that differ for them; any
setting it leaves out is the one of ``[parse]``.

    [[parse.profiles]]
    name = "shanghai-routers"
    networks = ["10.20.0.0/16"]
    hostnames = ["rtr-sh-*"]
    timezone = "Asia/Shanghai"
    dialect = "cisco"

A frame takes the first profile, in the file's order, whose listeners list
its listener (or that lists none) and whose senders include it (or that
names none): its address in a network, or the hostname its record gives
matching a pattern (which is why a profile chosen by hostname re-reads the
frame once its hostname is known). No profile: ``[parse]`` alone.
"""

from __future__ import annotations

import dataclasses

from formats.parse import Payload
from formats.rfc3164 import Dialect

__all__ = ["ParseProfile", "ParseSettings"]


@dataclasses.dataclass(frozen=True, slots=True)
class ParseSettings:
    """The settings a profile can change, all of them given: ``[parse]``'s, or a profile's over them."""

    timezone: str = "UTC"
    """Zone of timestamps without an offset (IANA name)."""
    dialect: Dialect = "auto"
    """Network devices' headers in RFC 3164 frames (Cisco IOS/NX-OS/ASA, Huawei, H3C): ``auto`` reads
    them where a frame has one, ``cisco`` reads every frame so, ``none`` reads plain RFC 3164."""
    payload: Payload = "none"
    """Fields from a structured message: ``kv`` (key=value), ``cef``, ``leef``, ``auto`` (whichever reads)."""
    sd_fields: bool = False
    """Each RFC 5424 structured-data parameter as a field ``sd.<SD-ID>.<PARAM>`` as well."""
    future_tolerance_hours: float = 48.0
    """A timestamp without a year is dated the latest year that puts it at most this far after receipt."""
    uncertain_year_days: float = 30.0
    """Such a timestamp dated longer ago than this is flagged ``uncertain-year``."""


@dataclasses.dataclass(frozen=True, slots=True)
class ParseProfile:
    """Settings for some senders (module docstring); a setting left None is ``[parse]``'s."""

    name: str
    listeners: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    timezone: str | None = None
    dialect: Dialect | None = None
    payload: Payload | None = None
    sd_fields: bool | None = None
    future_tolerance_hours: float | None = None
    uncertain_year_days: float | None = None

    def over(self, base: ParseSettings) -> ParseSettings:
        """``base`` with this profile's settings in place of the ones it gives."""
        given = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(ParseSettings)
            if getattr(self, field.name) is not None
        }
        return dataclasses.replace(base, **given)

    def reads_listener(self, listener: str | None) -> bool:
        """Whether frames of ``listener`` (None: a listener since removed) may take this profile."""
        return not self.listeners or (listener is not None and listener in self.listeners)

    @property
    def names_senders(self) -> bool:
        return bool(self.networks or self.hostnames)
