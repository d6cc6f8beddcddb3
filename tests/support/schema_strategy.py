"""Hypothesis strategies drawn from a JSON Schema (the payload schema ``lambda-registry
schema`` publishes): every value the schema allows can come out, kept small.

Only the keywords that schema uses are understood; an unknown one fails loudly rather than
generating values the schema never described. ``PAYLOADS`` draws whole payloads whose
candidates run (what the compiler routes), for the tests that compile them.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from hypothesis import strategies as st

from compiler.schema import payload_schema

_IGNORED = {"title", "description", "default", "$schema", "$id", "$defs", "examples"}
_KNOWN = _IGNORED | {
    "$ref", "anyOf", "enum", "const", "type", "pattern", "minLength", "maxLength", "minimum",
    "maximum", "items", "minItems", "maxItems", "properties", "required",
    "additionalProperties", "patternProperties", "maxProperties",
}  # fmt: skip
MAX_ITEMS = 3  # arrays and maps: enough to meet neighbours, small enough to stay fast


def from_schema(
    schema: dict[str, Any],
    root: dict[str, Any] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A strategy for ``schema``; ``root`` holds the ``$defs`` that ``$ref`` points into.
    ``overrides``: strategies for some properties by ``"<def>.<property>"``, where a
    pattern only sketches the values (an address with a port, a time) and most drawn
    values would be refused before the settings under test are reached."""
    root = root if root is not None else schema
    if overrides is not None:
        root = {**root, "x-overrides": overrides}
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema keywords this strategy does not know: {sorted(unknown)}")
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return st.deferred(lambda: _object(root["$defs"][name], root, name))
    if "anyOf" in schema:
        return st.one_of([from_schema(option, root) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind is None and ("pattern" in schema or "maxLength" in schema):
        kind = "string"  # an anyOf branch that only narrows a string
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "string":
        return _string(schema)
    if kind == "array":
        return st.lists(
            from_schema(schema["items"], root),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", MAX_ITEMS), MAX_ITEMS),
        )
    if kind == "object":
        return _object(schema, root)
    raise ValueError(f"schema without a type this strategy knows: {schema}")


def _string(schema: dict[str, Any]) -> Any:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" in schema:
        strings = st.from_regex(_whole(schema["pattern"]), fullmatch=True)
    else:
        strings = st.text(min_size=low, max_size=high if high is not None else 20)
    return strings.filter(lambda text: low <= len(text) <= (high if high is not None else 10**9))


def _object(schema: dict[str, Any], root: dict[str, Any], name: str = "") -> Any:
    if schema.get("type") != "object":
        return from_schema(schema, root)
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    overrides = root.get("x-overrides", {})

    def strategy(field: str) -> Any:
        key = f"{name}.{field}"
        return overrides[key] if key in overrides else from_schema(properties[field], root)

    fixed = {field: strategy(field) for field in sorted(required)}
    optional = {field: strategy(field) for field in sorted(properties)}
    optional = {field: drawn for field, drawn in optional.items() if field not in required}
    objects = st.fixed_dictionaries(fixed, optional=optional)
    patterns = schema.get("patternProperties")
    if not patterns:
        return objects
    (pattern, value_schema), *more = patterns.items()
    if more:
        raise ValueError("more than one patternProperties entry")
    size = min(schema.get("maxProperties", MAX_ITEMS), MAX_ITEMS)
    extra = st.dictionaries(
        st.from_regex(_whole(pattern), fullmatch=True),
        from_schema(value_schema, root),
        max_size=size,
    )
    return st.tuples(objects, extra).map(lambda pair: {**pair[1], **pair[0]})


def _whole(pattern: str) -> str:
    """A JSON Schema pattern (ECMA: ``$`` is the end) as a Python one: Python's ``$`` also
    matches before a final newline, which would generate values the schema refuses."""
    if pattern.startswith("^") and pattern.endswith("$"):
        return pattern[1:-1]
    return pattern


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
