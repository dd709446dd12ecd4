"""The upstream connection pools (receiver/deliver/sinks/connections.py): proxies from the environment."""

from __future__ import annotations

import base64

import pytest
import urllib3

from receiver.deliver.sinks.connections import connection_pool

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_without_a_proxy_the_pool_connects_directly() -> None:
    """If no proxy is set, then requests go straight to the host."""
    assert not isinstance(connection_pool("https", "cn-hangzhou.log.aliyuncs.com", concurrency=4), urllib3.ProxyManager)


def test_a_proxy_for_the_scheme_or_for_all_carries_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """If HTTPS_PROXY (or, lacking it, ALL_PROXY) names a proxy, then requests over https go through it."""
    monkeypatch.setenv("ALL_PROXY", "http://all.example:3128")
    pool = connection_pool("https", "cn-hangzhou.log.aliyuncs.com", concurrency=4)
    assert isinstance(pool, urllib3.ProxyManager) and pool.proxy is not None and pool.proxy.host == "all.example"
    monkeypatch.setenv("HTTPS_PROXY", "http://tls.example:3128")
    pool = connection_pool("https", "cn-hangzhou.log.aliyuncs.com", concurrency=4)
    assert isinstance(pool, urllib3.ProxyManager) and pool.proxy is not None and pool.proxy.host == "tls.example"


def test_no_proxy_exempts_a_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """If NO_PROXY names the host's domain, then requests to it go straight there."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", ".aliyuncs.com")
    assert not isinstance(connection_pool("https", "cn-hangzhou.log.aliyuncs.com", concurrency=4), urllib3.ProxyManager)


def test_no_proxy_exempts_an_address_in_a_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """If NO_PROXY names a network (as requests honoured), then an upstream at an address inside it is
    reached directly, and one outside it through the proxy."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost, 10.0.0.0/8,fd00::/8")
    assert not isinstance(connection_pool("http", "10.1.2.3", concurrency=1), urllib3.ProxyManager)
    assert not isinstance(connection_pool("http", "[fd00::7]", concurrency=1), urllib3.ProxyManager)
    assert isinstance(connection_pool("http", "192.0.2.7", concurrency=1), urllib3.ProxyManager)
    assert isinstance(connection_pool("http", "clickhouse.example", concurrency=1), urllib3.ProxyManager)


def test_a_proxys_credentials_are_sent_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the proxy's URL holds a user and password (percent-encoded), then each request to the proxy
    carries them as Proxy-Authorization, decoded."""
    monkeypatch.setenv("HTTPS_PROXY", "http://ops:p%40ss@proxy.example:3128")
    pool = connection_pool("https", "cn-hangzhou.log.aliyuncs.com", concurrency=4)
    assert isinstance(pool, urllib3.ProxyManager)
    assert pool.proxy_headers["proxy-authorization"] == "Basic " + base64.b64encode(b"ops:p@ss").decode()
