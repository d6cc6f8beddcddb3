"""How Cosmonaut authenticates to the registry over HTTP (``registry_auth`` chooses, from
``--registry-auth``): ``SigV4Signer`` signs each attempt anew with botocore's signer and the
standard AWS credential chain (the default for API Gateway and Lambda function URLs,
``aws_endpoint``); ``BearerToken`` sends ``Authorization: Bearer <token>`` (``lambda-registry
serve --token-file``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from cosmonaut.errors import UsageError
from runtime import contract
from runtime.files import TooOpenError, read_private

TOKEN_ENV = "COSMONAUT_REGISTRY_TOKEN"


AuthKind = Literal["sigv4", "bearer", "none"]


# API Gateway (REST and HTTP APIs, also through a VPC endpoint) and Lambda function URLs.
_AWS_HOSTS = (
    (re.compile(r"[a-z0-9-]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"), "execute-api"),
    (re.compile(r"[a-z0-9-]+\.lambda-url\.([a-z0-9-]+)\.on\.aws"), "lambda"),
)


@dataclass(frozen=True, slots=True)
class AwsEndpoint:
    """What SigV4 signs for: the service and, when the host name says it, the region."""

    service: str
    region: str | None


def aws_endpoint(url: str) -> AwsEndpoint | None:
    """The AWS endpoint ``url`` names: ``execute-api`` for API Gateway
    (``<id>.execute-api.<region>.amazonaws.com``), ``lambda`` for a function URL
    (``<id>.lambda-url.<region>.on.aws``); ``None`` for any other host."""
    host = (urlsplit(url).hostname or "").lower()
    for pattern, service in _AWS_HOSTS:
        match = pattern.fullmatch(host)
        if match:
            return AwsEndpoint(service, match.group(1))
    return None


class RequestAuth(Protocol):
    """Adds credentials to one attempt of a request (called again for every retry)."""

    label: str

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to add to ``headers`` for sending ``body`` to ``url``."""
        ...


class SigningError(Exception):
    """Credentials could not be had for this attempt (a refresh failed); retried."""


class BearerToken:
    label = "bearer"

    def __init__(self, token: str) -> None:
        if not token or not (token.isascii() and token.isprintable()) or " " in token:
            raise UsageError(
                "the registry token must be printable ASCII without spaces",
                file="--registry-token-file",
            )
        self._value = contract.bearer_credentials(token)

    def __repr__(self) -> str:
        return "BearerToken(***)"

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        return {contract.AUTHORIZATION_HEADER: self._value}


class SigV4Signer:
    """AWS Signature Version 4 through botocore's own signer (``SigV4Auth`` on an
    ``AWSRequest``): the method, path, query, every header sent and the SHA-256 of the exact
    body. Credentials come from ``credentials`` or the standard chain (environment, shared
    files, SSO, container and instance roles), refreshed as botocore refreshes them."""

    label = "sigv4"

    def __init__(self, service: str, region: str, credentials: Any) -> None:
        self.service = service
        self.region = region
        self._credentials = credentials

    @classmethod
    def from_environment(
        cls, endpoint: AwsEndpoint | None, environ: Mapping[str, str]
    ) -> SigV4Signer:
        """For ``endpoint`` (API Gateway's ``execute-api`` when the URL is not an AWS one,
        as behind a custom domain), with the region from the URL, else ``AWS_REGION``, else
        botocore's (``AWS_DEFAULT_REGION``, the profile). No credentials: a ``UsageError``."""
        try:
            import botocore.session  # type: ignore[import-untyped]
        except ImportError:
            raise UsageError(
                "--registry-auth sigv4 needs botocore: pip install 'lambda-registry[cosmonaut]'",
                file="--registry-auth",
            ) from None
        session = botocore.session.Session()
        region = (
            (endpoint.region if endpoint else None)
            or environ.get("AWS_REGION")
            or session.get_config_variable("region")
        )
        if not region:
            raise UsageError(
                "sigv4: the registry URL names no AWS region; set AWS_REGION",
                file="--registry-auth",
            )
        credentials = session.get_credentials()
        if credentials is None:
            raise UsageError(
                "sigv4: no AWS credentials found (environment, shared credentials or config "
                "file, SSO, container or instance role)",
                file="--registry-auth",
            )
        return cls(endpoint.service if endpoint else "execute-api", str(region), credentials)

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        try:
            frozen = self._credentials.get_frozen_credentials()
            SigV4Auth(frozen, self.service, self.region).add_auth(request)
        except BotoCoreError as error:
            raise SigningError(str(error)) from None
        given = {name.lower() for name in headers}
        return {
            str(name): str(value)
            for name, value in request.headers.items()
            if name.lower() not in given
        }


def registry_auth(
    kind: AuthKind | None,
    url: str,
    *,
    token_file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> RequestAuth | None:
    """The authentication ``--registry-auth`` asks for; by default ``sigv4`` for API Gateway
    and function URLs, ``none`` otherwise. A missing token or missing AWS credentials is a
    ``UsageError`` (at start-up, not at the first pass)."""
    endpoint = aws_endpoint(url)
    chosen = kind or ("sigv4" if endpoint is not None else "none")
    if token_file is not None and chosen != "bearer":
        raise UsageError(
            f"a token file is for --registry-auth bearer, not {chosen}",
            file="--registry-token-file",
        )
    if chosen == "none":
        return None
    if chosen == "sigv4":
        return SigV4Signer.from_environment(endpoint, environ)
    if token_file is None:
        token = (environ.get(TOKEN_ENV) or "").strip()
        if not token:
            raise UsageError(
                f"bearer: give --registry-token-file or set {TOKEN_ENV}", file="--registry-auth"
            )
        return BearerToken(token)
    try:
        lines = read_private(token_file).splitlines()
    except TooOpenError as error:
        raise UsageError(str(error), file="--registry-token-file") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise UsageError(
            f"cannot read {token_file}: {reason}", file="--registry-token-file"
        ) from None
    if not lines or not lines[0].strip():
        raise UsageError(f"{token_file} holds no token", file="--registry-token-file")
    return BearerToken(lines[0].strip())
