"""Which store a caller gets: the one policy the CLI, the Lambda handler and Cosmonaut share.

A store is named by a spec: ``memory`` (remembers nothing), ``sqlite`` (the default file),
``sqlite:PATH`` or ``dynamodb``. The spec comes from, in order:

1. the caller's flag (``--store``);
2. ``LAMBDA_REGISTRY_STORE``;
3. ``dynamodb`` inside AWS Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set);
4. the caller's local default: ``sqlite`` (``$XDG_STATE_HOME/lambda-registry/state.db``) for
   the CLI and the handler, a file in its state folder for Cosmonaut.

How stores behave (not which one) comes from the environment too:

* ``LAMBDA_REGISTRY_CREATE_TABLES``: create a missing DynamoDB table on first use (default
  ``true``);
* ``LAMBDA_REGISTRY_MAX_ATTEMPTS``: DynamoDB; how many times one call runs the decision before
  it gives up on a conflict (default ``10``);
* ``LAMBDA_REGISTRY_SQLITE_TIMEOUT``: SQLite; seconds to wait for another process's write
  lock (default ``30``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from compiler.errors import OptionsError
from compiler.validators import NO_WORDS, YES_WORDS
from runtime.files import state_home
from runtime.stores import Store

StoreKind = Literal["memory", "sqlite", "dynamodb"]

STORE_ENV = "LAMBDA_REGISTRY_STORE"
CREATE_TABLES_ENV = "LAMBDA_REGISTRY_CREATE_TABLES"
MAX_ATTEMPTS_ENV = "LAMBDA_REGISTRY_MAX_ATTEMPTS"
SQLITE_TIMEOUT_ENV = "LAMBDA_REGISTRY_SQLITE_TIMEOUT"
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A parsed store spec."""

    kind: StoreKind
    path: Path | None = None  # SQLite only

    def __str__(self) -> str:
        return f"sqlite:{self.path}" if self.kind == "sqlite" else self.kind


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How stores behave (not which one)."""

    create_tables: bool = True
    max_attempts: int = 10
    sqlite_timeout: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StoreSettings:
        return cls(
            create_tables=_flag(environ, CREATE_TABLES_ENV, default=True),
            max_attempts=int(
                number_setting(environ, MAX_ATTEMPTS_ENV, default=10, minimum=1, whole=True)
            ),
            sqlite_timeout=number_setting(environ, SQLITE_TIMEOUT_ENV, default=30.0, minimum=0.0),
        )


def in_lambda(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get(LAMBDA_ENV))


def chosen_spec(
    flag: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    local_default: str = "sqlite",
) -> tuple[str, str]:
    """The spec to use and where it came from (for messages): see the module's docstring."""
    env = os.environ if environ is None else environ
    if flag:
        return flag, "--store"
    if env.get(STORE_ENV):
        return env[STORE_ENV], STORE_ENV
    if in_lambda(env):
        return "dynamodb", LAMBDA_ENV
    return local_default, "--store"


def choose_store(
    flag: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    local_default: str = "sqlite",
) -> Store:
    """The store the policy picks, opened with the environment's settings."""
    env = os.environ if environ is None else environ
    spec, source = chosen_spec(flag, env, local_default=local_default)
    return open_store(
        parse_store_spec(spec, source=source, environ=env),
        settings=StoreSettings.from_env(env),
    )


def default_sqlite_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/lambda-registry/state.db``, by default under ``~/.local/state``
    (``runtime.files.state_home``)."""
    return state_home(environ) / "lambda-registry" / "state.db"


def parse_store_spec(
    spec: str, *, source: str = "--store", environ: Mapping[str, str] | None = None
) -> StoreSpec:
    """``memory`` | ``sqlite`` (the default path) | ``sqlite:PATH`` | ``dynamodb``."""
    text = spec.strip()
    if text == "memory":
        return StoreSpec("memory")
    if text == "dynamodb":
        return StoreSpec("dynamodb")
    if text == "sqlite":
        return StoreSpec("sqlite", default_sqlite_path(environ))
    if text.startswith("sqlite:"):
        path = text.removeprefix("sqlite:")
        if not path:
            raise OptionsError(
                "'sqlite:' needs a path, e.g. sqlite:/var/lib/registry.db", file=source
            )
        return StoreSpec("sqlite", Path(path).expanduser())
    raise OptionsError(
        f"unknown store {spec!r}: expected memory, sqlite, sqlite:PATH or dynamodb", file=source
    )


def open_store(
    spec: str | StoreSpec,
    *,
    settings: StoreSettings | None = None,
    source: str = "--store",
) -> Store:
    """The store a spec names. ``memory`` remembers nothing between calls."""
    parsed = parse_store_spec(spec, source=source) if isinstance(spec, str) else spec
    settings = settings or StoreSettings.from_env(os.environ)
    if parsed.kind == "memory":
        from runtime.stores.memory import MemoryStore

        return MemoryStore(ephemeral=True)
    if parsed.kind == "sqlite":
        from runtime.stores.sqlite import SQLiteStore

        assert parsed.path is not None
        return SQLiteStore(parsed.path, timeout=settings.sqlite_timeout)
    from runtime.stores.dynamodb import DynamoDBStore

    return DynamoDBStore(create_tables=settings.create_tables, max_attempts=settings.max_attempts)


def _flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in YES_WORDS:
        return True
    if value in NO_WORDS:
        return False
    raise OptionsError(f"expected true or false, got {value!r}", file=name)


def number_setting(
    environ: Mapping[str, str], name: str, *, default: float, minimum: float, whole: bool = False
) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not number >= minimum or math.isinf(number) or (whole and not number.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise OptionsError(f"expected {kind} of at least {minimum:g}, got {value!r}", file=name)
    return number
