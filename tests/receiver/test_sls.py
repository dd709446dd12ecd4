"""SLS PutLogs: signatures and bodies against the official SDK, the test server, errors, credentials, the sink.

The SDK (``aliyun.log``, a test dependency) is the oracle for what the real
service accepts: our signatures must equal its signatures for the same
request at the same time, and our bodies must decode with its protobuf
classes and its decompressor. The in-test server (written from sls.md) then
checks the whole request, and the sink runs against it end to end. Network:
127.0.0.1 only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import http.server
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import urllib3
from aliyun.log.auth import AuthV1, AuthV4
from aliyun.log.compress import Compressor, CompressType
from aliyun.log.credentials import StaticCredentialsProvider
from aliyun.log.log_logs_pb2 import LogGroup  # type: ignore[attr-defined]  # generated
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.record import Record
from formats.sls_pb import encode_log_group
from receiver.config.model import SlsSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.sinks.sls.auth import (
    Credentials,
    CredentialsError,
    credentials_from_env,
    credentials_from_file,
    sign_v1,
    sign_v4,
    v1_string_to_sign,
)
from receiver.deliver.sinks.sls.errors import MAX_RETRY_AFTER_SECONDS, classify
from receiver.deliver.sinks.sls.request import (
    PreparedRequest,
    SlsEndpoint,
    SlsRequestError,
    build_put_logs,
    check_put_logs_options,
    hash_key_of,
    http_date,
    pack_log_group,
    unpack_log_group,
)
from receiver.deliver.sinks.sls.sink import SlsSink
from tests.support.sls_server import SlsTestServer

NOW = _dt.datetime(2022, 1, 3, 4, 5, 6, tzinfo=_dt.UTC)
T0 = int(NOW.timestamp())
SECRET = "s3cr3t-Value-never-logged"
TOKEN = "STS-t0ken/never+logged="


def rec(fields: list[tuple[str, str]], time: int = T0, time_ns: int = 0) -> Record:
    return Record(time, time_ns, tuple(k for k, _ in fields), [v for _, v in fields], "10.0.0.1", {})


RECORDS = [
    rec([("_content_", "hello"), ("app-name", "todo-list")], time_ns=123),
    rec([("_content_", "中文 ünïcode"), ("pri-text", "user.info")], time=T0 + 1),
    rec([("_content_", "x" * 5000)]),
]
TAGS = [("__client_ip__", "10.0.0.9"), ("__pack_id__", "ABCDEF0123456789-1")]


def body_of(records: list[Record] = RECORDS) -> bytes:
    return encode_log_group(records, topic="syslog", source="10.0.0.9", tags=TAGS)


def prepare(
    *,
    endpoint: str = "cn-hangzhou.log.aliyuncs.com",
    credentials: Credentials | None = None,
    signature: str = "v1",
    compress: str | None = "lz4",
    hash_key: str | None = None,
    region: str | None = "cn-hangzhou",
    now: _dt.datetime = NOW,
    body: bytes | None = None,
    project: str = "proj",
    logstore: str = "store",
) -> PreparedRequest:
    return build_put_logs(
        SlsEndpoint.parse(endpoint), project, logstore, body_of() if body is None else body,
        credentials or Credentials("AKID", SECRET),
        now=now, compress=compress, signature=signature, region=region,  # type: ignore[arg-type]
        hash_key=hash_key, clock_offset_seconds=0.0,
    )


def path_and_params(request: PreparedRequest) -> tuple[str, dict[str, str]]:
    url = urlsplit(request.url)
    params = dict(p.split("=", 1) for p in url.query.split("&")) if url.query else {}
    return url.path, params


# (a) Signatures equal the SDK's.


class TestSignaturesAgainstSdk:
    """Our Authorization values are the official SDK's for the same request at the same time."""

    @pytest.mark.parametrize("token", [None, TOKEN])
    @pytest.mark.parametrize("hash_key", [None, "10.0.0.9"])
    @pytest.mark.parametrize("compress", ["lz4", None])
    def test_v1(self, monkeypatch: pytest.MonkeyPatch, token: str | None, hash_key: str | None, compress: str | None) -> None:
        """If the SDK's AuthV1 signs our request's headers at our Date, then its Authorization is ours."""
        ours = prepare(credentials=Credentials("AKID", SECRET, token), hash_key=hash_key, compress=compress)
        monkeypatch.setattr(AuthV1, "_getGMT", staticmethod(lambda: ours.headers["Date"]))
        # What the SDK's client sets before signing; the signer adds the rest.
        signed_by_sdk = {"Date", "Content-MD5", "x-log-signaturemethod", "x-acs-security-token", "Authorization"}
        headers = {k: v for k, v in ours.headers.items() if k not in signed_by_sdk}
        path, params = path_and_params(ours)
        AuthV1(StaticCredentialsProvider("AKID", SECRET, token or "")).sign_request("POST", path, params, headers, ours.body)
        assert headers["Authorization"] == ours.headers["Authorization"]
        assert headers["Content-MD5"] == ours.headers["Content-MD5"]
        assert headers.get("x-acs-security-token") == ours.headers.get("x-acs-security-token") == token

    @pytest.mark.parametrize("token", [None, TOKEN])
    @pytest.mark.parametrize("hash_key", [None, "10.0.0.9"])
    @pytest.mark.parametrize("region", ["cn-hangzhou", "ap-southeast-1"])
    def test_v4(self, token: str | None, hash_key: str | None, region: str) -> None:
        """If the SDK's AuthV4 signs our request at our x-log-date, then its Authorization is ours."""
        ours = prepare(credentials=Credentials("AKID", SECRET, token), hash_key=hash_key, signature="v4", region=region)
        signed_by_sdk = {"x-log-date", "x-log-content-sha256", "x-acs-security-token", "Authorization"}
        headers = {k: v for k, v in ours.headers.items() if k not in signed_by_sdk}
        path, params = path_and_params(ours)
        auth = AuthV4(StaticCredentialsProvider("AKID", SECRET, token or ""), region)
        sdk = auth._do_sign_request("POST", path, params, headers, ours.body, ours.headers["x-log-date"])
        assert sdk == ours.headers["Authorization"]
        assert headers["x-log-content-sha256"] == ours.headers["x-log-content-sha256"]
        assert "Date" not in ours.headers and "Content-MD5" not in ours.headers

    def test_v1_vectors_of_sls_md(self) -> None:
        """If we sign sls.md's two v1 vectors, then we get its signatures (and its string to sign)."""
        go = {
            "x-log-apiversion": "0.6.0", "x-log-bodyrawsize": "0", "x-log-signaturemethod": "hmac-sha1",
            "Date": "Mon, 3 Jan 2010 08:33:47 GMT",
        }
        assert sign_v1(Credentials("id", "mockAccessKeySecret"), "GET", "/logstores", {}, go) == "LOG id:Rwm6cTKzoti4HWoe+GKcb6Kv07E="
        put = {
            "Content-MD5": "8025D9CB72D19436DFF4BFA29AB4C4C9", "Content-Type": "application/x-protobuf",
            "Date": "Mon, 03 Jan 2022 04:05:06 GMT", "x-acs-security-token": "STS", "x-log-apiversion": "0.6.0",
            "x-log-bodyrawsize": "67", "x-log-compresstype": "lz4", "x-log-signaturemethod": "hmac-sha1",
            "Host": "proj.cn-hangzhou.log.aliyuncs.com", "x-log-meta-user": "not signed",
        }
        assert v1_string_to_sign("POST", "/logstores/store/shards/lb", {}, put) == (
            "POST\n8025D9CB72D19436DFF4BFA29AB4C4C9\napplication/x-protobuf\nMon, 03 Jan 2022 04:05:06 GMT\n"
            "x-acs-security-token:STS\nx-log-apiversion:0.6.0\nx-log-bodyrawsize:67\nx-log-compresstype:lz4\n"
            "x-log-signaturemethod:hmac-sha1\n/logstores/store/shards/lb"
        )
        assert sign_v1(Credentials("AKID", "SECRET", "STS"), "POST", "/logstores/store/shards/lb", {}, put) == (
            "LOG AKID:7VmAPx3M8iZaHOJs0lFU0hLRQNI="
        )

    @pytest.mark.parametrize(
        ("path", "extra_params", "body", "region", "expected"),
        [
            ("/logstores", True, b"adasd= -asd zcas", "cn-hangzhou", "a98f5632e93836e63839cd836a54055f480020a9364ca944e2d34f2eb9bf1bed"),
            ("/logstores", None, b"adasd= -asd zcas", "cn-shanghai", "8a10a5e723cb2e75964816de660b2c16a58af8bc0261f7f0722d832468c76ce8"),
            ("/logstores", True, b"", "cn-hangzhou", "5a66d8f8051983e0e9d08e0f960ef9252ef971eead5bb5c7acec8617a2eb2701"),
            ("/logstores/hello/a+*~bb/cc", False, b"adasd= -asd zcas", "cn-hangzhou", "2c204068e961a8813a6bcf7ac422f7fa6e9bf9a5da493e0165dfe100854d18ff"),
        ],
    )
    def test_v4_vectors_of_the_sdk(self, path: str, extra_params: bool | None, body: bytes, region: str, expected: str) -> None:
        """If we sign the SDK's own v4 test vectors (its tests/unit/test_auth.py), then we get its signatures.

        They cover odd header names, unsigned headers, empty and spaced query
        keys and values that need encoding.
        """
        headers = {"hello": "world", "hello-Text": "a12X- ", " Ko ": "", "x-log-test": "het123", "x-acs-ppp": "dds"}
        params = {" abc": "efg", " agc ": "", "": "efg", "A-bc": "eFg"}
        if extra_params is None:
            headers, params = {}, {}
        elif not extra_params:
            params |= {"abs-ij*asd/vc": "a~js+d ada", "a abAas123/vc": "a~jdad a2ADFs+d ada"}
        headers |= {"x-log-content-sha256": hashlib.sha256(body).hexdigest(), "x-log-date": "20220808T032330Z"}
        signed = sign_v4(Credentials("acsddda21dsd", "zxasdasdasw2"), "POST", path, params, headers, region=region)
        assert signed == (
            f"SLS4-HMAC-SHA256 Credential=acsddda21dsd/20220808/{region}/sls/aliyun_v4_request,Signature={expected}"
        )


# (b) Bodies decode with the SDK's classes.


class TestBodiesAgainstSdk:
    """What we send decompresses with the SDK's decompressor and parses with its LogGroup class."""

    @pytest.mark.parametrize("compress", ["lz4", None])
    def test_body_decodes(self, compress: str | None) -> None:
        """If the SDK decompresses and parses our body, then it reads our records, source, topic and tags."""
        request = prepare(compress=compress)
        raw_size = int(request.headers["x-log-bodyrawsize"])
        kind = CompressType.LZ4 if compress == "lz4" else CompressType.UNCOMPRESSED
        raw = Compressor.decompress(request.body, raw_size, kind)
        assert raw == body_of() and len(raw) == raw_size == request.raw_size
        group = LogGroup()
        group.ParseFromString(raw)
        assert (group.Topic, group.Source) == ("syslog", "10.0.0.9")
        assert [(t.Key, t.Value) for t in group.LogTags] == TAGS
        assert [log.Time for log in group.Logs] == [r.time for r in RECORDS]
        assert group.Logs[0].Time_ns == 123
        for log, record in zip(group.Logs, RECORDS, strict=True):
            assert [(c.Key, c.Value) for c in log.Contents] == list(zip(record.keys, record.values, strict=True))

    def test_lz4_is_the_sdks_raw_block(self) -> None:
        """If the SDK compresses the same body, then its bytes are ours (a raw lz4 block, no size prefix)."""
        request = prepare()
        assert request.headers["x-log-compresstype"] == "lz4"
        assert request.body == Compressor.compress(body_of(), CompressType.LZ4)

    def test_headers_per_sls_md(self) -> None:
        """If we build a v1 request, then it carries sls.md's headers with its values."""
        request = prepare(credentials=Credentials("AKID", SECRET, TOKEN))
        h = request.headers
        assert request.url == "https://proj.cn-hangzhou.log.aliyuncs.com/logstores/store/shards/lb"
        assert h["Host"] == "proj.cn-hangzhou.log.aliyuncs.com"
        assert h["Content-Type"] == "application/x-protobuf"
        assert h["Content-Length"] == str(len(request.body))
        assert h["x-log-apiversion"] == "0.6.0"
        assert h["x-log-signaturemethod"] == "hmac-sha1"
        assert h["Date"] == "Mon, 03 Jan 2022 04:05:06 GMT"
        assert h["Content-MD5"] == hashlib.md5(request.body).hexdigest().upper()
        assert h["x-acs-security-token"] == TOKEN
        assert h["Authorization"].startswith("LOG AKID:")


# Endpoints and request building.


class TestEndpoint:
    """Endpoint forms, and where the project goes."""

    @pytest.mark.parametrize(
        ("text", "url", "host"),
        [
            ("cn-hangzhou.log.aliyuncs.com", "https://proj.cn-hangzhou.log.aliyuncs.com/p", "proj.cn-hangzhou.log.aliyuncs.com"),
            (" https://cn-hangzhou.log.aliyuncs.com/ ", "https://proj.cn-hangzhou.log.aliyuncs.com/p", "proj.cn-hangzhou.log.aliyuncs.com"),
            ("HTTP://CN-Hangzhou-Intranet.log.aliyuncs.com:8080", "http://proj.cn-hangzhou-intranet.log.aliyuncs.com:8080/p", "proj.cn-hangzhou-intranet.log.aliyuncs.com"),
            ("http://127.0.0.1:18080", "http://127.0.0.1:18080/p", "proj.127.0.0.1"),
            ("10.1.2.3", "https://10.1.2.3/p", "proj.10.1.2.3"),
        ],
    )
    def test_forms(self, text: str, url: str, host: str) -> None:
        """If the endpoint is a host name, then the project leads the URL's host; if an IP, only Host names it."""
        endpoint = SlsEndpoint.parse(text)
        assert endpoint.url("proj", "/p") == url
        assert endpoint.host_header("proj") == host

    @pytest.mark.parametrize(
        "text",
        ["", "ftp://x.com", "https://user:pw@x.com", "https://x.com/path", "https://x.com/?q=1", "http://[::1]:80", "http://x.com:99999", "bad host.com"],
    )
    def test_refused(self, text: str) -> None:
        """If the endpoint has anything but scheme, host and port, then parsing says so."""
        with pytest.raises(SlsRequestError):
            SlsEndpoint.parse(text)

    def test_user_info_not_echoed(self) -> None:
        """If someone puts a secret in the endpoint URL, then the error does not repeat it."""
        with pytest.raises(SlsRequestError) as info:
            SlsEndpoint.parse(f"https://AKID:{SECRET}@x.com")
        assert SECRET not in str(info.value)


class TestBuild:
    """build_put_logs options."""

    def test_route_by_hash_key(self) -> None:
        """If a hash key is given, then the request goes to /shards/route?key=<md5 hex of it>."""
        request = prepare(hash_key="10.0.0.9")
        key = hashlib.md5(b"10.0.0.9").hexdigest()
        assert hash_key_of("10.0.0.9") == key
        assert request.url.endswith(f"/logstores/store/shards/route?key={key}")

    def test_clock_offset(self) -> None:
        """If a clock offset is given, then Date (v1) and x-log-date (v4) are moved by it."""
        endpoint = SlsEndpoint.parse("cn-hangzhou.log.aliyuncs.com")
        creds = Credentials("AKID", SECRET)
        v1 = build_put_logs(endpoint, "p1", "s1", b"x", creds, now=NOW, compress=None, signature="v1", region=None, hash_key=None, clock_offset_seconds=-3600.4)
        v4 = build_put_logs(endpoint, "p1", "s1", b"x", creds, now=NOW, compress=None, signature="v4", region="r", hash_key=None, clock_offset_seconds=86400)
        assert v1.headers["Date"] == http_date(NOW - _dt.timedelta(seconds=3600.4)) == "Mon, 03 Jan 2022 03:05:05 GMT"
        assert v4.headers["x-log-date"] == "20220104T040506Z"
        assert v4.headers["Authorization"].split("Credential=")[1].startswith("AKID/20220104/r/sls/")
        assert "x-log-compresstype" not in v1.headers and v1.body == b"x"

    def test_http_date_ignores_locale_and_zone(self) -> None:
        """If 'now' is in another time zone, then Date is still GMT in English."""
        eastern = NOW.astimezone(_dt.timezone(_dt.timedelta(hours=8)))
        assert http_date(eastern) == "Mon, 03 Jan 2022 04:05:06 GMT"

    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"signature": "v4", "region": None}, "region"),
            ({"compress": "gzip"}, "compress"),
            ({"signature": "v2"}, "signature"),
            ({"project": "a/b"}, "project"),
            ({"logstore": "../x"}, "logstore"),
            ({"logstore": "s?key=1"}, "logstore"),
        ],
    )
    def test_bad_settings(self, kwargs: dict[str, Any], fragment: str) -> None:
        """If a setting cannot make a valid request, then SlsRequestError names it."""
        with pytest.raises(SlsRequestError, match=fragment):
            prepare(**kwargs)

    def test_naive_now_refused(self) -> None:
        """If 'now' has no time zone, then building refuses rather than guess."""
        with pytest.raises(ValueError, match="timezone"):
            prepare(now=NOW.replace(tzinfo=None))

    def test_zstd_works_on_a_fresh_install(self) -> None:
        """If zstd is asked for, then the options are accepted and zstd bodies build: the module it needs
        is a dependency of the package, not something the operator must find."""
        check_put_logs_options(compress="zstd", signature="v1", region=None)
        assert prepare(compress="zstd").headers["x-log-compresstype"] == "zstd"

    @pytest.mark.parametrize("compress", ["lz4", "zstd", None])
    @pytest.mark.parametrize("signature", ["v1", "v4"])
    def test_a_packed_log_group_makes_the_same_request(self, compress: str | None, signature: str) -> None:
        """If a worker packs the LogGroup (compressed where it is built), then the request is the one
        the LogGroup itself makes: same URL, headers (sizes, digest, signature) and body; and the
        LogGroup unpacks whole (to be merged)."""
        packed = pack_log_group(body_of(), compress)  # type: ignore[arg-type]
        assert unpack_log_group(packed, compress) == body_of()  # type: ignore[arg-type]
        plain = prepare(compress=compress, signature=signature)
        from_packed = build_put_logs(
            SlsEndpoint.parse("cn-hangzhou.log.aliyuncs.com"), "proj", "store", packed, Credentials("AKID", SECRET),
            now=NOW, compress=compress, signature=signature, region="cn-hangzhou",  # type: ignore[arg-type]
            packed=True,
        )
        assert (from_packed.url, from_packed.headers, from_packed.body, from_packed.raw_size) == (
            plain.url, plain.headers, plain.body, plain.raw_size
        )

    def test_zstd_without_a_module_says_what_to_do(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """If no zstd module is importable (a broken install), then the error says what to install."""
        monkeypatch.setattr("receiver.deliver.sinks.sls.request._zstd_compressor", lambda: None)
        with pytest.raises(SlsRequestError) as caught:
            check_put_logs_options(compress="zstd", signature="v1", region=None)
        assert "zstandard" in str(caught.value) and "lz4" in str(caught.value)

    def test_repr_hides_token_and_signature(self) -> None:
        """If a prepared request is logged, then neither the STS token nor the signature shows."""
        request = prepare(credentials=Credentials("AKID", SECRET, TOKEN))
        text = repr(request)
        assert TOKEN not in text and request.headers["Authorization"] not in text and SECRET not in text
        assert "x-acs-security-token" in text


# (c) The test server.


@pytest.fixture
def sls_server() -> Iterator[SlsTestServer]:
    with SlsTestServer() as server:
        yield server


def server_credentials(server: SlsTestServer) -> Credentials:
    return Credentials(server.access_key_id, server.access_key_secret, server.security_token)


def send(server: SlsTestServer, request: PreparedRequest) -> requests.Response:
    return requests.post(request.url, data=request.body, headers=request.headers, timeout=10)


def prepare_for(server: SlsTestServer, **kwargs: Any) -> PreparedRequest:
    kwargs.setdefault("credentials", server_credentials(server))
    kwargs.setdefault("region", server.region)
    return prepare(endpoint=server.endpoint, now=_dt.datetime.now(_dt.UTC), **kwargs)


class TestServer:
    """The in-test server accepts what SLS accepts and refuses what it refuses."""

    @pytest.mark.parametrize("signature", ["v1", "v4"])
    @pytest.mark.parametrize("hash_key", [None, "10.0.0.9"])
    @pytest.mark.parametrize("compress", ["lz4", "zstd", None])
    def test_accepts_ours(self, sls_server: SlsTestServer, signature: str, hash_key: str | None, compress: str | None) -> None:
        """If we send a valid request, then the server answers 200 and keeps the decoded group."""
        response = send(sls_server, prepare_for(sls_server, signature=signature, hash_key=hash_key, compress=compress))
        assert response.status_code == 200, response.text
        assert response.headers["x-log-requestid"]
        [got] = sls_server.groups
        assert (got.project, got.logstore, got.signature, got.compress) == ("proj", "store", signature, compress)
        assert got.route_key == (None if hash_key is None else hashlib.md5(hash_key.encode()).hexdigest())
        assert [log.contents for log in got.group.logs] == [list(zip(r.keys, r.values, strict=True)) for r in RECORDS]
        assert [log.time for log in got.group.logs] == [r.time for r in RECORDS]
        assert got.group.tags == TAGS and got.group.source == "10.0.0.9" and got.group.topic == "syslog"
        assert sls_server.request_count == 1 and sls_server.refusals == []

    def test_accepts_sts(self) -> None:
        """If the server wants an STS token, then it accepts ours and refuses a request without it."""
        with SlsTestServer(security_token=TOKEN) as server:
            assert send(server, prepare_for(server)).status_code == 200
            response = send(server, prepare_for(server, credentials=Credentials(server.access_key_id, server.access_key_secret)))
            assert (response.status_code, response.json()["errorCode"]) == (401, "SecurityTokenExpired")

    @pytest.mark.parametrize("signature", ["v1", "v4"])
    def test_accepts_the_sdks(self, sls_server: SlsTestServer, signature: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the SDK signs a request, then the server accepts it: the server reads sls.md as the SDK does."""
        body = Compressor.compress(body_of(), CompressType.LZ4)
        headers = {
            "Host": f"proj.{sls_server.host}", "Content-Type": "application/x-protobuf", "x-log-apiversion": "0.6.0",
            "x-log-bodyrawsize": str(len(body_of())), "x-log-compresstype": "lz4",
        }
        provider = StaticCredentialsProvider(sls_server.access_key_id, sls_server.access_key_secret, "")
        if signature == "v1":
            AuthV1(provider).sign_request("POST", "/logstores/store/shards/lb", {}, headers, body)
        else:
            AuthV4(provider, sls_server.region).sign_request("POST", "/logstores/store/shards/lb", {}, headers, body)
        response = requests.post(f"{sls_server.endpoint}/logstores/store/shards/lb", data=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        assert len(sls_server.groups) == 1

    @pytest.mark.parametrize("signature", ["v1", "v4"])
    def test_refuses_tampered_body(self, sls_server: SlsTestServer, signature: str) -> None:
        """If the body changes after signing, then the server refuses it and keeps nothing."""
        request = prepare_for(sls_server, signature=signature, compress=None)
        tampered = bytearray(request.body)
        tampered[-1] ^= 1
        response = requests.post(request.url, data=bytes(tampered), headers=request.headers, timeout=10)
        assert (response.status_code, response.json()["errorCode"]) == (400, "PostBodyInvalid")
        assert sls_server.groups == []

    @pytest.mark.parametrize("signature", ["v1", "v4"])
    def test_refuses_wrong_secret(self, sls_server: SlsTestServer, signature: str) -> None:
        """If the secret is wrong, then the signature does not match."""
        response = send(sls_server, prepare_for(sls_server, signature=signature, credentials=Credentials(sls_server.access_key_id, "wrong")))
        assert (response.status_code, response.json()["errorCode"]) == (401, "SignatureNotMatch")

    @pytest.mark.parametrize("signature", ["v1", "v4"])
    def test_refuses_unknown_key_id(self, sls_server: SlsTestServer, signature: str) -> None:
        """If the AccessKey ID is unknown, then the server says so."""
        response = send(sls_server, prepare_for(sls_server, signature=signature, credentials=Credentials("other", "x")))
        assert (response.status_code, response.json()["errorCode"]) == (401, "InvalidAccessKeyId")

    def test_refuses_bad_content_md5(self, sls_server: SlsTestServer) -> None:
        """If Content-MD5 is wrong but signed, then the body check refuses; if not re-signed, the signature does."""
        request = prepare_for(sls_server)
        headers = dict(request.headers)
        headers["Content-MD5"] = "0" * 32
        unsigned = requests.post(request.url, data=request.body, headers=headers, timeout=10)
        assert (unsigned.status_code, unsigned.json()["errorCode"]) == (401, "SignatureNotMatch")
        path, params = path_and_params(request)
        headers["Authorization"] = sign_v1(server_credentials(sls_server), "POST", path, params, headers)
        signed = requests.post(request.url, data=request.body, headers=headers, timeout=10)
        assert (signed.status_code, signed.json()["errorCode"]) == (400, "PostBodyInvalid")
        assert sls_server.groups == []

    def test_refuses_wrong_raw_size(self, sls_server: SlsTestServer) -> None:
        """If x-log-bodyrawsize lies, then decompression is refused."""
        request = prepare_for(sls_server)
        headers = dict(request.headers)
        headers["x-log-bodyrawsize"] = str(request.raw_size + 1)
        path, params = path_and_params(request)
        headers["Authorization"] = sign_v1(server_credentials(sls_server), "POST", path, params, headers)
        response = requests.post(request.url, data=request.body, headers=headers, timeout=10)
        assert (response.status_code, response.json()["errorCode"]) == (400, "PostBodyUncompressError")

    def test_refuses_large_body(self) -> None:
        """If the raw body exceeds the limit, then the server answers PostBodyTooLarge."""
        with SlsTestServer(max_raw_bytes=1000) as server:
            response = send(server, prepare_for(server))
            assert (response.status_code, response.json()["errorCode"]) == (400, "PostBodyTooLarge")

    @pytest.mark.parametrize("signature", ["v1", "v4"])
    def test_refuses_skewed_time(self, sls_server: SlsTestServer, signature: str) -> None:
        """If the request time is 16 minutes off the server's, then RequestTimeExpired, with the server's Date."""
        sls_server.skew_seconds = 16 * 60
        response = send(sls_server, prepare_for(sls_server, signature=signature))
        assert (response.status_code, response.json()["errorCode"]) == (400, "RequestTimeExpired")
        outcome = classify(response.status_code, dict(response.headers), response.content)
        assert outcome.server_time is not None
        assert abs((outcome.server_time - _dt.datetime.now(_dt.UTC)).total_seconds() - 960) < 5

    def test_missing_project_and_logstore(self) -> None:
        """If the project or logstore does not exist, then 404 with SLS's code."""
        with SlsTestServer(projects={"proj"}, logstores={"store"}) as server:
            assert send(server, prepare_for(server, project="other")).json()["errorCode"] == "ProjectNotExist"
            assert send(server, prepare_for(server, logstore="other")).json()["errorCode"] == "LogStoreNotExist"
            assert send(server, prepare_for(server)).status_code == 200

    def test_injected_failures(self, sls_server: SlsTestServer) -> None:
        """If told to fail the next two requests, then it does, with Retry-After, and then accepts again."""
        sls_server.fail_next(2, 403, "WriteQuotaExceed", retry_after=7)
        answers = [send(sls_server, prepare_for(sls_server)) for _ in range(3)]
        assert [a.status_code for a in answers] == [403, 403, 200]
        assert answers[0].headers["Retry-After"] == "7" and answers[0].json()["errorCode"] == "WriteQuotaExceed"
        assert sls_server.request_count == 3 and len(sls_server.groups) == 1
        assert [r.injected for r in sls_server.refusals] == [True, True]

    def test_fail_all_until_cleared(self, sls_server: SlsTestServer) -> None:
        """If told to fail all, then every request fails until cleared."""
        sls_server.fail_all(500, "InternalServerError")
        assert [send(sls_server, prepare_for(sls_server)).status_code for _ in range(3)] == [500] * 3
        sls_server.clear_failures()
        assert send(sls_server, prepare_for(sls_server)).status_code == 200

    def test_records_duplicates(self, sls_server: SlsTestServer) -> None:
        """If the same request arrives twice, then both are recorded: the server dedupes nothing."""
        request = prepare_for(sls_server)
        assert [send(sls_server, request).status_code for _ in range(2)] == [200, 200]
        assert len(sls_server.groups) == 2


# (d) classify().


def sls_error(code: str, message: str = "m") -> bytes:
    return json.dumps({"errorCode": code, "errorMessage": message}).encode()


class TestClassify:
    """Every answer maps to one delivery outcome, per sls.md's error table."""

    @pytest.mark.parametrize(
        ("status", "code", "kind"),
        [
            (200, "", "ok"),
            (400, "PostBodyInvalid", "permanent"),
            (400, "InvalidTimestamp", "permanent"),
            (400, "InvalidEncoding", "permanent"),
            (400, "InvalidKey", "permanent"),
            (400, "PostBodyTooLarge", "permanent"),
            (400, "PostBodyUncompressError", "permanent"),
            (400, "InvalidRequestTime", "permanent"),
            (400, "InvalidHost", "permanent"),
            (400, "InvalidContentType", "permanent"),
            (400, "ParameterInvalid", "permanent"),
            (400, "InvalidParameter", "permanent"),
            (413, "", "permanent"),
            (400, "RequestTimeExpired", "clock-skew"),
            (401, "SignatureNotMatch", "auth"),
            (401, "Unauthorized", "auth"),
            (401, "InvalidAccessKeyId", "auth"),
            (401, "InvalidAccessKeyId.NotFound", "auth"),
            (401, "SecurityToken.Expired", "auth"),
            (400, "SecurityTokenExpired", "auth"),
            (401, "", "auth"),
            (403, "ProjectForbidden", "auth"),
            (403, "WriteQuotaExceed", "quota"),
            (403, "ShardWriteQuotaExceed", "quota"),
            (429, "", "quota"),
            (404, "LogStoreNotExist", "not-deliverable"),
            (404, "ProjectNotExist", "not-deliverable"),
            (404, "", "not-deliverable"),
            (500, "InternalServerError", "retry"),
            (503, "ServerBusy", "retry"),
            (502, "", "retry"),
            (408, "", "retry"),
            (400, "RequestTimeout", "retry"),
            (302, "", "not-deliverable"),
            (0, "", "retry"),
        ],
    )
    def test_table(self, status: int, code: str, kind: str) -> None:
        """If SLS answers this status and code, then the outcome has this kind and the code."""
        outcome = classify(status, {"x-log-requestid": "RID1"}, sls_error(code, "the message") if code else b"")
        assert outcome.kind == kind
        assert outcome.request_id == "RID1"
        if code and kind != "ok":
            assert (outcome.code, outcome.message) == (code, "the message")

    def test_retry_after_seconds(self) -> None:
        """If Retry-After is a number of seconds, then it is the retry delay."""
        assert classify(403, {"Retry-After": "7"}, sls_error("WriteQuotaExceed")).retry_after_seconds == 7.0
        assert classify(503, {"retry-after": " 1.5 "}, b"").retry_after_seconds == 1.5

    def test_retry_after_date_is_relative_to_server_date(self) -> None:
        """If Retry-After is a date, then the delay is measured from the server's own Date."""
        headers = {"Date": "Mon, 03 Jan 2022 04:05:06 GMT", "Retry-After": "Mon, 03 Jan 2022 04:05:36 GMT"}
        assert classify(503, headers, b"").retry_after_seconds == 30.0

    def test_retry_after_date_without_server_date(self) -> None:
        """If there is no Date, then a Retry-After date is measured from 'now'."""
        outcome = classify(503, {"Retry-After": "Mon, 03 Jan 2022 04:06:06 GMT"}, b"", now=NOW)
        assert outcome.retry_after_seconds == 60.0

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("-5", 0.0), ("1e12", MAX_RETRY_AFTER_SECONDS), ("nan", None), ("inf", None), ("soon", None), ("", None),
         ("Mon, 03 Jan 2000 00:00:00 GMT", 0.0)],
    )
    def test_retry_after_odd(self, value: str, expected: float | None) -> None:
        """If Retry-After is negative, huge, past or nonsense, then it is clamped or ignored, never raised."""
        assert classify(503, {"Retry-After": value}, b"", now=NOW).retry_after_seconds == expected

    def test_clock_skew_server_time(self) -> None:
        """If RequestTimeExpired, then server_time is the response's Date."""
        outcome = classify(400, {"Date": "Tue, 04 Jan 2022 05:06:07 GMT"}, sls_error("RequestTimeExpired"))
        assert outcome.kind == "clock-skew"
        assert outcome.server_time == _dt.datetime(2022, 1, 4, 5, 6, 7, tzinfo=_dt.UTC)

    def test_clock_skew_x_log_time(self) -> None:
        """If there is no usable Date, then server_time comes from x-log-time."""
        outcome = classify(400, {"Date": "garbage", "x-log-time": str(T0)}, sls_error("RequestTimeExpired"))
        assert outcome.server_time == NOW
        assert classify(400, {}, sls_error("RequestTimeExpired")).server_time is None

    def test_server_time_only_for_clock_skew(self) -> None:
        """If the error is not about time, then server_time is None (nobody should adjust clocks on it)."""
        assert classify(500, {"Date": "Tue, 04 Jan 2022 05:06:07 GMT"}, b"").server_time is None

    @pytest.mark.parametrize(
        "body",
        [
            b"\xff\xfe\x00garbage",
            b"<html><body>502 Bad Gateway</body></html>",
            b"[1, 2]",
            b"null",
            b'{"errorCode": 5, "errorMessage": ["x"]}',
            b'{"errorCode": "PostBodyInvalid"',
            b"[" * 100_000 + b"]" * 100_000,
            b"\x1b[31mred\r\nline two\x00",
            b"x" * 10_000_000,
        ],
    )
    def test_garbage_bodies(self, body: bytes) -> None:
        """If the body is not SLS JSON, then classify still answers, by status, with a short printable message."""
        outcome = classify(502, {}, body)
        assert outcome.kind == "retry"
        assert len(outcome.message) <= 300 and outcome.message.isprintable()

    def test_html_excerpt(self) -> None:
        """If a proxy answers HTML, then the message is an excerpt of it, on one line."""
        outcome = classify(400, {}, b"<html>\n<b>Bad request</b>\n</html>")
        assert (outcome.kind, outcome.code, outcome.message) == ("permanent", "", "<html> <b>Bad request</b> </html>")

    @settings(max_examples=300, deadline=None)
    @given(
        status=st.integers(min_value=-10, max_value=1000),
        headers=st.dictionaries(st.sampled_from(["Date", "Retry-After", "x-log-time", "x-log-requestid", "X"]), st.text(max_size=40)),
        body=st.binary(max_size=200) | st.builds(lambda c, m: json.dumps({"errorCode": c, "errorMessage": m}).encode(), st.text(max_size=30), st.text(max_size=30)),
    )
    def test_never_raises(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """If anything at all comes back, then classify returns an Outcome."""
        outcome = classify(status, headers, body)
        assert outcome.kind in {"ok", "retry", "quota", "auth", "clock-skew", "not-deliverable", "permanent"}


# (e) Credentials.


def write_credentials(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


class TestCredentials:
    """Credentials from the environment and from a private file; secrets never shown."""

    def test_repr_hides_secrets(self) -> None:
        """If credentials are printed, then only the AccessKey ID shows."""
        creds = Credentials("AKID", SECRET, TOKEN)
        for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
            assert "AKID" in text and SECRET not in text and TOKEN not in text
        assert "security_token=None" in repr(Credentials("AKID", SECRET))

    @pytest.mark.parametrize("bad", ["", "Zq9 Xw", "Zq9\nXw", "Zq9ünïXw"])
    def test_invalid_values(self, bad: str) -> None:
        """If a value is empty or not header-safe, then construction fails naming the field, not the value."""
        with pytest.raises(CredentialsError, match="access_key_secret") as info:
            Credentials("AKID", bad)
        assert not bad or "Zq9" not in str(info.value)

    def test_from_env(self) -> None:
        """If the ALIBABA_CLOUD_* variables are set, then they are the credentials; the token is optional."""
        env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "AKID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}
        assert credentials_from_env(env) == Credentials("AKID", SECRET)
        env["ALIBABA_CLOUD_SECURITY_TOKEN"] = TOKEN
        assert credentials_from_env(env) == Credentials("AKID", SECRET, TOKEN)
        env["ALIBABA_CLOUD_SECURITY_TOKEN"] = ""
        assert credentials_from_env(env).security_token is None

    def test_from_env_missing(self) -> None:
        """If a variable is missing or empty, then the error names it."""
        with pytest.raises(CredentialsError, match="ALIBABA_CLOUD_ACCESS_KEY_SECRET not set") as info:
            credentials_from_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "AKID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": " "})
        assert "ALIBABA_CLOUD_ACCESS_KEY_ID not set" not in str(info.value)
        with pytest.raises(CredentialsError, match="ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET not set"):
            credentials_from_env({"ALIYUN_ACCESS_KEY_ID": "x"})

    def test_from_env_default_is_os_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """If no mapping is passed, then the process environment is read."""
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKID")
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
        monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
        assert credentials_from_env() == Credentials("AKID", SECRET)

    def test_from_file(self, tmp_path: Path) -> None:
        """If the file is private and well formed, then it gives the credentials (comments, quotes, env names)."""
        path = write_credentials(
            tmp_path / "keys",
            f"# SLS writer\n\naccess_key_id = AKID\naccess_key_secret = '{SECRET}'\nsecurity_token=\"{TOKEN}\"\n",
        )
        assert credentials_from_file(path) == Credentials("AKID", SECRET, TOKEN)
        env_style = write_credentials(
            tmp_path / "env", f"ALIBABA_CLOUD_ACCESS_KEY_ID=AKID\r\nexport ALIBABA_CLOUD_ACCESS_KEY_SECRET={SECRET}\r\n"
        )
        assert credentials_from_file(str(env_style)) == Credentials("AKID", SECRET)

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
    def test_refuses_shared_file(self, tmp_path: Path, mode: int) -> None:
        """If group or others may access the file, then it is refused with the chmod to run."""
        path = write_credentials(tmp_path / "keys", f"access_key_id=AKID\naccess_key_secret={SECRET}\n", mode)
        with pytest.raises(CredentialsError) as info:
            credentials_from_file(path)
        assert f"chmod 600 {path}" in str(info.value)
        assert f"{mode:04o}" in str(info.value) and SECRET not in str(info.value)

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            (f"access_key_id=AKID\n{SECRET}\n", "line 2: expected key = value"),
            # An STS token pasted on a line of its own: base64 padding makes it look like "key=value".
            (f"access_key_id=AKID\naccess_key_secret={SECRET}\n{TOKEN}Zm9v==\n", "line 3: not a known key"),
            (f"access_key_id=AKID\naccess_key_secrt={SECRET}\n", "unknown key 'access_key_secrt'"),
            (f"access_key_id=AKID\naccess_key_secret={SECRET}\naccess_key_secret={SECRET}\n", "given twice"),
            ("access_key_id=AKID\n", "access_key_secret missing"),
            (f"access_key_id=AKID\naccess_key_secret={SECRET} tail\n", "access_key_secret has spaces"),
            (f"access_key_id=AKID\naccess_key_secret={SECRET}\nsecurity_token={TOKEN}\x07\n", "security_token has"),
        ],
    )
    def test_malformed_file(self, tmp_path: Path, text: str, fragment: str) -> None:
        """If the file is malformed, then the error says where and what, never the value."""
        path = write_credentials(tmp_path / "keys", text)
        with pytest.raises(CredentialsError, match=fragment) as info:
            credentials_from_file(path)
        assert SECRET not in str(info.value) and TOKEN.rstrip("=") not in str(info.value)
        assert str(path) in str(info.value)

    def test_missing_and_odd_files(self, tmp_path: Path) -> None:
        """If the file is missing, a directory, a FIFO or not UTF-8, then the error says so."""
        with pytest.raises(CredentialsError, match="does not exist"):
            credentials_from_file(tmp_path / "nope")
        private_dir = tmp_path / "dir"
        private_dir.mkdir(mode=0o700)
        with pytest.raises(CredentialsError, match="not a regular file"):
            credentials_from_file(private_dir)
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo, 0o600)
        with pytest.raises(CredentialsError, match="not a regular file"):
            credentials_from_file(fifo)  # and does not hang waiting for a writer
        binary = tmp_path / "bin"
        binary.write_bytes(b"access_key_id=\xff\xfe\n")
        binary.chmod(0o600)
        with pytest.raises(CredentialsError, match="not UTF-8"):
            credentials_from_file(binary)


# (f) The sink, end to end.


def sink_group(destination: str = "store", client_ip: str = "10.0.0.9") -> Group:
    records = [
        rec([("_content_", f"message {i}"), ("app-name", "todo-list"), ("_severity_", "6")], time_ns=i * 1000)
        for i in range(5)
    ]
    return Group(
        destination, "10.0.0.9", client_ip, records,
        [("__client_ip__", client_ip), ("__pack_id__", "ABCDEF0123456789-1")], "ABCDEF0123456789-1",
    )


def write_server_keys(path: Path, server: SlsTestServer) -> Path:
    text = f"access_key_id = {server.access_key_id}\naccess_key_secret = {server.access_key_secret}\n"
    if server.security_token:
        text += f"security_token = {server.security_token}\n"
    return write_credentials(path, text)


@pytest.fixture
def keys_file(tmp_path: Path, sls_server: SlsTestServer) -> Path:
    return write_server_keys(tmp_path / "sls-keys", sls_server)


def make_sink(server: SlsTestServer, keys: Path, **overrides: Any) -> SlsSink:
    settings: dict[str, Any] = {
        "name": "sls", "endpoint": server.endpoint, "project": "proj", "logstore": "store",
        "credentials_file": keys, "region": server.region, "timeout_seconds": 10.0,
    }
    settings.update(overrides)
    return SlsSink(SlsSinkConfig(**settings))


def sink_at(endpoint: str, keys: Path, *, timeout_seconds: float) -> SlsSink:
    """A sink sending to ``endpoint``, which is no test server (nothing, or a server of the test's own)."""
    return SlsSink(SlsSinkConfig(
        name="sls", endpoint=endpoint, project="proj", logstore="store", credentials_file=keys,
        timeout_seconds=timeout_seconds,
    ))


@pytest.fixture
def sink(sls_server: SlsTestServer, keys_file: Path) -> Iterator[SlsSink]:
    sink = make_sink(sls_server, keys_file)
    yield sink
    sink.close()


class TestSlsSink:
    """The sink in receiver/deliver/registry.py against the test server."""

    @pytest.mark.parametrize("signature", ["v1", "v4"])
    @pytest.mark.parametrize("route_by_hash_key", [False, True])
    def test_ok(self, sls_server: SlsTestServer, keys_file: Path, signature: str, route_by_hash_key: bool) -> None:
        """If the server accepts, then the outcome is ok and the server holds the group as sent."""
        sink = make_sink(sls_server, keys_file, signature=signature, route_by_hash_key=route_by_hash_key, topic="syslog")
        try:
            group = sink_group()
            assert sink.send(group).kind == "ok"
        finally:
            sink.close()
        [got] = sls_server.groups
        assert (got.project, got.logstore, got.signature, got.compress) == ("proj", "store", signature, "lz4")
        assert got.route_key == (hashlib.md5(b"10.0.0.9").hexdigest() if route_by_hash_key else None)
        assert got.group.topic == "syslog" and got.group.source == "10.0.0.9" and got.group.tags == group.tags
        assert [log.contents for log in got.group.logs] == [list(zip(r.keys, r.values, strict=True)) for r in group.records]
        assert [log.time_ns for log in got.group.logs] == [None, 1000, 2000, 3000, 4000]

    def test_uncompressed_and_env_credentials(self, sls_server: SlsTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
        """If compress is none and no credentials file is set, then the environment's keys sign a raw body."""
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", sls_server.access_key_id)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", sls_server.access_key_secret)
        monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
        sink = make_sink(sls_server, None, compress="none")  # type: ignore[arg-type]
        try:
            assert sink.send(sink_group()).kind == "ok"
        finally:
            sink.close()
        assert sls_server.groups[0].compress is None

    def test_quota(self, sls_server: SlsTestServer, sink: SlsSink) -> None:
        """If the write quota is exceeded, then the outcome is quota with Retry-After, and a later send is ok."""
        sls_server.fail_next(1, 403, "ShardWriteQuotaExceed", "shard quota exceeded", retry_after=7)
        outcome = sink.send(sink_group())
        assert (outcome.kind, outcome.retry_after_seconds) == ("quota", 7.0)
        assert "ShardWriteQuotaExceed" in outcome.reason and "403" in outcome.reason
        assert sink.send(sink_group()).kind == "ok"
        assert len(sls_server.groups) == 1

    def test_auth_reloads_credentials(self, sls_server: SlsTestServer, sink: SlsSink, keys_file: Path) -> None:
        """If the keys are rotated (server and file), then one send fails with auth and the next uses the new keys."""
        assert sink.send(sink_group()).kind == "ok"
        sls_server.set_credentials("rotated-id", "rotated-secret", TOKEN)
        write_server_keys(keys_file, sls_server)
        outcome = sink.send(sink_group())
        assert outcome.kind == "auth" and "InvalidAccessKeyId" in outcome.reason
        assert "rotated-secret" not in outcome.reason and TOKEN not in outcome.reason
        assert sink.send(sink_group()).kind == "ok"
        assert sls_server.groups[-1].headers["x-acs-security-token"] == TOKEN
        assert len(sls_server.groups) == 2

    def test_auth_reload_failure_keeps_old_keys(self, sls_server: SlsTestServer, sink: SlsSink, keys_file: Path) -> None:
        """If reloading fails (file made group-readable), then the reason says why and the old keys stay."""
        sls_server.fail_next(1, 401, "Unauthorized", "denied")
        keys_file.chmod(0o644)
        outcome = sink.send(sink_group())
        assert outcome.kind == "auth"
        assert "reloading credentials failed" in outcome.reason and f"chmod 600 {keys_file}" in outcome.reason
        assert sls_server.access_key_secret not in outcome.reason
        assert sink.send(sink_group()).kind == "ok"

    @pytest.mark.parametrize("signature", ["v1", "v4"])
    def test_clock_skew_corrected(self, sls_server: SlsTestServer, keys_file: Path, signature: str) -> None:
        """If our clock is an hour behind the server's, then the first send is clock-skew and the second is ok."""
        sls_server.skew_seconds = 3600.0
        sink = make_sink(sls_server, keys_file, signature=signature)
        try:
            first = sink.send(sink_group())
            assert first.kind == "clock-skew" and "RequestTimeExpired" in first.reason
            assert sink.send(sink_group()).kind == "ok"
        finally:
            sink.close()
        [got] = sls_server.groups
        if signature == "v1":
            sent = _dt.datetime.strptime(got.headers["date"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=_dt.UTC)
        else:
            sent = _dt.datetime.strptime(got.headers["x-log-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.UTC)
        assert abs(sent.timestamp() - sls_server.now()) < 60

    def test_permanent(self, sls_server: SlsTestServer, sink: SlsSink) -> None:
        """If the server refuses the body for good, then the outcome is permanent with SLS's code."""
        sls_server.fail_next(1, 400, "PostBodyInvalid", "bad body")
        outcome = sink.send(sink_group())
        assert outcome.kind == "permanent" and "PostBodyInvalid" in outcome.reason and "bad body" in outcome.reason

    def test_not_deliverable(self, keys_file: Path) -> None:
        """If the logstore does not exist, then the outcome is not-deliverable."""
        with SlsTestServer(logstores={"store"}) as server:
            write_server_keys(keys_file, server)
            sink = make_sink(server, keys_file)
            try:
                outcome = sink.send(sink_group(destination="missing"))
                assert outcome.kind == "not-deliverable" and "LogStoreNotExist" in outcome.reason
                assert sink.send(sink_group()).kind == "ok"
            finally:
                sink.close()

    def test_server_error_retry(self, sls_server: SlsTestServer, sink: SlsSink) -> None:
        """If the server fails, then the outcome is retry."""
        sls_server.fail_next(1, 503, "ServerBusy")
        assert sink.send(sink_group()).kind == "retry"

    def test_network_error_retry(self, keys_file: Path) -> None:
        """If nothing listens at the endpoint, then the outcome is retry, never an exception, and the reason
        names it as requests did (ConnectionError)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        sink = sink_at(f"http://127.0.0.1:{port}", keys_file, timeout_seconds=2.0)
        try:
            outcome = sink.send(sink_group())
            assert outcome.kind == "retry" and outcome.reason.startswith("ConnectionError: ")
        finally:
            sink.close()

    def test_no_answer_in_time_is_retry(self, keys_file: Path) -> None:
        """If the endpoint accepts the connection but never answers, then the outcome is retry once
        ``timeout_seconds`` have passed, naming the timeout."""
        with socket.socket() as listening:
            listening.bind(("127.0.0.1", 0))
            listening.listen()
            port = listening.getsockname()[1]
            sink = sink_at(f"http://127.0.0.1:{port}", keys_file, timeout_seconds=0.5)
            try:
                started = time.monotonic()
                outcome = sink.send(sink_group())
                assert outcome.kind == "retry" and outcome.reason.startswith("ReadTimeout: ")
                assert "timed out" in outcome.reason.lower()
                assert time.monotonic() - started < 5
            finally:
                sink.close()

    def test_a_redirect_is_not_followed(self, keys_file: Path) -> None:
        """If the endpoint answers with a redirect, then the sink does not follow it (the signature and
        the token must not reach another host): the outcome is the redirect's, and nothing else is asked."""
        requests_seen: list[bytes] = []

        class Redirecting(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                requests_seen.append(self.requestline.encode())
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        with http.server.HTTPServer(("127.0.0.1", 0), Redirecting) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            sink = sink_at(f"http://127.0.0.1:{server.server_address[1]}", keys_file, timeout_seconds=5.0)
            try:
                outcome = sink.send(sink_group())
            finally:
                sink.close()
                server.shutdown()
        assert outcome.kind != "ok" and outcome.reason.startswith("302")
        assert len(requests_seen) == 1

    def test_the_environments_proxy_carries_requests(
        self, sls_server: SlsTestServer, keys_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If HTTP_PROXY names a proxy (and NO_PROXY does not exempt the endpoint), then requests go
        through it, as with any HTTP client an operator configures by environment."""
        forwarded: list[str] = []

        class Proxy(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # a forward proxy gets the absolute URL
                forwarded.append(self.path)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                upstream = urllib3.PoolManager().request("POST", self.path, body=body, headers=headers, retries=False)
                self.send_response(upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.data)))
                self.end_headers()
                self.wfile.write(upstream.data)

            def log_message(self, *args: Any) -> None:
                pass

        with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy) as proxy:
            threading.Thread(target=proxy.serve_forever, daemon=True).start()
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            sink = make_sink(sls_server, keys_file)
            try:
                outcome = sink.send(sink_group())
                assert outcome.kind == "ok", outcome.reason
            finally:
                sink.close()
                proxy.shutdown()
        assert forwarded and forwarded[0].startswith(sls_server.endpoint + "/logstores/store/shards/lb")
        assert len(sls_server.groups) == 1

    def test_bad_logstore_name_is_not_deliverable(self, sls_server: SlsTestServer, sink: SlsSink) -> None:
        """If a route names a logstore that cannot be in a URL, then not-deliverable, not an exception."""
        outcome = sink.send(sink_group(destination="../other"))
        assert outcome.kind == "not-deliverable" and "logstore" in outcome.reason
        assert sls_server.request_count == 0

    def test_unencodable_group_is_permanent(self, sink: SlsSink) -> None:
        """If a record cannot be encoded (time outside uint32), then permanent, not an exception."""
        group = sink_group()
        group.records.append(rec([("_content_", "x")], time=-1))
        assert sink.send(group).kind == "permanent"

    def test_settings_checked_at_construction(self, sls_server: SlsTestServer, keys_file: Path) -> None:
        """If the sink's settings cannot build requests (v4 without region), then construction fails, not each send."""
        with pytest.raises(SlsRequestError, match="region"):
            make_sink(sls_server, keys_file, signature="v4", region=None)

    def test_no_secret_in_any_reason(self, sls_server: SlsTestServer, keys_file: Path) -> None:
        """If every kind of answer comes back, then no reason carries the secret or the token."""
        sls_server.set_credentials(sls_server.access_key_id, sls_server.access_key_secret, TOKEN)
        write_server_keys(keys_file, sls_server)
        sink = make_sink(sls_server, keys_file)
        try:
            for status, code in [(401, "SignatureNotMatch"), (403, "WriteQuotaExceed"), (400, "PostBodyInvalid"), (500, "")]:
                sls_server.fail_next(1, status, code)
                reason = sink.send(sink_group()).reason
                assert sls_server.access_key_secret not in reason and TOKEN not in reason
        finally:
            sink.close()


class TestMerge:
    """One stream's groups of consecutive batches as one request (receiver/deliver/worker.py merges them)."""

    def parts(self, sink: SlsSink, encoded: bool) -> list[Group]:
        from receiver.deliver.sinks.sls.sink import sls_payload

        groups = []
        for n in range(3):
            group = sink_group()
            group.records = [rec([("_content_", f"batch {n} line {i}")], time_ns=i) for i in range(n + 2)]
            group.pack_id = f"ABCDEF0123456789-{n + 1}"
            group.tags = [("__client_ip__", "10.0.0.9"), ("__pack_id__", group.pack_id)]
            group.receive_time_ns = 5_000 - n
            group.raw_bytes = 100 * (n + 1)
            if encoded:
                group.payload = sls_payload(sink.config, group)
                group.record_count = len(group.records)
                group.records = []
            groups.append(group)
        return groups

    def test_encoded_groups_make_the_log_group_of_all_their_logs(self, sls_server: SlsTestServer, sink: SlsSink) -> None:
        """If a stream's encoded groups are merged, then the request is the LogGroup of all their logs in
        order with the first group's tags, byte for byte, and the server takes it as such."""
        records = [r for g in self.parts(sink, encoded=False) for r in g.records]
        merged = sink.merge(self.parts(sink, encoded=True))
        assert merged is not None
        tags = [("__client_ip__", "10.0.0.9"), ("__pack_id__", "ABCDEF0123456789-83000001")]  # 3 parts from -1
        assert merged.payload is not None
        assert unpack_log_group(merged.payload, "lz4") == encode_log_group(
            records, source="10.0.0.9", tags=tags, flags_field="_flags_"
        )
        assert (merged.pack_id, merged.tags) == ("ABCDEF0123456789-83000001", tags)
        assert (merged.count, merged.raw_bytes, merged.receive_time_ns) == (9, 600, 4_998)
        assert sink.send(merged).kind == "ok"
        [got] = sls_server.groups
        assert [log.contents for log in got.group.logs] == [list(zip(r.keys, r.values, strict=True)) for r in records]
        assert got.group.tags == tags

    def test_groups_of_records_merge_their_records(self, sink: SlsSink) -> None:
        """If the groups carry records (a batch built in this process), then the merged group carries them all."""
        parts = self.parts(sink, encoded=False)
        merged = sink.merge(parts)
        assert merged is not None and merged.payload is None
        assert merged.records == [r for g in parts for r in g.records] and merged.pack_id == "ABCDEF0123456789-83000001"

    def test_a_merge_never_takes_a_pack_id_a_resend_could_have_used_otherwise(self) -> None:
        """If the same first group merges with more or fewer parts (after a crash, more or fewer batches
        were built in time), then each merge has a pack id of its own, and none is a single group's:
        an upstream dropping pack ids it has seen must not drop records it has not."""
        from receiver.deliver.batches import merged_pack_id, pack_sequence

        first = f"ABCDEF0123456789-{pack_sequence(7, 3):X}"
        singles = {f"ABCDEF0123456789-{pack_sequence(seq, i):X}" for seq in (7, 8, 9) for i in range(5)}
        merges = [merged_pack_id(first, n) for n in range(2, 9)]
        assert len(set(merges)) == len(merges) and not singles & set(merges)
        assert merged_pack_id(first, 1) is None and merged_pack_id(first, 128) is None
        assert merged_pack_id(f"ABCDEF0123456789-{pack_sequence(7, 1 << 24):X}", 2) is None

    def test_what_cannot_merge_is_left_as_it_is(self, sink: SlsSink) -> None:
        """If some groups are encoded and some not, or a payload does not end with its group's tags, then
        merge answers None (the worker sends them one by one)."""
        mixed = self.parts(sink, encoded=True)[:2] + self.parts(sink, encoded=False)[2:]
        assert sink.merge(mixed) is None
        foreign = self.parts(sink, encoded=True)
        foreign[1].tags = [("__client_ip__", "10.0.0.9"), ("__pack_id__", "OTHER-1")]
        assert sink.merge(foreign) is None
