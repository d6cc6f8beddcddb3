"""Configuration from environment variables, for the Lambda handler and the CLI.

* ``LAMBDA_REGISTRY_STORE``: ``memory``, ``sqlite``, ``sqlite:PATH`` or ``dynamodb``. The
  handler's default is ``dynamodb`` inside Lambda and ``sqlite`` elsewhere; the CLI's is
  ``sqlite``.
* ``LAMBDA_REGISTRY_CREATE_TABLES``: create a missing DynamoDB table on first use (default
  ``true``).
* ``LAMBDA_REGISTRY_MAX_ATTEMPTS``: DynamoDB; how many times one call runs the reconcile
  before it gives up on a conflict (default ``10``).
* ``LAMBDA_REGISTRY_SQLITE_TIMEOUT``: SQLite; seconds to wait for another process's write
  lock (default ``30``).
* ``LAMBDA_REGISTRY_OPTIONS`` / ``LAMBDA_REGISTRY_OPTIONS_FILE``: render options as JSON
  text, or as a JSON file (not both).

Inside Lambda means ``AWS_LAMBDA_FUNCTION_NAME`` is set. DynamoDB itself is configured the
usual AWS way (``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL_DYNAMODB``, ...).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from compiler.errors import OptionsError
from compiler.options import RenderOptions, parse_render_options
from runtime.files import read_input
from runtime.stores import STORE_ENV, StoreSpec, parse_store_spec

CREATE_TABLES_ENV = "LAMBDA_REGISTRY_CREATE_TABLES"
MAX_ATTEMPTS_ENV = "LAMBDA_REGISTRY_MAX_ATTEMPTS"
SQLITE_TIMEOUT_ENV = "LAMBDA_REGISTRY_SQLITE_TIMEOUT"
OPTIONS_ENV = "LAMBDA_REGISTRY_OPTIONS"
OPTIONS_FILE_ENV = "LAMBDA_REGISTRY_OPTIONS_FILE"
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def in_lambda(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get(LAMBDA_ENV))


def default_store_spec(environ: Mapping[str, str] | None = None) -> str:
    """The handler's store when none is configured: DynamoDB inside Lambda, SQLite elsewhere."""
    env = os.environ if environ is None else environ
    return env.get(STORE_ENV) or ("dynamodb" if in_lambda(env) else "sqlite")


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
            max_attempts=int(_number(environ, MAX_ATTEMPTS_ENV, default=10, minimum=1, whole=True)),
            sqlite_timeout=_number(environ, SQLITE_TIMEOUT_ENV, default=30.0, minimum=0.0),
        )


@dataclass(frozen=True, slots=True)
class HandlerConfig:
    """Everything the Lambda handler reads from its environment, validated once."""

    store: StoreSpec
    settings: StoreSettings = field(default_factory=StoreSettings)
    options: RenderOptions = field(default_factory=RenderOptions)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HandlerConfig:
        env = os.environ if environ is None else environ
        return cls(
            store=parse_store_spec(default_store_spec(env), source=STORE_ENV, environ=env),
            settings=StoreSettings.from_env(env),
            options=load_options_env(env),
        )


def load_options_env(environ: Mapping[str, str]) -> RenderOptions:
    """Render options from ``LAMBDA_REGISTRY_OPTIONS`` (JSON) or ``..._OPTIONS_FILE``."""
    text = environ.get(OPTIONS_ENV)
    path = environ.get(OPTIONS_FILE_ENV)
    if text and path:
        raise OptionsError(f"set {OPTIONS_ENV} or {OPTIONS_FILE_ENV}, not both", file=OPTIONS_ENV)
    source = OPTIONS_ENV
    if path:
        source = path
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", errors="replace")
        except OSError as error:
            raise OptionsError(
                f"cannot read render options: {error.strerror or error}", file=path
            ) from None
    if not text:
        return RenderOptions()
    return parse_render_options(text, file=source)


def load_render_options(path: str | None, compat: str | None) -> RenderOptions:
    """``--options FILE`` (JSON) with ``--compat`` on top; the defaults when neither is given."""
    options = parse_render_options(read_input(path), file=path) if path else RenderOptions()
    if compat:
        options = options.model_copy(update={"compat": compat})
    return options


def _flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise OptionsError(f"expected true or false, got {value!r}", file=name)


def _number(
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
