"""Connections to an upstream over HTTP(S): one pool per sink, kept alive, at most ``concurrency`` open.

urllib3 directly, not requests on top of it: a request costs the sending
thread about a third of the CPU (336 against 987 us for a 30 kB POST
answered at once on loopback), and the sending thread is what bounds a sink
that sends many small requests, such as SLS with one LogGroup per sender.
What requests did besides that is kept: proxies from the environment
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, and ``NO_PROXY`` with its
domains and its networks such as ``10.0.0.0/8``; the proxy's own user and
password if its URL has them), no redirects followed (a
signature or a token must not travel to another host), no retries of its own
(the sink's worker retries, with backoff, from the spool). Certificates are
checked against the system's trust store (``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` point elsewhere), not against a bundle of requests' own.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
import urllib.request

import urllib3

from receiver.deliver.outcomes import first_line

__all__ = ["UpstreamError", "connection_pool", "no_answer", "timeout_of"]

UpstreamError = urllib3.exceptions.HTTPError
"""What a request that got no answer raises: refused, reset, timed out, TLS failed (never an HTTP status)."""


def connection_pool(scheme: str, host: str, *, concurrency: int) -> urllib3.PoolManager:
    """A pool for requests to ``host`` over ``scheme``: through the environment's proxy for it, if any."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host) and not _in_no_proxy_network(host, proxies.get("no", "")):
        auth = urllib3.util.parse_url(proxy).auth  # urllib3 sends a proxy's credentials only when told
        headers = urllib3.make_headers(proxy_basic_auth=urllib.parse.unquote(auth)) if auth else None
        return urllib3.ProxyManager(proxy, num_pools=1, maxsize=max(1, concurrency), proxy_headers=headers)
    return urllib3.PoolManager(num_pools=1, maxsize=max(1, concurrency))


def _in_no_proxy_network(host: str, no_proxy: str) -> bool:
    """Whether ``host`` is an address inside a network ``NO_PROXY`` names (``10.0.0.0/8``), which the
    standard library's check (names and domains only) leaves out."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    for entry in no_proxy.split(","):
        try:
            if "/" in entry and address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:  # not a network: the standard library's check reads it
            continue
    return False


_NAMES_REQUESTS_GAVE: tuple[tuple[type[UpstreamError], str], ...] = (
    (urllib3.exceptions.ReadTimeoutError, "ReadTimeout"),
    (urllib3.exceptions.NewConnectionError, "ConnectionError"),  # first: it is a ConnectTimeoutError
    (urllib3.exceptions.ConnectTimeoutError, "ConnectTimeout"),
    (urllib3.exceptions.SSLError, "SSLError"),
    (urllib3.exceptions.ProxyError, "ProxyError"),
)


def no_answer(error: UpstreamError, limit: int = 300) -> str:
    """Why a request got no answer, in one line for a sink's reason: ``ConnectionError: ...``.

    Named as requests named them (the sinks' reasons while they used requests, which operators'
    alerts may know): a timeout waiting for the answer is ``ReadTimeout``, for the connection
    ``ConnectTimeout``, TLS and proxy failures ``SSLError`` and ``ProxyError``, anything else
    (refused, reset, closed) ``ConnectionError``. After the name, urllib3's text (host and port,
    the cause; a URL's query is the caller's to take out), at most ``limit`` characters.
    """
    name = next((name for kind, name in _NAMES_REQUESTS_GAVE if isinstance(error, kind)), "ConnectionError")
    return f"{name}: {first_line(error, limit)}"


def timeout_of(seconds: float) -> urllib3.Timeout:
    """``seconds`` to connect, and again between bytes of the answer (as requests took one number)."""
    return urllib3.Timeout(connect=seconds, read=seconds)
