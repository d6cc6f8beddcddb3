"""Fixtures the registry's tests share."""

from __future__ import annotations

import pytest

from runtime.server import RegistryServer


@pytest.fixture
def never_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` must stop before serving: if it gets that far, the test fails at once."""
    monkeypatch.delenv("LAMBDA_REGISTRY_TOKEN", raising=False)

    def fail(self: RegistryServer) -> None:
        raise AssertionError(f"serve started on {self.url}")

    monkeypatch.setattr(RegistryServer, "serve_forever", fail)
