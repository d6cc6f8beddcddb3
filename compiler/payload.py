"""From JSON text or a decoded object to a ``Payload`` plus diagnostics.

One bad entry never blocks the others: a bad entry of ``running`` or ``candidates`` (or a bad
container inside a candidate) is left out and reported with its JSON path; everything else is
kept. Only a malformed envelope (not JSON, not an object, ``table`` or ``running`` missing or
of the wrong type, unknown top-level fields) fails the whole payload.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from compiler.errors import Diagnostic, PayloadError
from compiler.models import (
    CARRIED_FIELDS,
    AuthSettings,
    AuthUser,
    Candidate,
    CandidateContainer,
    HeaderSettings,
    HealthSettings,
    Payload,
    RunningContainer,
    TimeoutSettings,
)

Loc = tuple[int | str, ...]


def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    """The field names a payload spells (the aliases); a candidate's settings after its own."""
    names = [field.alias or name for name, field in model.model_fields.items()]
    return tuple(sorted(names, key=lambda name: name in CARRIED_FIELDS))


# The model at each place of a payload, by the name ``_model_of`` finds for it.
_MODEL_AT: dict[str, type[BaseModel]] = {
    "payload": Payload,
    "running": RunningContainer,
    "candidate": Candidate,
    "container": CandidateContainer,
    "health": HealthSettings,
    "timeouts": TimeoutSettings,
    "auth": AuthSettings,
    "users": AuthUser,
    "headers": HeaderSettings,
}
_FIELDS_BY_MODEL = {place: _field_names(model) for place, model in _MODEL_AT.items()}
_MAX_PASSES = 4
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPECTED = {
    "string": "a string",
    "list": "an array",
    "dict": "an object",
    "model": "an object",
    "int": "a number",
    "bool": "a boolean",
    "model_attributes": "an object",
}


def json_path(loc: Sequence[int | str]) -> str:
    """``('candidates', 0, 'ip')`` -> ``$.candidates[0].ip``."""
    parts = ["$"]
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item == "[key]":
            continue  # pydantic's marker for "the key itself", which the path already names
        elif _PLAIN_KEY.fullmatch(item):
            parts.append(f".{item}")
        else:  # a user's key (a header name, say): quoted, shortened, never a raw newline
            parts.append(f"[{json.dumps(item if len(item) <= 40 else item[:40] + '...')}]")
    return "".join(parts)


def parse_payload_text(text: str | bytes, *, file: str | None = None) -> Any:
    """Decode JSON, locating syntax errors as ``file:line:col``.

    Stricter than ``json.loads``: an object that names a key twice is refused with the JSON
    path of the second one (``json.loads`` keeps the last, so two readers of one payload could
    disagree on what it says), and so are ``NaN``/``Infinity`` (not JSON) and integers longer
    than Python converts (``sys.get_int_max_str_digits``)."""
    duplicates: list[_Duplicated] = []

    def make_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        made = dict(pairs)
        if len(made) == len(pairs):
            return made
        marked = _Duplicated(made)
        marked.key = _first_repeated(key for key, _ in pairs)
        duplicates.append(marked)
        return marked

    where = file or "<payload>"
    try:
        data = json.loads(text, object_pairs_hook=make_object, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise PayloadError(
            f"not valid JSON: {error.msg}", file=where, line=error.lineno, col=error.colno
        ) from None
    except (UnicodeDecodeError, RecursionError) as error:
        reason = "not UTF-8" if isinstance(error, UnicodeDecodeError) else "nested too deeply"
        raise PayloadError(f"not valid JSON: {reason}", file=where) from None
    except _NotJson as error:
        raise PayloadError(f"not valid JSON: {error}", file=where) from None
    except ValueError:  # int(): more digits than the interpreter converts
        raise PayloadError(
            f"not valid JSON: a number has more than {sys.get_int_max_str_digits()} digits",
            file=where,
        ) from None
    if duplicates:
        loc, key = _duplicate_at(data)
        found = Diagnostic(json_path((*loc, key)), "this key appears more than once; keep one")
        raise PayloadError(found.message, file=where, json_path=found.path, diagnostics=(found,))
    return data


class _Duplicated(dict[str, Any]):
    """A decoded object in which ``key`` appeared more than once (never leaves the parser)."""

    key: str


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _first_repeated(keys: Iterable[str]) -> str:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("no key repeats")  # pragma: no cover


def _duplicate_at(data: Any) -> tuple[Loc, str]:
    """Where the first object (in document order) with a repeated key is, and that key.
    Iterative: the data may be nested as deeply as the JSON decoder allows."""
    stack: list[tuple[Any, Loc]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, _Duplicated):
            return loc, value.key
        if isinstance(value, dict):
            stack.extend((child, (*loc, key)) for key, child in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((value[i], (*loc, i)) for i in reversed(range(len(value))))
    raise AssertionError("a repeated key was seen but not found")  # pragma: no cover


def load_payload(data: Any, *, file: str | None = None) -> tuple[Payload, tuple[Diagnostic, ...]]:
    """Validate a decoded payload, leaving out bad entries and reporting each one."""
    if not isinstance(data, dict):
        raise PayloadError(
            f"the payload must be a JSON object, not {json_type(data)}", file=file, json_path="$"
        )
    diagnostics: list[Diagnostic] = []
    current: dict[str, Any] = dict(data)
    for _ in range(_MAX_PASSES):
        try:
            return Payload.model_validate(current), tuple(diagnostics)
        except ValidationError as error:
            details = error.errors(include_url=False)
        fatal = [detail for detail in details if _is_envelope_error(detail["loc"])]
        if fatal:
            found = tuple(_diagnostic(detail) for detail in fatal)
            raise PayloadError(
                "; ".join(str(found_one) for found_one in found),
                file=file,
                diagnostics=found,
            )
        diagnostics.extend(_diagnostic(detail) for detail in details)
        current = _without(current, {_entry_loc(detail["loc"]) for detail in details})
    raise AssertionError("payload pruning did not converge")  # pragma: no cover


def _is_envelope_error(loc: Loc) -> bool:
    return len(loc) <= 1


def _entry_loc(loc: Loc) -> Loc:
    """The smallest entry that holds the error: a container, or a running/candidate entry."""
    if len(loc) >= 4 and loc[0] == "candidates" and loc[2] == "containers":
        return loc[:4]
    return loc[:2]


def _without(data: dict[str, Any], drop: set[Loc]) -> dict[str, Any]:
    pruned = dict(data)
    for key in ("running", "candidates"):
        entries = pruned.get(key)
        if not isinstance(entries, list):
            continue
        kept = []
        for index, entry in enumerate(entries):
            if (key, index) in drop:
                continue
            if key == "candidates" and isinstance(entry, dict):
                entry = _without_containers(entry, index, drop)
            kept.append(entry)
        pruned[key] = kept
    return pruned


def _without_containers(entry: dict[str, Any], index: int, drop: set[Loc]) -> dict[str, Any]:
    containers = entry.get("containers")
    if not isinstance(containers, list):
        return entry
    kept = [
        c for j, c in enumerate(containers) if ("candidates", index, "containers", j) not in drop
    ]
    return {**entry, "containers": kept} if len(kept) != len(containers) else entry


def _diagnostic(detail: ErrorDetails) -> Diagnostic:
    loc: Loc = tuple(detail["loc"])
    return Diagnostic(json_path(loc), _message(detail, loc))


def _message(detail: ErrorDetails, loc: Loc) -> str:
    kind = detail["type"]
    value = detail.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1])
        known = _FIELDS_BY_MODEL[_model_of(loc)]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) or [
            field for field in known if field.lower() == name.lower()
        ]
        hint = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(known)}"
        return f"unknown field '{name}'{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind.endswith("_type"):
        expected = _EXPECTED.get(kind.removesuffix("_type"), kind.removesuffix("_type"))
        return f"expected {expected}, got {json_type(value)}"
    if kind == "literal_error":
        expected = detail.get("ctx", {}).get("expected", "'host' or 'path'")
        return f"must be {expected}, got {json_type(value)} {_short(value)}"
    return detail["msg"]


def _model_of(loc: Loc) -> str:
    if len(loc) <= 1:
        return "payload"
    if loc[0] == "running":
        return "running"
    if len(loc) >= 4 and loc[2] == "containers":
        return "container"
    # A nested settings object: the innermost named one (``auth.users[0]`` -> users).
    for part in reversed(loc[2:-1]):
        if isinstance(part, str) and part in _FIELDS_BY_MODEL:
            return part
    return "candidate"


def json_type(value: Any) -> str:
    """What JSON calls ``value``'s type, as an error message says it ("an object", ...)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
