"""The HTTP sink: RFC 9421 signatures and RFC 9530 digests, then requests to a verifying collector.

The sink signs with the ``http-message-signatures`` library; every signature
here is checked by that library too (through tests/support/http_verifier.py,
which shares nothing with the sink). The library is held to the RFC 9421
appendix B vectors (B.2.5 and B.2.6, with the RFC's own keys from B.1.4 and
B.1.5), signing with our key objects, and to the RFC 9530 digest example; the
sink is driven end to end against the verifying collector, and the example
in docs/sinks/http.md is checked byte for byte.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import email.utils
import gzip
import hashlib
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    InvalidSignature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.ndjson import decode_ndjson
from formats.record import Record
from receiver.config.model import HttpSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.sinks.http import (
    COVERED_COMPONENTS,
    MAX_RETRY_AFTER_SECONDS,
    HttpRequest,
    HttpSink,
    HttpSinkError,
    classify_response,
    http_payload,
    load_signing_key,
    parse_retry_after,
    request_url,
)
from receiver.deliver.sinks.http_signatures import (
    Ed25519SigningKey,
    HmacSha256Key,
    SignatureKeyError,
    SignedRequest,
    SigningError,
    SigningKey,
    content_digest,
    normalize_target_uri,
    sign_request,
)
from tests.support.http_verifier import HttpVerifier, verify_signature

# --- RFC 9421 appendix B material -------------------------------------------------------------

# B.1.5: the shared secret "test-shared-secret", base64 in the RFC.
RFC_SHARED_SECRET = base64.b64decode(
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
)
# B.1.4: "test-key-ed25519".
RFC_ED25519_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_ED25519_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
# B.2: the test-request message.
RFC_URL = "https://example.com/foo?param=Value&Pet=dog"
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    "Content-Length": "18",
}
RFC_CREATED = 1618884473
RFC_DATETIME = datetime.datetime.fromtimestamp(RFC_CREATED, datetime.UTC)
RFC_BODY = b'{"hello": "world"}'

B25_BASE = (
    b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    b'"@authority": example.com\n'
    b'"content-type": application/json\n'
    b'"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
)
B25_INPUT = 'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
B25_SIGNATURE_B64 = "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8="
B25_SIGNATURE = f"sig-b25=:{B25_SIGNATURE_B64}:"

B26_BASE = (
    b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    b'"@method": POST\n'
    b'"@path": /foo\n'
    b'"@authority": example.com\n'
    b'"content-type": application/json\n'
    b'"content-length": 18\n'
    b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")'
    b';created=1618884473;keyid="test-key-ed25519"'
)
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE_B64 = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
B26_SIGNATURE = f"sig-b26=:{B26_SIGNATURE_B64}:"

# --- helpers ----------------------------------------------------------------------------------

SECRET = b"0123456789abcdef0123456789abcdef-test-secret"
NOW = 1_795_323_666.0
KEYS = ("_program_", "_hostname_", "_severity_", "_content_")


class FixedClock:
    """A clock that stays where it is put."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_group(n: int = 3, *, pack_id: str = "ABCDEF0123456789-7-0", start: int = 0) -> Group:
    """``n`` records like an access log's (varied enough that gzip does not flatter the figures)."""
    records = []
    for i in range(start, start + n):
        noise = hashlib.sha1(i.to_bytes(8, "big")).hexdigest()
        message = (
            f"message {i} é ☃ GET /api/v1/items/{i * 7919 % 100003} 200 {i * 37 % 997}ms "
            f"user={noise[:12]} trace={noise[12:40]}"
        )
        records.append(
            Record(1_795_323_666 + i // 1000, i * 1000 % 10**9, KEYS, ["todo-list", f"web-{i % 16}", str(i % 8), message], "10.0.0.7", {})
        )
    tags = [
        ("__client_ip__", "10.0.0.7"),
        ("__receive_time__", "1795323666"),
        ("__hostname__", "appliance"),
        ("__machine_group__", "web"),
        ("__pack_id__", pack_id),
    ]
    return Group("app-logs", "10.0.0.7", "10.0.0.7", records, tags, pack_id)


def key_file(tmp_path: Path, data: bytes, mode: int = 0o600, name: str = "key") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


def ed25519_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def collector(clock: FixedClock) -> Iterator[HttpVerifier]:
    with HttpVerifier(hmac_secret=SECRET, clock=clock) as verifier:
        yield verifier


_open_sinks: list[HttpSink] = []


@pytest.fixture(autouse=True)
def _close_sinks() -> Iterator[None]:
    """Close every sink a test made, so no pooled connection outlives its test."""
    yield
    while _open_sinks:
        _open_sinks.pop().close()


def open_sink(config: HttpSinkConfig, clock: FixedClock | None = None) -> HttpSink:
    sink = HttpSink(config, clock=clock or FixedClock())
    _open_sinks.append(sink)
    return sink


def hmac_sink(tmp_path: Path, url: str, clock: FixedClock, **options: object) -> HttpSink:
    config = HttpSinkConfig(name="collector", url=url, key_file=key_file(tmp_path, SECRET + b"\n"), **options)  # type: ignore[arg-type]
    return open_sink(config, clock)


# --- RFC 9530 ---------------------------------------------------------------------------------


class TestContentDigest:
    """The library's ``ContentDigest``, which makes the sink's header, held to the RFCs' examples."""

    def test_rfc9530_example(self) -> None:
        """If the body is RFC 9530's example, then the sha-256 digest is the RFC's."""
        assert ContentDigest.create(RFC_BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"

    def test_checks_sha512_of_rfc9421_test_request(self) -> None:
        """If the digest is the RFC 9421 test-request's sha-512, then it checks against its body."""
        ContentDigest.verify(RFC_HEADERS["Content-Digest"], RFC_BODY)

    def test_altered_body_is_refused(self) -> None:
        """If one byte of the body changes, then the digest no longer checks."""
        with pytest.raises(InvalidSignature, match="does not match"):
            ContentDigest.verify(ContentDigest.create(RFC_BODY), RFC_BODY.replace(b"world", b"World"))


# --- RFC 9421 -----------------------------------------------------------------------------------


def rfc_signed(key: SigningKey, label: str, components: tuple[str, ...], keyid: str) -> tuple[bytes, dict[str, str]]:
    """The signature base and headers of the RFC's test request, signed by the library with ``key`` as the RFC does (no ``alg``)."""
    request = SignedRequest("POST", RFC_URL, dict(RFC_HEADERS))
    signer = HTTPMessageSigner(signature_algorithm=key.algorithm, key_resolver=key)
    prepared = signer.prepare(
        request, key_id=keyid, created=RFC_DATETIME, label=label, include_alg=False,
        covered_component_ids=components, use_existing_digest=True,
    )
    signature = key.algorithm(private_key=key.resolve_private_key(keyid)).sign(prepared.signature_base)
    signer.apply(request, prepared, signature)
    return prepared.signature_base, request.headers


def rfc_public_key() -> Ed25519PublicKey:
    public = serialization.load_pem_public_key(RFC_ED25519_PUBLIC)
    assert isinstance(public, Ed25519PublicKey)
    return public


class TestRfc9421Vectors:
    def test_b25_hmac_sha256(self) -> None:
        """If the B.2.5 signature is made with test-shared-secret, then base and headers are the RFC's."""
        base, headers = rfc_signed(
            HmacSha256Key(RFC_SHARED_SECRET), "sig-b25", ("date", "@authority", "content-type"), "test-shared-secret"
        )
        assert base == B25_BASE
        assert (headers["Signature-Input"], headers["Signature"]) == (B25_INPUT, B25_SIGNATURE)

    def test_b26_ed25519(self) -> None:
        """If the B.2.6 signature is made with test-key-ed25519, then base and signature are the RFC's."""
        base, headers = rfc_signed(
            Ed25519SigningKey.from_pem(RFC_ED25519_PRIVATE), "sig-b26",
            ("date", "@method", "@path", "@authority", "content-type", "content-length"), "test-key-ed25519",
        )
        assert base == B26_BASE
        assert (headers["Signature-Input"], headers["Signature"]) == (B26_INPUT, B26_SIGNATURE)

    @pytest.mark.parametrize(
        ("signature_input", "signature", "key", "keyid"),
        [
            (B25_INPUT, B25_SIGNATURE, RFC_SHARED_SECRET, "test-shared-secret"),
            (B26_INPUT, B26_SIGNATURE, None, "test-key-ed25519"),
        ],
    )
    def test_rfc_headers_verify(self, signature_input: str, signature: str, key: bytes | None, keyid: str) -> None:
        """If the RFC's own header text is checked with the RFC's key, then the test collector accepts it."""
        headers = dict(RFC_HEADERS, **{"Signature-Input": signature_input, "Signature": signature})
        verify_signature(RFC_URL, headers, key or rfc_public_key(), key_id=keyid, clock=FixedClock(RFC_CREATED))

    def test_b25_refused_with_another_secret(self) -> None:
        """If the B.2.5 signature is checked with another secret, then it is refused."""
        headers = dict(RFC_HEADERS, **{"Signature-Input": B25_INPUT, "Signature": B25_SIGNATURE})
        with pytest.raises(InvalidSignature):
            verify_signature(RFC_URL, headers, b"other", key_id="test-shared-secret", clock=FixedClock(RFC_CREATED))

    def test_sign_request_writes_the_rfc_header_text(self) -> None:
        """If sign_request signs as B.2.6 (with alg added), then it verifies with the RFC's public key."""
        request = SignedRequest("POST", RFC_URL, dict(RFC_HEADERS))
        sign_request(
            request, Ed25519SigningKey.from_pem(RFC_ED25519_PRIVATE),
            components=("date", "@method", "@path", "@authority", "content-type", "content-length"),
            created=RFC_CREATED, keyid="test-key-ed25519", label="sig-b26",
        )
        assert request.headers["Signature-Input"] == B26_INPUT + ';alg="ed25519"'
        verify_signature(RFC_URL, request.headers, rfc_public_key(), key_id="test-key-ed25519", clock=FixedClock(RFC_CREATED))


SPELLED_AS_REQUESTS_DID = [
    "https://collector.example.com/v1/logs",  # docs/sinks/http.md
    "HTTPS://Collector.Example.COM:443/v1/logs",
    "http://127.0.0.1:9000/ingest",
    "http://example.com",
    "http://example.com:80",
    "https://example.com:8443?x=1",
    "http://example.com:0/x",
    "http://B\u00fccher.example/v1",
    "https://\u00c9COLE.example:443/\u00e9t\u00e9?q=\u00df",
    "http://fa\u00df.de/",
    "http://xn--bcher-kva.example/x",
    "http://EXAMPLE.com./x",
    "http://ho{st`.example/x",  # characters a URL cannot carry, in a host name
    "http://[::1]:9000/x",
    "http://[FE80::1]/x",
    "http://example.com/a%7e%41/%2f/b%2Fc?q=%41%20b&r=a b#frag",
    "http://example.com/%7Euser/%e2%98%83",
    "http://example.com/a b/\u00fcn\u00ef?k=\u2603&x=<y>",
    "http://example.com/100%/done",
    "http://example.com/path?a=1&a=2&b=%zz",
    "http://example.com/a/./b/../c",
    "http://example.com/a;p=1?q",
    "http://example.com/?",
    "http://example.com#only-a-fragment",
    "http://user:p%40ss@127.0.0.1:8080/ingest?token=t0k%2Ben",
    "  http://example.com/leading-space",
]
"""Urls the tests and docs use, and the cases a url normaliser gets wrong; requests is the oracle."""


def requests_spelling(url: str) -> str:
    """The url as requests prepared it (the sink sent with requests before it used urllib3 directly)."""
    prepared = requests.models.PreparedRequest()
    prepared.prepare_url(url, None)
    assert prepared.url is not None
    return prepared.url


class Recorder:
    """A loopback server that keeps each request's target, headers (lower case) and body, and answers
    ``status`` (with ``location``, if given) or, with ``forward``, forwards it as a proxy does."""

    def __init__(self, status: int = 200, location: str | None = None, *, forward: bool = False) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                recorder.seen.append((self.path, headers, body))
                if forward:  # a forward proxy gets the absolute URL
                    answer = urllib3.PoolManager().request("POST", self.path, body=body, headers=headers, retries=False)
                    status, data = answer.status, answer.data
                else:
                    status, data = recorder.status, b""
                self.send_response(status)
                if recorder.location is not None:
                    self.send_header("Location", recorder.location)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.status = status
        self.location = location
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])

    def __enter__(self) -> Recorder:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class TestTargetUri:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("HTTPS://Collector.Example.COM:443", "https://collector.example.com/"),
            ("http://example.com:80/a?b=c#frag", "http://example.com/a?b=c"),
            ("http://user:pw@127.0.0.1:8080/ingest", "http://127.0.0.1:8080/ingest"),
            ("http://[::1]:9000/x", "http://[::1]:9000/x"),
        ],
    )
    def test_normalize_target_uri(self, url: str, expected: str) -> None:
        """If a URL has a default port, upper case, userinfo or a fragment, then the target URI has none."""
        assert normalize_target_uri(url) == expected

    def test_sink_signs_the_normalised_uri_not_the_sent_url(self, tmp_path: Path, clock: FixedClock) -> None:
        """If the url has upper case and the default port, then the signature verifies against the normalised URI."""
        sink = hmac_sink(tmp_path, "HTTPS://Collector.Example.COM:443/v1/logs", clock)
        request = sink.build_request(make_group())
        assert request.url == "https://collector.example.com:443/v1/logs"  # as requests spelled it
        verify_signature("https://collector.example.com/v1/logs", request.headers, SECRET, clock=clock)

    @pytest.mark.parametrize("url", SPELLED_AS_REQUESTS_DID)
    def test_url_is_spelled_as_requests_spelled_it(self, url: str) -> None:
        """If the sink spells a url (IDNA host, default port, empty path, escapes, query), then it spells it
        as requests' PreparedRequest did when the sink sent with requests."""
        assert request_url(url) == requests_spelling(url)

    @pytest.mark.parametrize("url", SPELLED_AS_REQUESTS_DID)
    def test_sink_signs_what_it_signed_with_requests(self, tmp_path: Path, clock: FixedClock, url: str) -> None:
        """If the sink signs a request to such a url, then the request's url is requests' spelling and the
        signature covers that spelling, normalised, as before."""
        request = hmac_sink(tmp_path, url, clock).build_request(make_group())
        spelled = requests_spelling(url)
        assert request.url == spelled
        verify_signature(normalize_target_uri(spelled), request.headers, SECRET, clock=clock)

    @pytest.mark.parametrize(
        ("path", "requested"),
        [
            ("/ingest", "/ingest"),
            ("", "/"),
            ("/in%67est/a b/caf\u00e9/%7euser?q=%41%2B&r=\u2603&s=a b#frag", "/ingest/a%20b/caf%C3%A9/~user?q=A%2B&r=%E2%98%83&s=a%20b"),
            ("/a/./b/../c?x", "/a/c?x"),
            ("/a/%2E%2E/b", "/b"),  # requests sent /a/../b; urllib3 takes the dot segment out, and the signature follows
        ],
    )
    def test_the_uri_signed_is_the_uri_requested(self, tmp_path: Path, clock: FixedClock, path: str, requested: str) -> None:
        """If the url's path or query is spelled oddly, then the request line carries the target the signature
        covers: a collector rebuilding ``@target-uri`` from the request line and Host verifies it."""
        with Recorder() as server:
            sink = hmac_sink(tmp_path, f"http://127.0.0.1:{server.port}{path}", clock)
            assert sink.send(make_group()).kind == "ok"
        [(target, headers, _)] = server.seen
        assert target == requested
        verify_signature(f"http://{headers['host']}{target}", headers, SECRET, clock=clock)


URL = "http://127.0.0.1:9000/ingest"
ED25519_FIXED = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
COVERED = ("@method", "@target-uri", "content-digest", "content-type", "idempotency-key")


def signed(key: SigningKey, components: tuple[str, ...] = COVERED) -> dict[str, str]:
    """The headers of a small request to URL, signed by ``key`` at NOW."""
    body = b'{"n":1}\n'
    headers = {"Content-Type": "application/x-ndjson", "Content-Digest": ContentDigest.create(body), "Idempotency-Key": "P-1-0"}
    request = SignedRequest("POST", URL, headers)
    sign_request(request, key, components=components, created=int(NOW), keyid="receiver", label="sig1")
    return request.headers


class TestSign:
    @pytest.mark.parametrize("algorithm", ["hmac-sha256", "ed25519"])
    def test_round_trip(self, algorithm: str) -> None:
        """If a request is signed, then the library verifies it with the matching key and reads back its parameters."""
        private = Ed25519PrivateKey.generate()
        key: SigningKey = HmacSha256Key(SECRET) if algorithm == "hmac-sha256" else Ed25519SigningKey(private)
        check = SECRET if algorithm == "hmac-sha256" else private.public_key()
        headers = signed(key)
        result = verify_signature(URL, headers, check, clock=FixedClock(), required=COVERED)
        assert result.label == "sig1" and list(result.parameters.items()) == [
            ("created", int(NOW)), ("keyid", "receiver"), ("alg", algorithm)
        ]
        assert headers["Signature-Input"].startswith('sig1=("@method" "@target-uri" "content-digest" "content-type"')

    @pytest.mark.parametrize(("header", "value"), [("Idempotency-Key", "P-1-1"), ("Content-Type", "text/plain")])
    def test_tampered_header_is_refused(self, header: str, value: str) -> None:
        """If a covered header is changed after signing, then the signature no longer matches."""
        headers = dict(signed(HmacSha256Key(SECRET)), **{header: value})
        with pytest.raises(InvalidSignature):
            verify_signature(URL, headers, SECRET, clock=FixedClock())

    def test_tampered_target_is_refused(self) -> None:
        """If the request went to another URI than the one signed, then the signature no longer matches."""
        with pytest.raises(InvalidSignature):
            verify_signature("http://127.0.0.1:9000/other", signed(HmacSha256Key(SECRET)), SECRET, clock=FixedClock())

    def test_wrong_key_is_refused(self) -> None:
        """If the verifier holds another key of the same kind, then the signature is refused."""
        headers = signed(Ed25519SigningKey(Ed25519PrivateKey.generate()))
        with pytest.raises(InvalidSignature):
            verify_signature(URL, headers, Ed25519PrivateKey.generate().public_key(), clock=FixedClock())
        with pytest.raises(InvalidSignature):
            verify_signature(URL, signed(HmacSha256Key(SECRET)), SECRET + b"x", clock=FixedClock())

    def test_keys_hide_their_secrets(self) -> None:
        """If a key is printed, then neither the secret nor the private key shows."""
        assert SECRET.decode() not in repr(HmacSha256Key(SECRET))
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        text = repr(Ed25519SigningKey(private))
        assert raw.hex() not in text and base64.b64encode(raw).decode() not in text

    def test_signing_errors_do_not_show_the_key(self) -> None:
        """If a request cannot be signed (a covered field is absent), then the error names the field, not the secret."""
        with pytest.raises(SigningError) as caught:
            signed(HmacSha256Key(SECRET), ("@method", "x-receiver-absent"))
        assert "x-receiver-absent" in str(caught.value) and SECRET.decode() not in str(caught.value)

    @settings(max_examples=200, deadline=None)
    @given(
        values=st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40), min_size=3, max_size=3),
        covered=st.lists(st.sampled_from(["@authority", "@path", "@query", "@scheme", "@request-target", "x-a", "x-b"]),
                         unique=True, max_size=7),
        keyid=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
        path=st.sampled_from(["/ingest", "/v1/logs?a=1&b=%20", "/"]),
        created=st.integers(0, 2**33),  # (datetime ends at year 9999)
        ed25519=st.booleans(),
    )
    def test_what_the_sink_signs_is_what_the_library_signs(
        self, values: list[str], covered: list[str], keyid: str, path: str, created: int, ed25519: bool
    ) -> None:
        """If the sink and the http-message-signatures library sign the same request with the same key
        (any printable field values, components, key id and time), then they write the same
        Signature-Input and Signature, byte for byte (Ed25519 signs deterministically)."""
        key: SigningKey = Ed25519SigningKey(ED25519_FIXED) if ed25519 else HmacSha256Key(SECRET)
        url = f"https://Collector.example.com:8443{path}"
        headers = {"Content-Type": values[0], "X-A": values[1], "x-b": values[2]}
        components = ("@method", "@target-uri", *covered)
        ours = SignedRequest("POST", url, dict(headers))
        sign_request(ours, key, components=components, created=created, keyid=keyid, label="sig1")
        theirs = SignedRequest("POST", url, dict(headers))
        HTTPMessageSigner(signature_algorithm=key.algorithm, key_resolver=key).sign(
            theirs, key_id=keyid, created=datetime.datetime.fromtimestamp(created, datetime.UTC), label="sig1",
            covered_component_ids=components,
        )
        assert (ours.headers["Signature-Input"], ours.headers["Signature"]) == (
            theirs.headers["Signature-Input"], theirs.headers["Signature"]
        )

    @settings(max_examples=100, deadline=None)
    @given(body=st.binary(max_size=2000))
    def test_content_digest_is_the_librarys(self, body: bytes) -> None:
        """If a body is digested, then Content-Digest is what the library writes and checks."""
        assert content_digest(body) == ContentDigest.create(body)
        ContentDigest.verify(content_digest(body), body)

    def test_key_errors_do_not_echo_the_key(self) -> None:
        """If a PEM is not an Ed25519 key, then the error says so without the key text."""
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with pytest.raises(SignatureKeyError, match="not an Ed25519") as caught:
            Ed25519SigningKey.from_pem(pem)
        assert pem.decode().splitlines()[1] not in str(caught.value)
        with pytest.raises(SignatureKeyError):
            HmacSha256Key(b"")


# --- Key files ------------------------------------------------------------------------------------


class TestKeyFile:
    @pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
    def test_hmac_secret_is_the_bytes_less_one_newline(self, tmp_path: Path, ending: bytes) -> None:
        """If the secret file ends in LF, CRLF or nothing, then the key is the bytes before it."""
        key = load_signing_key("hmac-sha256", key_file(tmp_path, SECRET + ending))
        assert key is not None
        verify_signature(URL, signed(key), SECRET, clock=FixedClock())

    def test_only_one_newline_is_taken(self, tmp_path: Path) -> None:
        """If the secret ends in two newlines, then only the last is taken off."""
        key = load_signing_key("hmac-sha256", key_file(tmp_path, SECRET + b"\n\n"))
        assert key is not None
        verify_signature(URL, signed(key), SECRET + b"\n", clock=FixedClock())

    def test_ed25519_pem(self, tmp_path: Path) -> None:
        """If the file holds an Ed25519 PEM private key, then its signatures verify with the public half."""
        private = Ed25519PrivateKey.generate()
        key = load_signing_key("ed25519", key_file(tmp_path, ed25519_pem(private)))
        assert key is not None and key.algorithm.algorithm_id == "ed25519"
        verify_signature(URL, signed(key), private.public_key(), clock=FixedClock())

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
    def test_readable_by_others_is_refused(self, tmp_path: Path, mode: int) -> None:
        """If the key file is readable or writable by group or others, then the error says chmod 600."""
        path = key_file(tmp_path, SECRET, mode)
        with pytest.raises(HttpSinkError, match="chmod 600") as caught:
            load_signing_key("hmac-sha256", path)
        assert str(path) in str(caught.value) and f"{mode:04o}" in str(caught.value)
        assert SECRET.decode() not in str(caught.value)

    def test_0400_is_accepted(self, tmp_path: Path) -> None:
        """If only the owner can read the key file, then it is accepted."""
        assert load_signing_key("hmac-sha256", key_file(tmp_path, SECRET, 0o400)) is not None

    def test_missing_file_and_missing_setting(self, tmp_path: Path) -> None:
        """If key_file is unset or names no file, then the error says what to do."""
        with pytest.raises(HttpSinkError, match="needs key_file"):
            load_signing_key("ed25519", None)
        with pytest.raises(HttpSinkError, match="no such key file"):
            load_signing_key("hmac-sha256", tmp_path / "absent")
        assert load_signing_key("none", None) is None

    def test_empty_and_wrong_kind(self, tmp_path: Path) -> None:
        """If the secret is empty or the PEM is no Ed25519 key, then the error names the file, not the content."""
        with pytest.raises(HttpSinkError, match="empty"):
            load_signing_key("hmac-sha256", key_file(tmp_path, b"\n"))
        with pytest.raises(HttpSinkError, match="not a PEM private key") as caught:
            load_signing_key("ed25519", key_file(tmp_path, SECRET, name="not-pem"))
        assert SECRET.decode() not in str(caught.value) and "openssl genpkey" in str(caught.value)
        encrypted = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
        with pytest.raises(HttpSinkError, match="encrypted"):
            load_signing_key("ed25519", key_file(tmp_path, encrypted, name="encrypted"))

    def test_directory_is_refused(self, tmp_path: Path) -> None:
        """If key_file names a directory, then it is refused as not a regular file."""
        folder = tmp_path / "dir"
        folder.mkdir(mode=0o700)
        with pytest.raises(HttpSinkError, match="regular file"):
            load_signing_key("hmac-sha256", folder)

    def test_sink_refuses_a_bad_key_file_at_start(self, tmp_path: Path) -> None:
        """If the sink's key file is too open, then the sink does not start."""
        config = HttpSinkConfig(name="c", url="http://127.0.0.1:1/x", key_file=key_file(tmp_path, SECRET, 0o644))
        with pytest.raises(HttpSinkError, match="chmod 600"):
            HttpSink(config)


# --- Answers to outcomes ----------------------------------------------------------------------------


def classify(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[str, str, float | None]:
    outcome = classify_response(status, "Reason", headers or {}, body, now=NOW, pack_id="P-1-0", sink="collector")
    return outcome.kind, outcome.reason, outcome.retry_after_seconds


class TestClassify:
    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (200, "ok"), (201, "ok"), (202, "ok"), (204, "ok"), (409, "ok"),
            (408, "retry"), (425, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
            (429, "quota"),
            (401, "auth"), (403, "auth"),
            (404, "not-deliverable"), (410, "not-deliverable"), (301, "not-deliverable"), (307, "not-deliverable"),
            (400, "permanent"), (413, "permanent"), (415, "permanent"), (422, "permanent"), (405, "permanent"),
        ],
    )
    def test_status_to_kind(self, status: int, kind: str) -> None:
        """If the collector answers this status, then the outcome is of this kind."""
        assert classify(status)[0] == kind

    def test_retry_after_seconds_and_date(self) -> None:
        """If 429 or 503 carries Retry-After as seconds or as an HTTP-date, then the wait is honoured."""
        assert classify(429, {"retry-after": "17"})[2] == 17.0
        date = email.utils.formatdate(NOW + 42, usegmt=True)
        assert classify(503, {"retry-after": date})[2] == pytest.approx(42.0)
        assert classify(503, {"retry-after": email.utils.formatdate(NOW - 10, usegmt=True)})[2] == 0.0
        assert classify(503, {"retry-after": "soon"})[2] is None
        assert classify(503)[2] is None

    def test_retry_after_is_capped(self) -> None:
        """If Retry-After asks for days, then the wait is cut to the cap."""
        assert parse_retry_after("999999", NOW) == MAX_RETRY_AFTER_SECONDS
        assert parse_retry_after(email.utils.formatdate(NOW + 10**6, usegmt=True), NOW) == MAX_RETRY_AFTER_SECONDS

    def test_413_tells_to_lower_max_bytes(self) -> None:
        """If a batch is too large, then the reason tells the operator to lower max_bytes."""
        kind, reason, _ = classify(413, body=b'{"error":"body too large"}')
        assert kind == "permanent" and "lower max_bytes of sink collector" in reason and "body too large" in reason

    def test_redirect_reason_hides_the_query(self) -> None:
        """If a redirect names a URL with a token in its query, then the reason leaves the query out."""
        _, reason, _ = classify(302, {"location": "https://other.example/x?token=SECRET"})
        assert "SECRET" not in reason and "https://other.example/x" in reason


# --- End to end against the verifying collector --------------------------------------------------------


class TestHttpSinkEndToEnd:
    def test_ok_hmac_gzip(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If a group is sent with HMAC and gzip, then the collector verifies it and gets every record and tag."""
        sink = hmac_sink(tmp_path, collector.url, clock)
        group = make_group(5)
        assert sink.send(group).kind == "ok"
        sink.close()
        assert collector.refusals == []
        [batch] = collector.batches
        assert batch.pack_id == group.pack_id and batch.alg == "hmac-sha256" and batch.keyid == "receiver"
        assert batch.records == [r.to_dict() for r in group.records]
        assert batch.tags == dict(group.tags) and batch.destination == "app-logs" and batch.source == "10.0.0.7"
        [request] = collector.requests
        assert request.headers["content-encoding"] == "gzip"
        assert request.headers["content-type"] == "application/x-ndjson"
        assert request.headers["idempotency-key"] == group.pack_id
        assert request.headers["content-digest"] == ContentDigest.create(request.body)
        assert decode_ndjson(gzip.decompress(request.body)) == batch.records
        assert request.headers["signature-input"] == (
            'sig1=("@method" "@target-uri" "content-digest" "content-type" "content-encoding" "idempotency-key" '
            '"x-receiver-destination" "x-receiver-source" "x-receiver-tags");'
            f'created={int(NOW)};keyid="receiver";alg="hmac-sha256"'
        )

    @pytest.mark.parametrize("gzipped", [True, False])
    def test_merged_groups_go_as_one_request_of_all_their_lines(
        self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock, gzipped: bool
    ) -> None:
        """If a stream's groups of consecutive batches are merged (encoded as a worker encodes them, or
        with their records), then one request carries all their records in order under the merge's
        own key, and the collector verifies it."""
        sink = hmac_sink(tmp_path, collector.url, clock)
        if not gzipped:
            sink._config = dataclasses.replace(sink._config, gzip=False)
        parts = [make_group(3, pack_id=f"ABCDEF0123456789-{n + 1}", start=10 * n) for n in range(3)]
        for part in parts:
            part.tags = [(k, part.pack_id if k == "__pack_id__" else v) for k, v in part.tags]
        records = [r for part in parts for r in part.records]
        assert (merged_records := sink.merge(parts)) is not None and merged_records.records == records
        for part in parts:  # as a worker process hands them over
            part.payload, part.record_count, part.records = http_payload(sink._config, part), len(part.records), []
        merged = sink.merge(parts)
        assert merged is not None and merged.pack_id == "ABCDEF0123456789-83000001" == merged_records.pack_id
        assert sink.send(merged).kind == "ok"
        sink.close()
        [batch] = collector.batches
        assert collector.refusals == [] and batch.pack_id == merged.pack_id
        assert batch.records == [r.to_dict() for r in records] and batch.tags["__pack_id__"] == merged.pack_id

    def test_ok_ed25519(self, tmp_path: Path, clock: FixedClock) -> None:
        """If a group is signed with Ed25519, then a collector holding only the public key verifies it."""
        private = Ed25519PrivateKey.generate()
        with HttpVerifier(ed25519_public_key=private.public_key(), key_id="edge-7", clock=clock) as collector:
            config = HttpSinkConfig(
                name="c", url=collector.url, signature="ed25519", key_id="edge-7",
                key_file=key_file(tmp_path, ed25519_pem(private)),
            )
            sink = open_sink(config, clock)
            assert sink.send(make_group()).kind == "ok"
        assert collector.refusals == [] and collector.batches[0].alg == "ed25519"

    def test_gzip_off(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If gzip is off, then the body is plain NDJSON, with no Content-Encoding to cover."""
        sink = hmac_sink(tmp_path, collector.url, clock, gzip=False)
        group = make_group(2)
        assert sink.send(group).kind == "ok"
        [request] = collector.requests
        assert "content-encoding" not in request.headers
        assert '"content-encoding"' not in request.headers["signature-input"]
        assert decode_ndjson(request.body) == [r.to_dict() for r in group.records]

    def test_signature_none(self, tmp_path: Path, clock: FixedClock) -> None:
        """If signature is none, then no key is needed and the request still carries its digest."""
        with HttpVerifier(require_signature=False, clock=clock) as collector:
            sink = open_sink(HttpSinkConfig(name="c", url=collector.url, signature="none"), clock)
            assert sink.send(make_group()).kind == "ok"
        [request] = collector.requests
        assert "signature" not in request.headers and "content-digest" in request.headers

    def test_every_covered_component_is_sent(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If a group has destination and source, then the signature covers every component of the list."""
        sink = hmac_sink(tmp_path, collector.url, clock)
        request = sink.build_request(make_group())
        inner = request.headers["Signature-Input"].split("(")[1].split(")")[0]
        assert tuple(name.strip('"') for name in inner.split()) == COVERED_COMPONENTS

    def test_odd_source_and_destination_are_encoded(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the source is IPv6 and the destination is not ASCII, then headers stay ASCII and the collector verifies them."""
        sink = hmac_sink(tmp_path, collector.url, clock)
        group = make_group()
        group.source, group.destination = "fe80::1%eth0", "journaux-été"
        assert sink.send(group).kind == "ok"
        [batch] = collector.batches
        assert batch.source == "fe80::1%25eth0" and batch.destination == "journaux-%C3%A9t%C3%A9"

    def test_retry_with_retry_after_then_ok(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the collector answers 503 with Retry-After, then the outcome is retry with that wait, and the resend lands."""
        sink = hmac_sink(tmp_path, collector.url, clock)
        collector.fail_next(1, 503, retry_after="7")
        collector.fail_next(1, 500)
        group = make_group()
        assert (o := sink.send(group)).kind == "retry" and o.retry_after_seconds == 7.0 and o.reason.startswith("503")
        assert (o := sink.send(group)).kind == "retry" and o.retry_after_seconds is None
        assert sink.send(group).kind == "ok"
        assert len(collector.batches) == 1 and collector.repeats == 0

    def test_quota_with_http_date(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the collector answers 429 with an HTTP-date, then the outcome is quota with the wait from the clock."""
        sink = hmac_sink(tmp_path, collector.url, clock)
        collector.fail_next(1, 429, retry_after=email.utils.formatdate(NOW + 30, usegmt=True))
        outcome = sink.send(make_group())
        assert outcome.kind == "quota" and outcome.retry_after_seconds == pytest.approx(30.0)

    def test_wrong_key_is_auth(self, tmp_path: Path, clock: FixedClock) -> None:
        """If the collector holds another secret, then it refuses with 401 and the outcome is auth."""
        with HttpVerifier(hmac_secret=b"another-secret-entirely-32-bytes!", clock=clock) as collector:
            sink = hmac_sink(tmp_path, collector.url, clock)
            outcome = sink.send(make_group())
        assert outcome.kind == "auth" and "signature mismatch" in outcome.reason
        assert collector.refusals == ["signature mismatch (hmac-sha256)"] and collector.batches == []

    def test_wrong_key_id_is_auth(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the sink's key_id is not the collector's, then the outcome is auth."""
        sink = hmac_sink(tmp_path, collector.url, clock, key_id="someone-else")
        assert sink.send(make_group()).kind == "auth"
        assert collector.refusals == ["Unable to resolve verification key"]

    def test_clock_far_behind_is_auth(self, tmp_path: Path, collector: HttpVerifier) -> None:
        """If the sink's clock is far behind the collector's, then the signature is refused as too old."""
        sink = hmac_sink(tmp_path, collector.url, FixedClock(NOW - 3600))
        assert sink.send(make_group()).kind == "auth"
        assert "too far" in collector.refusals[0]

    def test_rotated_key_is_reloaded_after_auth(self, tmp_path: Path, clock: FixedClock) -> None:
        """If the key file was replaced and the collector refuses the old key, then the next send uses the new one."""
        new_secret = b"the-rotated-secret-0123456789abcdef"
        with HttpVerifier(hmac_secret=new_secret, clock=clock) as collector:
            sink = hmac_sink(tmp_path, collector.url, clock)
            key_file(tmp_path, new_secret + b"\n")  # rotated on both ends; the sink still holds the old key
            assert sink.send(make_group()).kind == "auth"
            assert sink.send(make_group()).kind == "ok"

    @pytest.mark.parametrize(("status", "words"), [(400, "400"), (413, "lower max_bytes"), (415, "415"), (422, "422")])
    def test_permanent(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock, status: int, words: str) -> None:
        """If the collector refuses the batch for good, then the outcome is permanent with the answer in the reason."""
        sink = hmac_sink(tmp_path, collector.url, clock)
        collector.fail_next(1, status, body=b'{"error":"nope"}')
        outcome = sink.send(make_group())
        assert outcome.kind == "permanent" and words in outcome.reason and "nope" in outcome.reason

    def test_wrong_path_is_not_deliverable(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the url names a path the collector does not serve, then the outcome is not-deliverable."""
        sink = hmac_sink(tmp_path, collector.url + "/typo", clock)
        outcome = sink.send(make_group())
        assert outcome.kind == "not-deliverable" and "check url" in outcome.reason

    def test_repeat_is_ok_and_counted_once(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the same pack is sent twice, then both sends are ok and the collector keeps it once."""
        sink = hmac_sink(tmp_path, collector.url, clock)
        group = make_group()
        assert sink.send(group).kind == "ok"
        clock.now += 5  # a resend after a crash: a fresh signature, the same body
        assert sink.send(group).kind == "ok"
        assert len(collector.batches) == 1 and collector.repeats == 1
        first, second = collector.requests
        assert first.body == second.body
        assert first.headers["signature"] != second.headers["signature"]

    def test_409_on_repeat_is_ok(self, tmp_path: Path, clock: FixedClock) -> None:
        """If a collector answers a repeated Idempotency-Key with 409, then the outcome is ok."""
        with HttpVerifier(hmac_secret=SECRET, clock=clock, repeat_status=409) as collector:
            sink = hmac_sink(tmp_path, collector.url, clock)
            group = make_group()
            assert sink.send(group).kind == "ok"
            outcome = sink.send(group)
        assert outcome.kind == "ok" and "already has pack" in outcome.reason and collector.repeats == 1

    def test_connection_refused_is_retry(self, tmp_path: Path, clock: FixedClock) -> None:
        """If nothing listens at the url, then the outcome is retry, and the url's token stays out of the reason."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        sink = hmac_sink(tmp_path, f"http://user:pw-SECRET@127.0.0.1:{port}/ingest?token=TOKEN-SECRET", clock)
        outcome = sink.send(make_group())
        assert outcome.kind == "retry" and "refused" in outcome.reason and "no answer" not in outcome.reason
        assert "SECRET" not in outcome.reason and f"127.0.0.1:{port}" in outcome.reason
        assert "SECRET" not in repr(sink) and "SECRET" not in sink.url

    def test_no_answer_in_time_is_retry(self, tmp_path: Path, clock: FixedClock) -> None:
        """If the collector accepts the connection but never answers, then the outcome is retry once
        ``timeout_seconds`` have passed, naming the timeout."""
        with socket.socket() as listening:
            listening.bind(("127.0.0.1", 0))
            listening.listen()
            sink = hmac_sink(tmp_path, f"http://127.0.0.1:{listening.getsockname()[1]}/ingest", clock, timeout_seconds=0.5)
            started = time.monotonic()
            outcome = sink.send(make_group())
        assert outcome.kind == "retry" and "no answer within 0.5 s" in outcome.reason
        assert time.monotonic() - started < 5

    def test_a_redirect_is_not_followed(self, tmp_path: Path, clock: FixedClock) -> None:
        """If the collector answers with a redirect, then the sink does not follow it (the signature covers
        the target URI): the outcome is the redirect's, and nothing else is asked, not even of the same server."""
        with Recorder(307) as server:
            server.location = f"http://127.0.0.1:{server.port}/elsewhere"
            sink = hmac_sink(tmp_path, f"http://127.0.0.1:{server.port}/ingest", clock)
            outcome = sink.send(make_group())
        assert outcome.kind == "not-deliverable" and outcome.reason.startswith("307") and "/elsewhere" in outcome.reason
        assert [target for target, _, _ in server.seen] == ["/ingest"]

    def test_the_environments_proxy_carries_requests(
        self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If HTTP_PROXY names a proxy (and NO_PROXY does not exempt the collector), then requests go through
        it, as with any HTTP client an operator configures by environment, and still verify; the url's user
        information is not in the request line the proxy sees."""
        with Recorder(forward=True) as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            sink = hmac_sink(tmp_path, collector.url.replace("http://", "http://user:pw@") + "#not-sent", clock)
            outcome = sink.send(make_group())
        assert outcome.kind == "ok", outcome.reason
        assert [target for target, _, _ in proxy.seen] == [collector.url]  # no user information, no fragment
        assert collector.refusals == [] and len(collector.batches) == 1

    def test_sends_the_bytes_requests_sent(self, tmp_path: Path, clock: FixedClock) -> None:
        """If the sink sends a group, then the collector gets the request line, headers (in their order) and
        body that requests sent for the same request, when the sink sent with requests."""
        with Recorder() as server:
            url = f"http://user:pw@127.0.0.1:{server.port}/in%67est/caf\u00e9?q=%41#frag"
            sink = hmac_sink(tmp_path, url, clock)
            assert sink.send(make_group()).kind == "ok"
            request = sink.build_request(make_group())  # the same clock: the same signature
            with requests.Session() as session:
                session.post(request.url, data=request.body, headers=request.headers, timeout=10, allow_redirects=False)
        (ours, our_headers, our_body), (theirs, their_headers, their_body) = server.seen
        assert (ours, our_body) == (theirs, their_body) and ours == "/ingest/caf%C3%A9?q=A"
        # requests offers br and zstd too when their modules are installed; the sink, what it always offered.
        assert our_headers.pop("accept-encoding") == "gzip, deflate"
        their_headers.pop("accept-encoding")
        assert list(our_headers.items()) == list(their_headers.items())

    def test_user_information_is_basic_auth(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the url carries user:password@, then the request carries the Basic credentials requests made of
        them, and the request line does not carry them."""
        url = collector.url.replace("http://", "http://us%C3%A9r:p%40ss%3Aw@")
        sink = hmac_sink(tmp_path, url, clock)
        assert sink.send(make_group()).kind == "ok"
        [request] = collector.requests
        assert request.headers["authorization"] == requests.Request("POST", url).prepare().headers["Authorization"]
        assert request.headers["authorization"] == "Basic " + base64.b64encode("usér:p@ss:w".encode("latin-1")).decode()
        assert request.path == "/ingest"

    def test_timeout_is_retry(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the collector answers later than timeout_seconds, then the outcome is retry."""
        sink = hmac_sink(tmp_path, collector.url, clock, timeout_seconds=0.2)
        collector.delay_next(1, 1.0)
        outcome = sink.send(make_group())
        assert outcome.kind == "retry" and "no answer within 0.2 s" in outcome.reason

    def test_secret_not_in_repr_or_reasons(self, tmp_path: Path, clock: FixedClock) -> None:
        """If the sink is printed or refused, then the secret appears nowhere."""
        with HttpVerifier(hmac_secret=b"x" * 32, clock=clock) as collector:
            sink = hmac_sink(tmp_path, collector.url, clock)
            outcome = sink.send(make_group())
        for text in (repr(sink), outcome.reason, repr(sink.build_request(make_group())), repr(sink._key)):
            assert SECRET.decode() not in text

    def test_bad_url_is_refused_at_start(self, tmp_path: Path) -> None:
        """If the url is not http(s), then the sink does not start."""
        with pytest.raises(HttpSinkError, match="http:// or https://"):
            HttpSink(HttpSinkConfig(name="c", url="ftp://example.com/x", signature="none"))
        with pytest.raises(HttpSinkError, match="port"):
            HttpSink(HttpSinkConfig(name="c", url="http://example.com:99999/x", signature="none"))


class TestVerifierRefuses:
    """The test collector itself: it must refuse what a real one refuses, or the tests above prove nothing."""

    def post(self, collector: HttpVerifier, url: str, headers: dict[str, str], body: bytes) -> requests.Response:
        return requests.post(url, data=body, headers=headers, timeout=10)

    def test_tampered_body(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the body is changed after signing, then the collector answers 401 for the digest."""
        request = hmac_sink(tmp_path, collector.url, clock, gzip=False).build_request(make_group())
        body = request.body.replace(b"message 0", b"message X")
        assert self.post(collector, request.url, request.headers, body).status_code == 401
        assert collector.refusals == ["content-digest: Content-Digest does not match the message body"]

    def test_tampered_body_with_fixed_digest(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If body and digest are both changed, then the signature over the digest fails."""
        request = hmac_sink(tmp_path, collector.url, clock, gzip=False).build_request(make_group())
        body = request.body.replace(b"message 0", b"message X")
        headers = dict(request.headers, **{"Content-Digest": ContentDigest.create(body)})
        assert self.post(collector, request.url, headers, body).status_code == 401
        assert collector.refusals == ["signature mismatch (hmac-sha256)"]

    @pytest.mark.parametrize("header", ["Idempotency-Key", "X-Receiver-Tags", "Content-Type"])
    def test_tampered_header(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock, header: str) -> None:
        """If a covered header is changed, then the collector answers 401."""
        request = hmac_sink(tmp_path, collector.url, clock).build_request(make_group())
        headers = dict(request.headers)
        headers[header] = headers[header].replace("7", "8").replace("ndjson", "json")
        assert self.post(collector, request.url, headers, request.body).status_code == 401
        assert collector.refusals == ["signature mismatch (hmac-sha256)"]

    def test_uncovered_receiver_header(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If an X-Receiver-* header is added that the signature does not cover, then the collector refuses it."""
        request = hmac_sink(tmp_path, collector.url, clock).build_request(make_group())
        headers = dict(request.headers, **{"X-Receiver-Extra": "1"})
        assert self.post(collector, request.url, headers, request.body).status_code == 401
        assert collector.refusals == ['Required component "x-receiver-extra" was not covered by the signature']

    def test_unsigned(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If the signature headers are stripped, then the collector answers 401."""
        request = hmac_sink(tmp_path, collector.url, clock).build_request(make_group())
        headers = {k: v for k, v in request.headers.items() if not k.startswith("Signature")}
        assert self.post(collector, request.url, headers, request.body).status_code == 401


def test_throughput(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Measure: 200,000 records in groups of 4096, signed and gzipped, to the verifying collector (not asserted)."""
    total, size = 200_000, 4096
    groups = [
        make_group(min(size, total - start), pack_id=f"P-{start:X}-0", start=start) for start in range(0, total, size)
    ]
    with HttpVerifier(hmac_secret=SECRET, keep_records=False, keep_requests=False) as collector:
        sink = HttpSink(HttpSinkConfig(name="bench", url=collector.url, key_file=key_file(tmp_path, SECRET)))
        build_started = time.perf_counter()
        for group in groups[:5]:
            sink.build_request(group)
        build_seconds = (time.perf_counter() - build_started) / 5
        started = time.perf_counter()
        cpu_started = time.process_time()
        outcomes = [sink.send(group).kind for group in groups]
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        sink.close()
    assert outcomes == ["ok"] * len(groups) and collector.accepted_records == total
    with capsys.disabled():
        print(
            f"\nhttp sink: {total} records in {len(groups)} requests in {elapsed:.2f} s = {total / elapsed:,.0f} records/s "
            f"end to end (collector in the same process: {cpu:.2f} s CPU); "
            f"building one 4096-record request (NDJSON+gzip+sign): {build_seconds * 1000:.1f} ms "
            f"= {size / build_seconds:,.0f} records/s"
        )


# --- The example in docs/sinks/http.md is a test vector: keep it true ----------------------------------

DOC = Path(__file__).parents[2] / "docs" / "sinks" / "http.md"
DOC_SECRET = b"example-secret-do-not-use-0123456789"
DOC_CREATED = 1795323670


def doc_example(tmp_path: Path) -> HttpRequest:
    """The request of the documentation's example."""
    records = [
        Record(1795323666, 123000000, ("_program_", "_hostname_", "_severity_", "_content_"),
               ["todo-list", "web-1", "6", "order 1041 shipped"], "10.0.0.7", {}),
        Record(1795323667, 5000000, ("_program_", "_hostname_", "_severity_", "_content_"),
               ["todo-list", "web-1", "3", "payment gateway timeout"], "10.0.0.7", {}),
    ]
    tags = [
        ("__client_ip__", "10.0.0.7"), ("__receive_time__", "1795323666"), ("__hostname__", "appliance-1"),
        ("__machine_group__", "web"), ("__pack_id__", "3F2A9C0B5D7E1184-1A00000000"),
    ]
    group = Group("app-logs", "10.0.0.7", "10.0.0.7", records, tags, "3F2A9C0B5D7E1184-1A00000000")
    config = HttpSinkConfig(
        name="collector", url="https://collector.example.com/v1/logs", gzip=False,
        key_file=key_file(tmp_path, DOC_SECRET + b"\n", name="doc.key"),
    )
    return open_sink(config, FixedClock(DOC_CREATED)).build_request(group)


def doc_example_request(tmp_path: Path) -> str:
    """The request of the documentation's example, as text (User-Agent left out: it names the version)."""
    request = doc_example(tmp_path)
    lines = ["POST /v1/logs HTTP/1.1", "Host: collector.example.com"]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name != "User-Agent"]
    lines += [f"Content-Length: {len(request.body)}", ""]
    return "\n".join(lines) + "\n" + request.body.decode()


def test_documented_example_is_what_the_sink_sends(tmp_path: Path) -> None:
    """If the sink signs the documented example with the documented secret, then it sends the documented request."""
    assert doc_example_request(tmp_path) in DOC.read_text()


class TestDocumentedCollector:
    """The Python collector of docs/sinks/http.md, run as written against the documented example."""

    @pytest.fixture
    def verify(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str], bytes], None]:
        code = DOC.read_text().split("```python\n", 1)[1].split("```", 1)[0]
        key_file(tmp_path, DOC_SECRET + b"\n", name="collector.key")
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, Any] = {}
        exec(compile(code, str(DOC), "exec"), namespace)
        # The example was signed at a fixed time, which the wall clock has left behind: its age is not checked here.
        monkeypatch.setattr(namespace["VERIFIER"], "validate_created_and_expires", lambda sig_input, max_age=None: None)
        verify: Callable[[dict[str, str], bytes], None] = namespace["verify"]
        return verify

    def test_accepts_the_example(self, tmp_path: Path, verify: Callable[[dict[str, str], bytes], None]) -> None:
        """If the documented collector gets the documented request, then it accepts it."""
        request = doc_example(tmp_path)
        verify({name.lower(): value for name, value in request.headers.items()}, request.body)

    @pytest.mark.parametrize(
        ("header", "old", "new"),
        [("content-type", "ndjson", "json"), ("idempotency-key", "1A", "1B"), ("x-receiver-tags", "web", "db"), ("signature", "J+", "K+")],
    )
    def test_refuses_a_changed_header(
        self, tmp_path: Path, verify: Callable[[dict[str, str], bytes], None], header: str, old: str, new: str
    ) -> None:
        """If a signed header (or the signature) is changed, then the documented collector refuses the request."""
        request = doc_example(tmp_path)
        headers = {name.lower(): value for name, value in request.headers.items()}
        assert old in headers[header]
        headers[header] = headers[header].replace(old, new)
        with pytest.raises(InvalidSignature):
            verify(headers, request.body)

    def test_refuses_a_changed_body_or_an_uncovered_receiver_header(
        self, tmp_path: Path, verify: Callable[[dict[str, str], bytes], None]
    ) -> None:
        """If the body is changed, or an X-Receiver-* header is added, then the documented collector refuses the request."""
        request = doc_example(tmp_path)
        headers = {name.lower(): value for name, value in request.headers.items()}
        with pytest.raises(InvalidSignature):
            verify(headers, request.body.replace(b"shipped", b"lost"))
        with pytest.raises(InvalidSignature):
            verify(dict(headers, **{"x-receiver-extra": "1"}), request.body)
