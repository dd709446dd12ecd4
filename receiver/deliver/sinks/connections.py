"""Connections to an upstream over HTTP(S): one pool per sink, kept alive, at most ``concurrency`` open.

urllib3 directly, not requests on top of it: a request costs the sending
thread about a third of the CPU (336 against 987 us for a 30 kB POST
answered at once on loopback), and the sending thread is what bounds a sink
that sends many small requests, such as SLS with one LogGroup per sender.
What requests did besides that is kept: proxies from the environment
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), certificates checked
against the system's trust store, no redirects followed (a signature or a
token must not travel to another host), no retries of its own (the sink's
worker retries, with backoff, from the spool).
"""

from __future__ import annotations

import urllib.request

import urllib3

__all__ = ["UpstreamError", "connection_pool", "timeout_of"]

UpstreamError = urllib3.exceptions.HTTPError
"""What a request that got no answer raises: refused, reset, timed out, TLS failed (never an HTTP status)."""


def connection_pool(scheme: str, host: str, *, concurrency: int) -> urllib3.PoolManager:
    """A pool for requests to ``host`` over ``scheme``: through the environment's proxy for it, if any."""
    proxy = urllib.request.getproxies().get(scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        return urllib3.ProxyManager(proxy, num_pools=1, maxsize=max(1, concurrency))
    return urllib3.PoolManager(num_pools=1, maxsize=max(1, concurrency))


def timeout_of(seconds: float) -> urllib3.Timeout:
    """``seconds`` to connect, and again between bytes of the answer (as requests took one number)."""
    return urllib3.Timeout(connect=seconds, read=seconds)
