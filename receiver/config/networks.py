"""Sets of IP networks that sender addresses are checked against (listener allowlists, machine groups)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["SourceNetworks"]

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SourceNetworks:
    """A set of networks (``10.0.0.0/8``, ``192.168.1.7``, ``2001:db8::/32``) that addresses are checked against.

    IPv4 peers on a dual-stack socket (``::ffff:10.1.2.3``) are checked as
    IPv4. Answers are cached per address.
    """

    def __init__(self, networks: Sequence[str]) -> None:
        self.networks: tuple[_IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self.contains = lru_cache(maxsize=65536)(self._contains)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def _contains(self, address: str) -> bool:
        """Whether ``address`` (an IP address as text) is in one of the networks; False for a non-address."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)
