"""The published payload schema: generated from the models, current in docs/, accepting every
example payload and rejecting every hostile entry of tests/compiler/test_hostile.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.hostile import HOSTILE, with_bad
from tests.support.paths import EXAMPLES, ROOT, run_cli
from tests.support.required import require

# Entries that are bad only next to other entries (two settings for one service, two services
# for one route, a user listed twice): for the registry to judge, not for a schema.
BETWEEN_ENTRIES = {"same-service-other-settings", "host-conflict", "auth-twice"}


@pytest.fixture(scope="module")
def validator() -> Any:
    try:
        import jsonschema
    except ImportError:
        require("jsonschema", "not installed; it is in the 'test' extra (scripts/bootstrap)")
    printed = run_cli("schema")
    assert printed.returncode == 0, printed.stderr
    schema = json.loads(printed.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_published_schema_is_current() -> None:
    printed = run_cli("schema")
    assert printed.stdout == (ROOT / "docs" / "payload.schema.json").read_text()


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_every_example_payload_is_valid(name: str, validator: Any) -> None:
    errors = [e.message for e in validator.iter_errors(json.loads((EXAMPLES / name).read_text()))]
    assert errors == []


@pytest.mark.parametrize(
    ("bad_candidate", "path", "routed"),
    [case for case in HOSTILE if case.id not in BETWEEN_ENTRIES],
)
def test_every_hostile_entry_is_refused(
    bad_candidate: Any, path: str, routed: Any, validator: Any
) -> None:
    assert not validator.is_valid(with_bad(bad_candidate))


@pytest.mark.parametrize(
    "payload",
    [
        {"running": []},
        {"table": "astro", "running": 3},
        {"table": "a\nb", "running": []},
        {"table": "astro", "running": [], "extra": 1},
        [],
    ],
)
def test_malformed_envelopes_are_refused(payload: Any, validator: Any) -> None:
    assert not validator.is_valid(payload)
