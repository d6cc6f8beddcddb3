"""Every payload the models accept, HAProxy accepts: payloads drawn from the published JSON
Schema (``lambda-registry schema``), values at the schema's edges included. A value the
models accept and HAProxy refuses would be stored in a fleet's table and freeze every host's
next config, so the oracle is ``haproxy -c`` itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from compiler.errors import PayloadError
from compiler.models import SETTING_FIELDS
from compiler.schema import payload_schema
from runtime.pipeline import compile_payload
from tests.support.schema_strategy import from_schema

FIGURES: Counter[str] = Counter()

# Where the schema's pattern only sketches a value (an address with a port, a time), nearly
# every drawn value is refused before the settings under test are reached.
ADDRESSES = st.tuples(st.ip_addresses(), st.integers(1, 65535)).map(
    lambda pair: f"{pair[0]}:{pair[1]}" if pair[0].version == 4 else f"[{pair[0]}]:{pair[1]}"
)
TIMES = st.datetimes(timezones=st.just(UTC)).map(lambda when: when.isoformat())
OVERRIDES = {
    "CandidateContainer.ip": ADDRESSES,
    "RunningContainer.ip": ADDRESSES,
    "CandidateContainer.created": st.none() | TIMES,
}


def running_too(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with its candidates' containers running (what the schema cannot say):
    otherwise nearly every candidate is left out and its settings never reach a config."""
    running = [
        {"id": box["id"], "ip": box["ip"], "serviceName": candidate["serviceName"]}
        for candidate in payload.get("candidates", [])
        for box in candidate.get("containers", [])
    ]
    return {**payload, "running": payload.get("running", []) + running}


SCHEMA = payload_schema()
# Candidates are optional in the schema; at least one makes every example test settings.
CANDIDATES = st.lists(
    from_schema({"$ref": "#/$defs/Candidate"}, SCHEMA, overrides=OVERRIDES),
    min_size=1,
    max_size=3,
)
PAYLOADS = st.tuples(from_schema(SCHEMA, overrides=OVERRIDES), CANDIDATES).map(
    lambda drawn: running_too({**drawn[0], "candidates": drawn[1]})
)


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
