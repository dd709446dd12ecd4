"""Peer addresses as records should show them."""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress

__all__ = ["normalize_ip", "peer_of"]


def normalize_ip(host: str) -> str:
    """An IPv4 address for IPv4 peers seen on a dual-stack socket (``::ffff:a.b.c.d``)."""
    if host.startswith("::ffff:") and "." in host:
        try:
            mapped = ipaddress.IPv6Address(host.split("%", 1)[0]).ipv4_mapped
        except ValueError:
            return host
        if mapped is not None:
            return str(mapped)
    return host


def peer_of(addr: IAddress | tuple[str, int]) -> tuple[str, int]:
    """(ip, port) of a Twisted address or a UDP ``(host, port, ...)`` tuple."""
    if isinstance(addr, IPv4Address | IPv6Address):
        return normalize_ip(addr.host), addr.port
    if isinstance(addr, tuple):
        return normalize_ip(str(addr[0])), int(addr[1])
    return str(addr), 0
