"""The Lambda handler's configuration from environment variables, and render options.

* the store: ``LAMBDA_REGISTRY_STORE`` and the store settings, chosen as
  ``runtime.stores.select`` says (DynamoDB inside Lambda, SQLite elsewhere);
* ``LAMBDA_REGISTRY_OPTIONS`` / ``LAMBDA_REGISTRY_OPTIONS_FILE``: render options as JSON
  text, or as a JSON file (not both);
* ``LAMBDA_REGISTRY_HOST_TTL``: fleet mode; seconds after which a silent host's containers
  leave the config (default 90).

DynamoDB itself is configured the usual AWS way (``AWS_REGION``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL_DYNAMODB``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from compiler.errors import OptionsError
from compiler.options import RenderOptions, parse_render_options
from runtime.files import read_input
from runtime.fleet import DEFAULT_TTL
from runtime.stores.select import (
    StoreSettings,
    StoreSpec,
    chosen_spec,
    number_setting,
    parse_store_spec,
)

OPTIONS_ENV = "LAMBDA_REGISTRY_OPTIONS"
OPTIONS_FILE_ENV = "LAMBDA_REGISTRY_OPTIONS_FILE"
HOST_TTL_ENV = "LAMBDA_REGISTRY_HOST_TTL"


@dataclass(frozen=True, slots=True)
class HandlerConfig:
    """Everything the Lambda handler reads from its environment, validated once."""

    store: StoreSpec
    settings: StoreSettings = field(default_factory=StoreSettings)
    options: RenderOptions = field(default_factory=RenderOptions)
    host_ttl: float = DEFAULT_TTL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HandlerConfig:
        env = os.environ if environ is None else environ
        spec, source = chosen_spec(None, env)
        return cls(
            store=parse_store_spec(spec, source=source, environ=env),
            settings=StoreSettings.from_env(env),
            options=load_options_env(env),
            host_ttl=host_ttl_env(env),
        )


def host_ttl_env(environ: Mapping[str, str]) -> float:
    """``LAMBDA_REGISTRY_HOST_TTL``: fleet mode's seconds before a silent host expires."""
    return number_setting(environ, HOST_TTL_ENV, default=DEFAULT_TTL, minimum=1.0)


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


def load_render_options(
    path: str | None, compat: str | None, routing: str | None = None
) -> RenderOptions:
    """``--options FILE`` (JSON) with ``--compat`` and ``--routing`` on top; the defaults when
    none is given."""
    options = parse_render_options(read_input(path), file=path) if path else RenderOptions()
    if compat:
        options = options.model_copy(update={"compat": compat})
    if routing:
        options = options.model_copy(update={"routing": routing})
    return options
