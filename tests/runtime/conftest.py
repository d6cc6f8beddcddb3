"""Fixtures the registry's tests share."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from runtime.server import RegistryServer
from runtime.stores import Store
from runtime.stores.memory import MemoryStore
from runtime.stores.sqlite import SQLiteStore
from tests.support.aws import MotoServer, aws_env


@pytest.fixture
def never_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` must stop before serving: if it gets that far, the test fails at once."""
    monkeypatch.delenv("LAMBDA_REGISTRY_TOKEN", raising=False)

    def fail(self: RegistryServer) -> None:
        raise AssertionError(f"serve started on {self.url}")

    monkeypatch.setattr(RegistryServer, "serve_forever", fail)


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Each of the three stores (DynamoDB on moto's server over real HTTP), for the fleet
    tests; a module with a ``store`` fixture of its own uses that one."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "state.db")
    server: MotoServer = request.getfixturevalue("moto_server")
    aws_env(monkeypatch, server.endpoint)
    from runtime.stores.dynamodb import DynamoDBStore

    return DynamoDBStore()


@pytest.fixture
def table() -> str:
    """A table name no other test uses."""
    return f"fleet-{uuid.uuid4().hex[:10]}"
