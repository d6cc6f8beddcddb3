"""The boto3 edge of the DynamoDB store: one client per process and endpoint, and boto errors
as ``StoreError`` messages an operator can act on."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from runtime.stores import StoreError

_CLIENT_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=64,
)
_CLIENTS: dict[tuple[str | None, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def dynamodb_client(*, region_name: str | None = None, endpoint_url: str | None = None) -> Any:
    """A DynamoDB client, created once per process for each endpoint and region.

    Without arguments boto3 reads the usual settings (``AWS_REGION``, ``AWS_PROFILE``,
    ``AWS_ENDPOINT_URL_DYNAMODB``, ...).
    """
    env = os.environ
    key = (
        region_name,
        endpoint_url,
        env.get("AWS_REGION"),
        env.get("AWS_DEFAULT_REGION"),
        env.get("AWS_ENDPOINT_URL_DYNAMODB"),
        env.get("AWS_ENDPOINT_URL"),
        env.get("AWS_PROFILE"),
    )
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            try:
                session = boto3.session.Session(region_name=region_name)
                client = session.client(
                    "dynamodb", endpoint_url=endpoint_url, config=_CLIENT_CONFIG
                )
            except NoRegionError:
                raise StoreError(
                    "no AWS region is configured: set AWS_REGION (or AWS_DEFAULT_REGION)",
                    file="dynamodb",
                ) from None
            except BotoCoreError as error:
                raise StoreError(
                    f"cannot create a DynamoDB client: {error}", file="dynamodb"
                ) from None
            _CLIENTS[key] = client
        return client


class ErrorMapper:
    """Turns boto errors into ``StoreError`` with a message an operator can act on."""

    def __init__(self, label: str, table: str, doing: str, *, create_tables: bool) -> None:
        self.label = label
        self.table = table
        self.doing = doing
        self.create_tables = create_tables

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if isinstance(error, StoreError) or not isinstance(error, BotoCoreError | ClientError):
            return  # not ours to translate: it propagates unchanged
        raise StoreError(
            f"{self.doing} table {self.table!r}: {_describe(error, self.create_tables)}",
            file=self.label,
        ) from None


def _describe(error: BotoCoreError | ClientError, create_tables: bool) -> str:
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
        where = error.kwargs.get("endpoint_url") or "its endpoint"
        return f"cannot reach DynamoDB at {where}; nothing was changed"
    if isinstance(error, (ReadTimeoutError, ConnectionClosedError)):
        return "the connection to DynamoDB failed; nothing was changed"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found; nothing was changed"
    if isinstance(error, NoRegionError):
        return "no AWS region is configured: set AWS_REGION"
    if isinstance(error, ClientError):
        code = error_code(error)
        if code == "ResourceNotFoundException":
            hint = "" if create_tables else " and table creation is off"
            return f"the table does not exist{hint}; nothing was changed"
        if code in ("AccessDeniedException", "UnrecognizedClientException"):
            return f"access denied ({code}); nothing was changed"
        message = error.response.get("Error", {}).get("Message", "")
        return f"DynamoDB refused the request ({code}: {message}); nothing was changed"
    return f"{type(error).__name__}: {error}; nothing was changed"


def error_code(error: ClientError) -> str:
    """The DynamoDB error code of a refused request (``ConditionalCheckFailedException``...)."""
    return str(error.response.get("Error", {}).get("Code", ""))
