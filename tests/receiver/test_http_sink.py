"""The HTTP sink: RFC 9421 signatures and RFC 9530 digests, then requests to a verifying collector.

The signature code is held to the RFC 9421 appendix B vectors (B.2.5 and
B.2.6, with the RFC's own keys from B.1.4 and B.1.5) and the RFC 9530 digest
example; the sink is driven end to end against tests/support/http_verifier.py,
which checks signatures with code of its own.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from formats.ndjson import decode_ndjson
from formats.record import Record
from receiver.config.model import HttpSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.sinks.http import (
    COVERED_COMPONENTS,
    MAX_RETRY_AFTER_SECONDS,
    HttpSink,
    HttpSinkError,
    classify_response,
    load_signing_key,
    parse_retry_after,
)
from receiver.deliver.sinks.http_signatures import (
    Ed25519SigningKey,
    Ed25519VerifyKey,
    HmacSha256Key,
    RequestView,
    SignatureError,
    SignatureKeyError,
    SignatureParams,
    Token,
    check_content_digest,
    content_digest,
    normalize_target_uri,
    parse_dictionary,
    serialize_dictionary,
    sign_request,
    signature_base,
    verify_request,
)
from tests.support.http_verifier import HttpVerifier

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
RFC_REQUEST = RequestView(
    "POST",
    "https://example.com/foo?param=Value&Pet=dog",
    {
        "Host": "example.com",
        "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "Content-Type": "application/json",
        "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        "Content-Length": "18",
    },
)
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
    def test_rfc9530_example(self) -> None:
        """If the body is RFC 9530's example, then the sha-256 digest is the RFC's."""
        assert content_digest(RFC_BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"

    def test_checks_sha512_of_rfc9421_test_request(self) -> None:
        """If the digest is the RFC 9421 test-request's sha-512, then it checks against its body."""
        check_content_digest(RFC_REQUEST.headers["content-digest"], RFC_BODY)

    def test_altered_body_is_refused(self) -> None:
        """If one byte of the body changes, then the digest no longer checks."""
        with pytest.raises(SignatureError, match="does not match"):
            check_content_digest(content_digest(RFC_BODY), RFC_BODY.replace(b"world", b"World"))

    def test_unknown_algorithms_are_ignored_but_one_known_is_needed(self) -> None:
        """If only unknown algorithms are given, then the digest is refused; beside a known one they are ignored."""
        check_content_digest("md5=:AAAA:, " + content_digest(RFC_BODY), RFC_BODY)
        with pytest.raises(SignatureError, match="no sha-256"):
            check_content_digest("md5=:AAAA:", RFC_BODY)

    @pytest.mark.parametrize("value", ["sha-256=X48E9", "sha-256=:not base64!:", "sha-256=:AAAA:,", ""])
    def test_malformed_digest_is_refused(self, value: str) -> None:
        """If the header is not a dictionary of byte sequences, then it is refused."""
        with pytest.raises(SignatureError):
            check_content_digest(value, RFC_BODY)


# --- RFC 8941 -----------------------------------------------------------------------------------


class TestStructuredFields:
    def test_round_trip_of_a_signature_input(self) -> None:
        """If a Signature-Input is parsed and serialised, then the text is unchanged."""
        assert serialize_dictionary(parse_dictionary(B26_INPUT)) == B26_INPUT

    def test_types(self) -> None:
        """If members of every bare type are parsed, then each comes back as its Python type."""
        parsed = parse_dictionary('a=1, b="x\\"y", c=tok/en, d=:AQI=:, e=?0, f, g=-2.5;p;q="v"')
        assert parsed["a"] == (1, {})
        assert parsed["b"] == ('x"y', {})
        assert parsed["c"] == (Token("tok/en"), {}) and isinstance(parsed["c"][0], Token)
        assert parsed["d"] == (b"\x01\x02", {})
        assert parsed["e"] == (False, {})
        assert parsed["f"] == (True, {})
        assert parsed["g"] == (-2.5, {"p": True, "q": "v"})
        assert serialize_dictionary(parsed) == 'a=1, b="x\\"y", c=tok/en, d=:AQI=:, e=?0, f, g=-2.5;p;q="v"'

    @pytest.mark.parametrize(
        "text",
        ["a=1,", "A=1", 'a="unterminated', 'a="bad \\escape"', "a=(1 2", "a=1 b=2", 'a="é"', "a=:AQI", "a=?2"],
    )
    def test_malformed_is_refused(self, text: str) -> None:
        """If a dictionary breaks RFC 8941, then parsing raises SignatureError."""
        with pytest.raises(SignatureError):
            parse_dictionary(text)

    def test_strings_must_be_printable_ascii(self) -> None:
        """If a string holds a control character or non-ASCII, then it cannot be serialised."""
        with pytest.raises(SignatureError):
            serialize_dictionary({"a": ("line\nbreak", {})})
        with pytest.raises(SignatureError):
            serialize_dictionary({"a": ("é", {})})


# --- RFC 9421 -----------------------------------------------------------------------------------


class TestRfc9421Vectors:
    def test_b25_hmac_sha256(self) -> None:
        """If the B.2.5 signature is made with test-shared-secret, then base and headers are the RFC's."""
        params = SignatureParams(("date", "@authority", "content-type"), created=1618884473, keyid="test-shared-secret")
        assert signature_base(RFC_REQUEST, params) == B25_BASE
        key = HmacSha256Key(RFC_SHARED_SECRET)
        assert base64.b64encode(key.sign(B25_BASE)).decode() == B25_SIGNATURE_B64
        verify_request(RFC_REQUEST, B25_INPUT, B25_SIGNATURE, {"test-shared-secret": key})

    def test_b26_ed25519(self) -> None:
        """If the B.2.6 signature is made with test-key-ed25519, then base and signature are the RFC's."""
        params = SignatureParams(
            ("date", "@method", "@path", "@authority", "content-type", "content-length"),
            created=1618884473, keyid="test-key-ed25519",
        )
        assert signature_base(RFC_REQUEST, params) == B26_BASE
        key = Ed25519SigningKey.from_pem(RFC_ED25519_PRIVATE)
        assert base64.b64encode(key.sign(B26_BASE)).decode() == B26_SIGNATURE_B64
        public = Ed25519VerifyKey.from_pem(RFC_ED25519_PUBLIC)
        verify_request(RFC_REQUEST, B26_INPUT, B26_SIGNATURE, {"test-key-ed25519": public})

    def test_sign_request_writes_the_rfc_header_text(self) -> None:
        """If sign_request signs as B.2.6 (with alg added), then it verifies with the RFC's public key."""
        key = Ed25519SigningKey.from_pem(RFC_ED25519_PRIVATE)
        signature_input, signature = sign_request(
            RFC_REQUEST, key, components=("date", "@method", "@path", "@authority", "content-type", "content-length"),
            created=1618884473, keyid="test-key-ed25519", label="sig-b26",
        )
        assert signature_input == B26_INPUT + ';alg="ed25519"'
        verify_request(RFC_REQUEST, signature_input, signature, {"test-key-ed25519": Ed25519VerifyKey.from_pem(RFC_ED25519_PUBLIC)})

    def test_b25_refused_with_another_secret(self) -> None:
        """If the B.2.5 signature is checked with another secret, then it is refused."""
        with pytest.raises(SignatureError, match="does not match"):
            verify_request(RFC_REQUEST, B25_INPUT, B25_SIGNATURE, {"test-shared-secret": HmacSha256Key(b"other")})


class TestDerivedComponents:
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

    def test_values(self) -> None:
        """If each derived component is covered, then its value is RFC 9421 section 2.2's."""
        request = RequestView("POST", "https://www.example.com:8443/path?param=value", {})
        params = SignatureParams(("@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"))
        lines = signature_base(request, params).decode().split("\n")
        assert lines[:-1] == [
            '"@method": POST',
            '"@target-uri": https://www.example.com:8443/path?param=value',
            '"@authority": www.example.com:8443',
            '"@scheme": https',
            '"@request-target": /path?param=value',
            '"@path": /path',
            '"@query": ?param=value',
        ]

    @pytest.mark.parametrize(
        ("components", "error"),
        [(("absent",), "not in the request"), (("@status",), "not supported"), (("Date",), "lower case")],
    )
    def test_bad_components(self, components: tuple[str, ...], error: str) -> None:
        """If a component is absent, response-only or not lower case, then no base is made."""
        with pytest.raises(SignatureError, match=error):
            signature_base(RFC_REQUEST, SignatureParams(components))

    def test_component_parameters_are_refused(self) -> None:
        """If a covered component carries parameters (;sf, ;key...), then verification refuses rather than ignore them."""
        with pytest.raises(SignatureError, match="component parameters"):
            verify_request(
                RFC_REQUEST, 'sig1=("date";sf);keyid="k"', "sig1=:AAAA:", {"k": HmacSha256Key(b"x")}
            )


def signed(key: HmacSha256Key | Ed25519SigningKey, headers: dict[str, str] | None = None) -> tuple[RequestView, str, str]:
    body = b'{"n":1}\n'
    headers = headers or {
        "Content-Type": "application/x-ndjson",
        "Content-Digest": content_digest(body),
        "Idempotency-Key": "P-1-0",
    }
    request = RequestView("POST", "http://127.0.0.1:9000/ingest", headers)
    signature_input, signature = sign_request(
        request, key, components=("@method", "@target-uri", "content-digest", "content-type", "idempotency-key"),
        created=int(NOW), keyid="receiver",
    )
    return request, signature_input, signature


class TestSignVerify:
    @pytest.mark.parametrize("algorithm", ["hmac-sha256", "ed25519"])
    def test_round_trip(self, algorithm: str) -> None:
        """If a request is signed, then it verifies with the matching key and gives back its parameters."""
        key: HmacSha256Key | Ed25519SigningKey
        check: HmacSha256Key | Ed25519VerifyKey
        if algorithm == "hmac-sha256":
            key = check = HmacSha256Key(SECRET)
        else:
            key = Ed25519SigningKey(Ed25519PrivateKey.generate())
            check = key.verify_key()
        request, signature_input, signature = signed(key)
        params = verify_request(request, signature_input, signature, {"receiver": check}, now=NOW, max_age_seconds=300)
        assert params.alg == algorithm and params.keyid == "receiver" and params.created == int(NOW)
        assert params.components[0] == "@method"

    @pytest.mark.parametrize("algorithm", ["hmac-sha256", "ed25519"])
    def test_tampered_header_is_refused(self, algorithm: str) -> None:
        """If a covered header is changed after signing, then the signature no longer matches."""
        key = HmacSha256Key(SECRET) if algorithm == "hmac-sha256" else Ed25519SigningKey(Ed25519PrivateKey.generate())
        request, signature_input, signature = signed(key)
        request.headers["idempotency-key"] = "P-1-1"
        check = key if isinstance(key, HmacSha256Key) else key.verify_key()
        with pytest.raises(SignatureError, match="does not match"):
            verify_request(request, signature_input, signature, {"receiver": check})

    def test_tampered_method_and_target_are_refused(self) -> None:
        """If the method or the URI changes, then the signature no longer matches."""
        key = HmacSha256Key(SECRET)
        request, signature_input, signature = signed(key)
        for other in (
            RequestView("PUT", request.target_uri, request.headers),
            RequestView("POST", "http://127.0.0.1:9000/other", request.headers),
        ):
            with pytest.raises(SignatureError, match="does not match"):
                verify_request(other, signature_input, signature, {"receiver": key})

    def test_wrong_key_is_refused(self) -> None:
        """If the verifier holds another key of the same kind, then the signature is refused."""
        request, signature_input, signature = signed(Ed25519SigningKey(Ed25519PrivateKey.generate()))
        other = Ed25519SigningKey(Ed25519PrivateKey.generate()).verify_key()
        with pytest.raises(SignatureError, match="does not match"):
            verify_request(request, signature_input, signature, {"receiver": other})
        request, signature_input, signature = signed(HmacSha256Key(SECRET))
        with pytest.raises(SignatureError, match="does not match"):
            verify_request(request, signature_input, signature, {"receiver": HmacSha256Key(SECRET + b"x")})

    def test_alg_must_match_the_key(self) -> None:
        """If the signature says hmac-sha256 but the keyid names an Ed25519 key, then it is refused."""
        request, signature_input, signature = signed(HmacSha256Key(SECRET))
        other = Ed25519SigningKey(Ed25519PrivateKey.generate()).verify_key()
        with pytest.raises(SignatureError, match="alg"):
            verify_request(request, signature_input, signature, {"receiver": other})

    def test_unknown_keyid_and_label(self) -> None:
        """If the keyid or the label is unknown, then it is refused."""
        request, signature_input, signature = signed(HmacSha256Key(SECRET))
        with pytest.raises(SignatureError, match="keyid"):
            verify_request(request, signature_input, signature, {"someone-else": HmacSha256Key(SECRET)})
        with pytest.raises(SignatureError, match="no signature labelled"):
            verify_request(request, signature_input, signature, {"receiver": HmacSha256Key(SECRET)}, label="sig2")

    def test_required_components(self) -> None:
        """If the policy requires a component the signature leaves out, then it is refused."""
        request, signature_input, signature = signed(HmacSha256Key(SECRET))
        with pytest.raises(SignatureError, match="does not cover content-encoding"):
            verify_request(
                request, signature_input, signature, {"receiver": HmacSha256Key(SECRET)},
                required_components=("content-digest", "content-encoding"),
            )

    @pytest.mark.parametrize(("now", "error"), [(NOW + 301, "older than"), (NOW - 61, "future")])
    def test_created_window(self, now: float, error: str) -> None:
        """If the signature is too old or from the future, then it is refused."""
        request, signature_input, signature = signed(HmacSha256Key(SECRET))
        with pytest.raises(SignatureError, match=error):
            verify_request(
                request, signature_input, signature, {"receiver": HmacSha256Key(SECRET)}, now=now, max_age_seconds=300
            )

    def test_keys_hide_their_secrets(self) -> None:
        """If a key is printed, then neither the secret nor the private key shows."""
        assert SECRET.decode() not in repr(HmacSha256Key(SECRET))
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        text = repr(Ed25519SigningKey(private))
        assert raw.hex() not in text and base64.b64encode(raw).decode() not in text

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
        assert key is not None and key.sign(b"base") == HmacSha256Key(SECRET).sign(b"base")

    def test_only_one_newline_is_taken(self, tmp_path: Path) -> None:
        """If the secret ends in two newlines, then only the last is taken off."""
        key = load_signing_key("hmac-sha256", key_file(tmp_path, SECRET + b"\n\n"))
        assert key is not None and key.sign(b"base") == HmacSha256Key(SECRET + b"\n").sign(b"base")

    def test_ed25519_pem(self, tmp_path: Path) -> None:
        """If the file holds an Ed25519 PEM private key, then its signatures verify with the public half."""
        private = Ed25519PrivateKey.generate()
        key = load_signing_key("ed25519", key_file(tmp_path, ed25519_pem(private)))
        assert key is not None and key.alg == "ed25519"
        private.public_key().verify(key.sign(b"base"), b"base")

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
        assert request.headers["content-digest"] == content_digest(request.body)
        assert decode_ndjson(gzip.decompress(request.body)) == batch.records
        assert request.headers["signature-input"] == (
            'sig1=("@method" "@target-uri" "content-digest" "content-type" "content-encoding" "idempotency-key" '
            '"x-receiver-destination" "x-receiver-source" "x-receiver-tags");'
            f'created={int(NOW)};keyid="receiver";alg="hmac-sha256"'
        )

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
        assert collector.refusals == ["unknown keyid someone-else"]

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
        assert outcome.kind == "retry"
        assert "SECRET" not in outcome.reason and f"127.0.0.1:{port}" in outcome.reason
        assert "SECRET" not in repr(sink) and "SECRET" not in sink.url

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
        assert collector.refusals == ["content-digest mismatch"]

    def test_tampered_body_with_fixed_digest(self, tmp_path: Path, collector: HttpVerifier, clock: FixedClock) -> None:
        """If body and digest are both changed, then the signature over the digest fails."""
        request = hmac_sink(tmp_path, collector.url, clock, gzip=False).build_request(make_group())
        body = request.body.replace(b"message 0", b"message X")
        headers = dict(request.headers, **{"Content-Digest": content_digest(body)})
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
        assert "does not cover" in collector.refusals[0]

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


def doc_example_request(tmp_path: Path) -> str:
    """The request of the documentation's example, as text (User-Agent left out: it names the version)."""
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
    request = open_sink(config, FixedClock(1795323670.0)).build_request(group)
    lines = ["POST /v1/logs HTTP/1.1", "Host: collector.example.com"]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name != "User-Agent"]
    lines += [f"Content-Length: {len(request.body)}", ""]
    return "\n".join(lines) + "\n" + request.body.decode()


def test_documented_example_is_what_the_sink_sends(tmp_path: Path) -> None:
    """If the sink signs the documented example with the documented secret, then it sends the documented request."""
    assert doc_example_request(tmp_path) in DOC.read_text()
