"""The payload's JSON Schema, generated from the pydantic models (pure).

``lambda-registry schema`` prints it; ``docs/payload.schema.json`` is the same text, checked in
so that editors can validate payload files against it. The patterns come from the validators
(``compiler.validators.schema_of``); what only the registry can judge (two entries claiming one
route, a user listed twice) is not in the schema.
"""

from __future__ import annotations

import json
from typing import Any

from compiler.models import Payload

SCHEMA_ID = "https://lambda-registry.invalid/payload.schema.json"


def payload_schema() -> dict[str, Any]:
    schema = Payload.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def payload_schema_text() -> str:
    return json.dumps(payload_schema(), indent=2, sort_keys=True) + "\n"
