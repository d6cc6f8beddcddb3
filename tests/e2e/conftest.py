"""Fixtures for tests on the real container engine; the helpers are in
``tests.support.cosmonaut_e2e``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cosmonaut_e2e import DockerHost, ensure_engine


@pytest.fixture(scope="session")
def docker_host() -> str:
    """``DOCKER_HOST`` of a running engine with the test images (skips, or fails in CI)."""
    return ensure_engine()


@pytest.fixture(scope="session")
def client(docker_host: str) -> Any:
    import docker

    return docker.from_env(timeout=60)


@pytest.fixture
def host(client: Any) -> Iterator[DockerHost]:
    """Containers for one test, named with a unique prefix, removed at teardown."""
    box = DockerHost(client, f"cz{uuid.uuid4().hex[:8]}-")
    try:
        yield box
    finally:
        box.cleanup()
