"""The registry's HTTP contract: what the handler encodes, Cosmonaut's client decodes."""

from __future__ import annotations

import json

import pytest

from compiler.errors import Diagnostic
from runtime import contract
from runtime.contract import RegistryResult

RESULT = RegistryResult(
    "global\n    daemon\n",
    (Diagnostic("$.candidates[0].predicate", "bad 'x'"), Diagnostic("$.running", "w", "warning")),
    "astro",
    ("app1", "app2"),
)


def _decode(encoded: contract.Encoded) -> RegistryResult:
    return contract.decode_result(encoded.headers, encoded.body.encode("utf-8"))


def test_json_results_decode_to_what_was_encoded() -> None:
    encoded = contract.encode_result(RESULT, as_json=True)
    assert encoded.headers["Content-Type"] == "application/json"
    assert encoded.headers[contract.DIAGNOSTICS_HEADER] == "2"
    assert _decode(encoded) == RESULT


def test_text_results_carry_the_config_and_the_diagnostics_in_headers() -> None:
    encoded = contract.encode_result(RESULT, as_json=False)
    assert encoded.headers["Content-Type"].startswith("text/plain")
    assert encoded.body == RESULT.text
    # Text bodies have no room for the table and services: only config and diagnostics.
    assert _decode(encoded) == RegistryResult(RESULT.text, RESULT.diagnostics)


def test_header_names_are_case_insensitive_on_the_way_back() -> None:
    encoded = contract.encode_result(RESULT, as_json=False)
    lowered = {name.lower(): value for name, value in encoded.headers.items()}
    assert contract.decode_result(lowered, encoded.body.encode()).diagnostics == RESULT.diagnostics


def test_problems_decode_to_their_detail_and_diagnostics() -> None:
    encoded = contract.encode_problem(
        400, "invalid-payload", "Invalid payload", "no body", diagnostics=RESULT.diagnostics
    )
    document = json.loads(encoded.body)
    assert document["type"] == "urn:lambda-registry:problem:invalid-payload"
    assert contract.decode_problem(400, encoded.headers["Content-Type"], encoded.body.encode()) == (
        "no body",
        RESULT.diagnostics,
    )


def test_a_500_never_carries_diagnostics_and_a_409_says_when_to_retry() -> None:
    internal = contract.encode_problem(
        500, "internal-error", "Internal error", "x", diagnostics=RESULT.diagnostics
    )
    assert "diagnostics" not in json.loads(internal.body)
    conflict = contract.encode_problem(409, "conflict", "Concurrent updates", "y")
    assert conflict.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"Content-Type": "application/json"}, b'{"diagnostics": []}', "without a 'config'"),
        ({"Content-Type": "application/json"}, b'{"config": 3}', "not text"),
        ({"Content-Type": "text/plain"}, b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_200_that_breaks_the_contract_is_a_clear_error(
    headers: dict[str, str], body: bytes, message: str
) -> None:
    with pytest.raises(contract.ContractError, match=message):
        contract.decode_result(headers, body)


def test_problem_types_are_one_table_of_distinct_slugs() -> None:
    slugs = [problem.slug for problem in contract.PROBLEMS]
    assert len(slugs) == len(set(slugs))
    assert all(problem in contract.PROBLEMS for problem in contract.SERVER_PROBLEMS.values())
