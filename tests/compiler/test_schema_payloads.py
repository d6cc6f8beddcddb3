"""Every payload the models accept, HAProxy accepts: payloads drawn from the published JSON
Schema (``lambda-registry schema``), values at the schema's edges included. A value the
models accept and HAProxy refuses would be stored in a fleet's table and freeze every host's
next config, so the oracle is ``haproxy -c`` itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from compiler.errors import PayloadError
from compiler.models import SETTING_FIELDS
from runtime.pipeline import compile_payload
from tests.support.schema_strategy import PAYLOADS

FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    print(f"\nschema payloads: {dict(FIGURES)}")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(payload=PAYLOADS)
def test_every_payload_the_models_accept_passes_haproxy(
    payload: dict[str, Any], assert_haproxy_accepts: Callable[[Any], None]
) -> None:
    FIGURES["generated"] += 1
    try:
        result = compile_payload(payload)
    except (PayloadError, ValidationError):
        FIGURES["refused by the models"] += 1
        return
    FIGURES["accepted"] += 1
    FIGURES["services routed"] += len(result.services)
    FIGURES["services with settings"] += sum(
        1 for service in result.services if any(getattr(service, f) for f in SETTING_FIELDS)
    )
    FIGURES["candidates left out"] += len(result.diagnostics)
    assert_haproxy_accepts(result.files)
