"""Cosmonaut's authentication to the registry: SigV4 (botocore's signer) and bearer tokens.

The SigV4 checks run against a local HTTPS server that verifies signatures as AWS does, with
botocore and known test credentials: it rebuilds the request from what it received (method,
path, the signed headers, the body), signs it again with the secret it knows and the
``X-Amz-Date`` it was sent, and compares. The requests are addressed to real API Gateway and
function URL host names (what the signature covers) and delivered to loopback
(``RemoteRegistry(connect_to=...)``). Both ends are botocore, so AWS's published SigV4 test
suite is the oracle outside it: our signer and that verifier must reproduce its signatures.
"""

from __future__ import annotations

import datetime
import hmac
import json
import re
import ssl
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cosmonaut.cli import main as cosmonaut_main
from cosmonaut.errors import RegistryError, RegistryUnavailable, UsageError
from cosmonaut.registry.auth import (
    AwsEndpoint,
    BearerToken,
    SigV4Signer,
    aws_endpoint,
    registry_auth,
)
from cosmonaut.registry.remote import RemoteRegistry
from tests.support.net import ServedHttp
from tests.support.tls_certs import make_cert

ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
API_URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod/registry"
FUNCTION_URL = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-2.on.aws/"
PAYLOAD = {"table": "web-eu-1", "running": [], "candidates": []}
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def verify_sigv4(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str,
    service: str,
    region: str,
    now: datetime.datetime | None = None,
) -> str | None:
    """``None`` if the request is signed by ``ACCESS_KEY`` with ``secret`` for ``service`` in
    ``region``, at most 5 minutes from ``now`` (the clock's), else why not. ``headers`` have
    lower-cased names."""
    match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if match is None:
        return "no SigV4 Authorization header"
    if match["key"] != ACCESS_KEY:
        return "unknown access key"
    if (match["region"], match["service"]) != (region, service):
        return f"scope {match['region']}/{match['service']}, expected {region}/{service}"
    stamp = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return "no X-Amz-Date"
    if (
        stamp[:8] != match["day"]
        or abs(((now or datetime.datetime.now(datetime.UTC)) - when).total_seconds()) > 300
    ):
        return "stale or inconsistent date"
    names = match["signed"].split(";")
    if "host" not in names or "x-amz-date" not in names or not set(names) <= set(headers):
        return f"signed headers {names} do not cover what they must"
    request = AWSRequest(
        method=method,
        url=f"https://{headers['host']}{path}",
        data=body,
        headers={name: headers[name] for name in names},
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(ACCESS_KEY, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        return "signature mismatch"
    return None


class SigV4Endpoint:
    """An HTTPS server on loopback that answers 200 to correctly signed requests and 403
    (as API Gateway words it) to the rest; ``fail_first`` correctly signed requests get 503
    first. ``seen`` records each request's headers and verdict."""

    def __init__(self, cert: Path, key: Path, *, service: str, region: str) -> None:
        self.service, self.region = service, region
        self.fail_first = 0
        self.seen: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                verdict = verify_sigv4(
                    "POST", self.path, headers, body, secret=SECRET, service=service, region=region
                )
                endpoint.seen.append({"headers": headers, "verdict": verdict, "body": body})
                if verdict is not None:
                    status, kind = 403, "application/json"
                    answer = json.dumps({"message": f"Forbidden: {verdict}"}).encode()
                elif endpoint.fail_first > 0:
                    endpoint.fail_first -= 1
                    status, kind, answer = 503, "application/json", b'{"message": "busy"}'
                else:
                    status, kind, answer = 200, "text/plain; charset=utf-8", b"global\n"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.served = ServedHttp(Handler, context=context)
        self.port = self.served.port

    def stop(self) -> None:
        self.served.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The AWS credential chain sees the test credentials and nothing of this machine."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return monkeypatch


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cert, key = make_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts it, the standard way
    return cert, key


def _endpoint(certificate: tuple[Path, Path], url: str) -> Iterator[SigV4Endpoint]:
    found = aws_endpoint(url)
    assert found is not None and found.region is not None
    server = SigV4Endpoint(*certificate, service=found.service, region=found.region)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api_gateway(certificate: tuple[Path, Path]) -> Iterator[SigV4Endpoint]:
    yield from _endpoint(certificate, API_URL)


@pytest.fixture
def function_url(certificate: tuple[Path, Path]) -> Iterator[SigV4Endpoint]:
    yield from _endpoint(certificate, FUNCTION_URL)


def _remote(url: str, endpoint: SigV4Endpoint, **options: Any) -> RemoteRegistry:
    """Cosmonaut's client as ``--registry-url URL`` builds it (default auth), delivering to
    the local endpoint."""
    auth = registry_auth(None, url)
    return RemoteRegistry(url, auth=auth, connect_to=("127.0.0.1", endpoint.port), **options)


# -- which service, which region ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "service", "region"),
    [
        (API_URL, "execute-api", "eu-west-1"),
        ("https://abc123.execute-api.us-gov-west-1.amazonaws.com/", "execute-api", "us-gov-west-1"),
        ("https://abc123.execute-api.cn-north-1.amazonaws.com.cn/x", "execute-api", "cn-north-1"),
        (
            "https://a1-vpce-0a1b2c.execute-api.eu-central-1.amazonaws.com/",
            "execute-api",
            "eu-central-1",
        ),
        ("HTTPS://ABC123.EXECUTE-API.EU-WEST-1.AMAZONAWS.COM/", "execute-api", "eu-west-1"),
        (FUNCTION_URL, "lambda", "us-east-2"),
        ("https://registry.example.com/", None, None),
        ("http://127.0.0.1:8080/", None, None),
        ("https://execute-api.eu-west-1.amazonaws.com.evil.example/", None, None),
        ("https://abc.lambda-url.eu-west-1.on.aws.evil.example/", None, None),
    ],
)
def test_aws_endpoint_from_the_url(url: str, service: str | None, region: str | None) -> None:
    expected = AwsEndpoint(service, region) if service else None
    assert aws_endpoint(url) == expected


# -- SigV4: AWS's published test suite --------------------------------------------------------

# AWS's Signature Version 4 test suite (https://docs.aws.amazon.com/general/latest/gr/
# signature-v4-test-suite.html), as AWS's own JavaScript SDK carries it:
# aws/aws-sdk-js-v3, packages/signature-v4/src/suite.fixture.ts (get-vanilla also in
# awslabs/aws-c-auth, tests/aws-signing-test-suite/v4/). Every vector signs with AKIDEXAMPLE,
# the SECRET above, at 20150830T123600Z, for the service "service" in us-east-1. The
# signatures are AWS's, not botocore's: they hold our signer (and the verifier above, both
# built on botocore) to what AWS computes.
SUITE_TIME = datetime.datetime(2015, 8, 30, 12, 36, 0)
SUITE_SCOPE = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
SUITE_STS_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmx"
    "fpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0K"
    "PkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbq"
    "BAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
HOST = "https://example.amazonaws.com"
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
FORM = "application/x-www-form-urlencoded"
# (name, method, URL, headers given to the signer, body, session token, signed headers,
# signature)
SUITE = [
    ("get-vanilla", "GET", "/", {}, b"", None, "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-key-case", "GET", "/?Param2=value2&Param1=value1", {}, b"", None,
     "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("get-vanilla-empty-query-key", "GET", "/?Param1=value1", {}, b"", None, "host;x-amz-date",
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
    ("get-vanilla-query-unreserved", "GET", f"/?{UNRESERVED}={UNRESERVED}", {}, b"", None,
     "host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
    # The query as it travels, percent-encoded (the signer encodes the path itself).
    ("get-vanilla-utf8-query", "GET", "/?%E1%88%B4=bar", {}, b"", None, "host;x-amz-date",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
    ("get-unreserved", "GET", f"/{UNRESERVED}", {}, b"", None, "host;x-amz-date",
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
    ("get-utf8", "GET", "/\u1234", {}, b"", None, "host;x-amz-date",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("get-header-value-trim", "GET", "/", {"My-Header1": "value1", "My-Header2": '"a   b   c"'},
     b"", None, "host;my-header1;my-header2;x-amz-date",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    ("post-vanilla", "POST", "/", {}, b"", None, "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("post-vanilla-query", "POST", "/?Param1=value1", {}, b"", None, "host;x-amz-date",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
    ("post-header-key-sort", "POST", "/", {"My-Header1": "value1"}, b"", None,
     "host;my-header1;x-amz-date",
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    ("post-header-value-case", "POST", "/", {"My-Header1": "VALUE1"}, b"", None,
     "host;my-header1;x-amz-date",
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
    ("post-x-www-form-urlencoded", "POST", "/", {"Content-Type": FORM}, b"Param1=value1", None,
     "content-type;host;x-amz-date",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ("post-x-www-form-urlencoded-parameters", "POST", "/",
     {"Content-Type": f"{FORM}; charset=utf8"}, b"Param1=value1", None,
     "content-type;host;x-amz-date",
     "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"),
    ("post-sts-header-before", "POST", "/", {}, b"", SUITE_STS_TOKEN,
     "host;x-amz-date;x-amz-security-token",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
]  # fmt: skip


@pytest.fixture
def suite_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's signer reads the time here: it is the suite's."""
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SUITE_TIME)


@pytest.mark.parametrize(
    ("method", "target", "given", "body", "token", "signed", "signature"),
    [pytest.param(*vector[1:], id=vector[0]) for vector in SUITE],
)
def test_sigv4_signer_matches_the_aws_test_suite(
    suite_clock: None,
    method: str,
    target: str,
    given: dict[str, str],
    body: bytes,
    token: str | None,
    signed: str,
    signature: str,
) -> None:
    signer = SigV4Signer("service", "us-east-1", Credentials(ACCESS_KEY, SECRET, token))
    added = signer.headers(method, HOST + target, given, body)
    assert added["X-Amz-Date"] == "20150830T123600Z"
    assert added["Authorization"] == (
        f"AWS4-HMAC-SHA256 {SUITE_SCOPE}, SignedHeaders={signed}, Signature={signature}"
    )
    if token is not None:
        assert added["X-Amz-Security-Token"] == token


@pytest.mark.parametrize(
    ("method", "target", "given", "body", "token", "signed", "signature"),
    [pytest.param(*vector[1:], id=vector[0]) for vector in SUITE if vector[5] is None],
)
def test_the_test_verifier_accepts_the_aws_test_suite(
    method: str,
    target: str,
    given: dict[str, str],
    body: bytes,
    token: str | None,
    signed: str,
    signature: str,
) -> None:
    """The endpoint's verifier above, held to AWS's signatures too: it accepts each signed
    request of the suite, and refuses it with one hex digit of the signature changed."""
    headers = {name.lower(): value for name, value in given.items()}
    headers["host"] = "example.amazonaws.com"
    headers["x-amz-date"] = "20150830T123600Z"
    authorization = f"AWS4-HMAC-SHA256 {SUITE_SCOPE}, SignedHeaders={signed}, Signature="
    check = {
        "secret": SECRET,
        "service": "service",
        "region": "us-east-1",
        "now": SUITE_TIME.replace(tzinfo=datetime.UTC),
    }
    headers["authorization"] = authorization + signature
    assert verify_sigv4(method, target, headers, body, **check) is None
    flipped = "0" if signature[-1] != "0" else "1"
    headers["authorization"] = authorization + signature[:-1] + flipped
    assert verify_sigv4(method, target, headers, body, **check) == "signature mismatch"


# -- SigV4 ------------------------------------------------------------------------------------


def test_sigv4_is_the_default_for_an_api_gateway_url_and_verifies(
    aws: pytest.MonkeyPatch, api_gateway: SigV4Endpoint
) -> None:
    remote = _remote(API_URL, api_gateway)
    assert isinstance(remote.auth, SigV4Signer)
    assert remote.compile(PAYLOAD).text == "global\n"
    [seen] = api_gateway.seen
    assert seen["verdict"] is None
    assert seen["headers"]["host"] == "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
    assert "/eu-west-1/execute-api/aws4_request" in seen["headers"]["authorization"]
    assert json.loads(seen["body"]) == PAYLOAD  # the exact bytes whose hash was signed


def test_sigv4_is_the_default_for_a_function_url_and_verifies(
    aws: pytest.MonkeyPatch, function_url: SigV4Endpoint
) -> None:
    assert _remote(FUNCTION_URL, function_url).compile(PAYLOAD).text == "global\n"
    [seen] = function_url.seen
    assert seen["verdict"] is None
    assert "/us-east-2/lambda/aws4_request" in seen["headers"]["authorization"]


def test_sigv4_with_a_wrong_secret_fails_and_is_not_retried(
    aws: pytest.MonkeyPatch, api_gateway: SigV4Endpoint
) -> None:
    aws.setenv("AWS_SECRET_ACCESS_KEY", "not-" + SECRET)
    remote = _remote(API_URL, api_gateway, retries=3, backoff=0.01)
    with pytest.raises(RegistryError, match="HTTP 403: Forbidden: signature mismatch"):
        remote.compile(PAYLOAD)
    assert remote.attempts == 1
    assert [seen["verdict"] for seen in api_gateway.seen] == ["signature mismatch"]


def test_the_verifier_refuses_what_the_signature_does_not_cover(
    aws: pytest.MonkeyPatch, api_gateway: SigV4Endpoint
) -> None:
    """The same signed request, checked again with one thing changed: it must fail."""
    _remote(API_URL, api_gateway).compile(PAYLOAD)
    [seen] = api_gateway.seen
    headers, body = seen["headers"], seen["body"]
    path = "/prod/registry"
    check = {"secret": SECRET, "service": "execute-api", "region": "eu-west-1"}
    assert verify_sigv4("POST", path, headers, body, **check) is None
    assert verify_sigv4("POST", path, headers, body + b" ", **check) == "signature mismatch"
    assert verify_sigv4("POST", "/prod/other", headers, body, **check) == "signature mismatch"
    other_host = {**headers, "host": "other.execute-api.eu-west-1.amazonaws.com"}
    assert verify_sigv4("POST", path, other_host, body, **check) == "signature mismatch"
    assert verify_sigv4("POST", path, headers, body, **{**check, "secret": "x"}) == (
        "signature mismatch"
    )


def test_sigv4_signs_every_retry_anew(aws: pytest.MonkeyPatch, api_gateway: SigV4Endpoint) -> None:
    api_gateway.fail_first = 1
    # Over a second between the attempts, so that X-Amz-Date (whole seconds) must change.
    remote = _remote(API_URL, api_gateway, retries=1, sleep=lambda _: time.sleep(1.1))
    assert remote.compile(PAYLOAD).text == "global\n"
    first, second = api_gateway.seen
    assert first["verdict"] is None and second["verdict"] is None
    assert first["headers"]["x-amz-date"] != second["headers"]["x-amz-date"]
    assert first["headers"]["authorization"] != second["headers"]["authorization"]


def test_sigv4_carries_a_session_token(aws: pytest.MonkeyPatch, api_gateway: SigV4Endpoint) -> None:
    aws.setenv("AWS_SESSION_TOKEN", "the-session-token")
    _remote(API_URL, api_gateway).compile(PAYLOAD)
    [seen] = api_gateway.seen
    assert seen["verdict"] is None
    assert seen["headers"]["x-amz-security-token"] == "the-session-token"
    assert "x-amz-security-token" in seen["headers"]["authorization"]  # signed


def test_sigv4_on_another_url_takes_the_region_from_the_environment(
    aws: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(UsageError, match="AWS_REGION"):
        registry_auth("sigv4", "https://registry.example.com/")
    aws.setenv("AWS_REGION", "ap-south-1")
    signer = registry_auth("sigv4", "https://registry.example.com/")
    assert isinstance(signer, SigV4Signer)
    assert (signer.service, signer.region) == ("execute-api", "ap-south-1")  # a custom domain
    aws.delenv("AWS_REGION")
    aws.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    signer = registry_auth("sigv4", "https://registry.example.com/")
    assert isinstance(signer, SigV4Signer) and signer.region == "sa-east-1"
    # The URL's own region wins over the environment.
    signer = registry_auth(None, FUNCTION_URL)
    assert isinstance(signer, SigV4Signer) and signer.region == "us-east-2"


def test_missing_credentials_are_a_usage_error(aws: pytest.MonkeyPatch) -> None:
    aws.delenv("AWS_ACCESS_KEY_ID")
    aws.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UsageError, match="no AWS credentials"):
        registry_auth(None, API_URL)
    assert registry_auth("none", API_URL) is None  # unless asked not to sign


def test_cosmonaut_without_credentials_stops_at_start_up(
    aws: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.delenv("AWS_ACCESS_KEY_ID")
    aws.delenv("AWS_SECRET_ACCESS_KEY")
    argv = ["once", "--registry-url", API_URL, "--state-dir", str(tmp_path)]
    assert cosmonaut_main(argv) == 2
    err = capsys.readouterr().err
    assert "--registry-auth: sigv4: no AWS credentials found" in err
    assert "Traceback" not in err


# -- bearer -----------------------------------------------------------------------------------


def test_bearer_comes_from_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COSMONAUT_REGISTRY_TOKEN", raising=False)
    url = "https://registry.internal:8443/"
    with pytest.raises(UsageError, match="--registry-token-file or set COSMONAUT_REGISTRY_TOKEN"):
        registry_auth("bearer", url)
    monkeypatch.setenv("COSMONAUT_REGISTRY_TOKEN", "from-env\n")
    auth = registry_auth("bearer", url)
    assert auth is not None
    assert auth.headers("POST", url, {}, b"") == {"Authorization": "Bearer from-env"}
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    token_file.chmod(0o600)
    auth = registry_auth("bearer", url, token_file=token_file)
    assert auth is not None
    assert auth.headers("POST", url, {}, b"") == {"Authorization": "Bearer from-file"}
    assert "from-file" not in repr(auth)
    with pytest.raises(UsageError, match="cannot read"):
        registry_auth("bearer", url, token_file=tmp_path / "missing")
    with pytest.raises(UsageError, match="for --registry-auth bearer, not none"):
        registry_auth(None, url, token_file=token_file)
    with pytest.raises(UsageError, match="printable ASCII"):
        BearerToken("two words")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_a_token_file_others_can_access_is_refused_at_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    """As ssh refuses such a private key: the error names the file and the fix, and the
    token is never sent (nor printed)."""
    token_file = tmp_path / "registry.token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(mode)
    url = "https://registry.internal:8443/"
    with pytest.raises(UsageError) as refused:
        registry_auth("bearer", url, token_file=token_file)
    assert str(refused.value) == (
        f"--registry-token-file: {token_file} is open to others (mode {mode:04o}): anyone in "
        f"its group or on this machine could read the token; run 'chmod 600 {token_file}'"
    )
    argv = ["once", "--registry-url", url, "--registry-auth", "bearer"]
    argv += ["--registry-token-file", str(token_file), "--state-dir", str(tmp_path / "state")]
    assert cosmonaut_main(argv) == 2
    err = capsys.readouterr().err
    assert f"chmod 600 {token_file}" in err
    assert "s3cret-token" not in err
    token_file.chmod(0o600)
    auth = registry_auth("bearer", url, token_file=token_file)
    assert auth is not None
    assert auth.headers("POST", url, {}, b"") == {"Authorization": "Bearer s3cret-token"}


def test_cosmonaut_bearer_without_a_token_stops_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COSMONAUT_REGISTRY_TOKEN", raising=False)
    argv = ["once", "--registry-url", "http://127.0.0.1:9/", "--registry-auth", "bearer"]
    assert cosmonaut_main([*argv, "--state-dir", str(tmp_path)]) == 2
    assert "COSMONAUT_REGISTRY_TOKEN" in capsys.readouterr().err
    assert cosmonaut_main(["once", "--registry-auth", "bearer", "--state-dir", str(tmp_path)]) == 2
    assert "for a remote registry" in capsys.readouterr().err


def test_a_bearer_token_over_plain_http_to_another_host_stops_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over http:// to another host anyone on the path reads the token (and may then report
    as any host): a usage error unless --insecure-http says so. Loopback and https need no
    flag. No engine answers here, so a run that gets past start-up stops at Docker (4)."""
    monkeypatch.setenv("COSMONAUT_REGISTRY_TOKEN", "the-registry-token")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/cosmonaut-test.sock")

    def once(url: str, *more: str) -> int:
        argv = ["once", "--registry-url", url, "--registry-auth", "bearer"]
        return cosmonaut_main([*argv, "--state-dir", str(tmp_path), *more])

    assert once("http://192.0.2.10:8080/") == 2
    err = capsys.readouterr().err
    assert "--registry-url: the bearer token would travel unencrypted over http://" in err
    assert "--insecure-http" in err and "Traceback" not in err
    assert once("http://registry.internal/") == 2  # a name may resolve anywhere
    capsys.readouterr()
    assert once("http://192.0.2.10:8080/", "--insecure-http") == 4
    assert '"event": "the registry token travels unencrypted"' in capsys.readouterr().err
    for url in (
        "http://127.0.0.1:8080/",
        "http://[::1]:8080/",
        "http://localhost:8080/",
        "https://192.0.2.10:8443/",
    ):
        assert once(url) == 4, url
        assert "unencrypted" not in capsys.readouterr().err
    local = ["once", "--insecure-http", "--state-dir", str(tmp_path)]
    assert cosmonaut_main(local) == 2
    assert "are for a remote registry (--registry-url)" in capsys.readouterr().err


# -- redirects --------------------------------------------------------------------------------


class Recorder:
    """A plain HTTP server on loopback. ``location`` set: it answers ``status`` with that
    ``Location`` to everything; else 200 with a config. ``seen``: (method, path, the
    Authorization header) of each request."""

    def __init__(self, status: int = 200, location: str | None = None) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                recorder.seen.append((self.command, self.path, self.headers["Authorization"]))
                body = b"" if location else b"global\n    maxconn 1\n"
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.served = ServedHttp(Handler)
        self.url = self.served.url

    def stop(self) -> None:
        self.served.stop()


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    """Where a redirect points: another server, which must never be asked anything."""
    server = Recorder()
    yield server
    server.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("kind", ["bearer", "sigv4"])
def test_a_redirect_is_an_error_and_is_never_followed(
    elsewhere: Recorder, status: int, kind: str
) -> None:
    """The registry's 3xx names where it points, and Cosmonaut goes no further: the other
    server gets no request, so neither the credentials nor the payload reach it, and no
    config comes from it. Neither a pass (POST) nor a poll (GET) follows it."""
    target = f"{elsewhere.url}registry?table=web"
    registry = Recorder(status, target)
    auth = (
        BearerToken("the-registry-token")
        if kind == "bearer"
        else SigV4Signer("execute-api", "eu-west-1", Credentials(ACCESS_KEY, SECRET))
    )
    try:
        remote = RemoteRegistry(registry.url, auth=auth, retries=2, backoff=0.01)
        with pytest.raises(RegistryError) as posted:
            remote.compile(PAYLOAD)
        with pytest.raises(RegistryError) as polled:
            remote.fetch("web")
    finally:
        registry.stop()
    for error in (posted.value, polled.value):
        assert not isinstance(error, RegistryUnavailable)  # not retried: it is no outage
        assert f"HTTP {status} redirects to {target!r}" in str(error)
        assert "does not follow" in str(error)
    assert remote.attempts == 1
    assert elsewhere.seen == []
    # The registry itself got the credentials, once per call.
    assert [(method, authorization is not None) for method, _, authorization in registry.seen] == [
        ("POST", True),
        ("GET", True),
    ]
