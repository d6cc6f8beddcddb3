"""The Lambda handler's configuration from environment variables, and render options.

* the store: ``LAMBDA_REGISTRY_STORE`` and the store settings, chosen as
  ``runtime.stores.select`` says (DynamoDB inside Lambda, SQLite elsewhere);
* ``LAMBDA_REGISTRY_OPTIONS`` / ``LAMBDA_REGISTRY_OPTIONS_FILE``: render options as JSON
  text, or as a JSON file (not both);
* ``LAMBDA_REGISTRY_HOST_TTL``: fleet mode; seconds after which a silent host's containers
  leave the config (default 90);
* ``LAMBDA_REGISTRY_HOST_IDENTITIES`` / ``LAMBDA_REGISTRY_HOST_IDENTITIES_FILE``: fleet mode;
  which IAM callers may report as which hosts, as JSON text or a JSON file (not both; see
  ``runtime.identity``). Unset: every caller is the operator.

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
from runtime.identity import HostIdentities, parse_host_identities
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
HOST_IDENTITIES_ENV = "LAMBDA_REGISTRY_HOST_IDENTITIES"
HOST_IDENTITIES_FILE_ENV = "LAMBDA_REGISTRY_HOST_IDENTITIES_FILE"


@dataclass(frozen=True, slots=True)
class HandlerConfig:
    """Everything the Lambda handler reads from its environment, validated once."""

    store: StoreSpec
    settings: StoreSettings = field(default_factory=StoreSettings)
    options: RenderOptions = field(default_factory=RenderOptions)
    host_ttl: float = DEFAULT_TTL
    host_identities: HostIdentities | None = None  # None: every caller is the operator

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HandlerConfig:
        env = os.environ if environ is None else environ
        spec, source = chosen_spec(None, env)
        return cls(
            store=parse_store_spec(spec, source=source, environ=env),
            settings=StoreSettings.from_env(env),
            options=load_options_env(env),
            host_ttl=host_ttl_env(env),
            host_identities=host_identities_env(env),
        )


def host_ttl_env(environ: Mapping[str, str]) -> float:
    """``LAMBDA_REGISTRY_HOST_TTL``: fleet mode's seconds before a silent host expires."""
    return number_setting(environ, HOST_TTL_ENV, default=DEFAULT_TTL, minimum=1.0)


def load_options_env(environ: Mapping[str, str]) -> RenderOptions:
    """Render options from ``LAMBDA_REGISTRY_OPTIONS`` (JSON) or ``..._OPTIONS_FILE``."""
    found = _json_env(environ, OPTIONS_ENV, OPTIONS_FILE_ENV, "render options")
    if found is None:
        return RenderOptions()
    text, source = found
    return parse_render_options(text, file=source)


def host_identities_env(environ: Mapping[str, str]) -> HostIdentities | None:
    """``LAMBDA_REGISTRY_HOST_IDENTITIES`` (JSON) or ``..._FILE``: IAM callers to host ids."""
    found = _json_env(environ, HOST_IDENTITIES_ENV, HOST_IDENTITIES_FILE_ENV, "host identities")
    if found is None:
        return None
    text, source = found
    if source != HOST_IDENTITIES_ENV:  # a file: name the variable too
        source = f"{HOST_IDENTITIES_FILE_ENV}={source}"
    return parse_host_identities(text, source=source)


def _json_env(
    environ: Mapping[str, str], name: str, file_name: str, what: str
) -> tuple[str, str] | None:
    """JSON text from the variable ``name`` or from the file ``file_name`` names (not both),
    and where it came from (the variable's name or the file's path); ``None`` without
    either."""
    text = environ.get(name)
    path = environ.get(file_name)
    if text and path:
        raise OptionsError(f"set {name} or {file_name}, not both", file=name)
    source = name
    if path:
        source = path
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", errors="replace")
        except OSError as error:
            raise OptionsError(
                f"cannot read {what}: {error.strerror or error}", file=path
            ) from None
    if not text:
        return None
    return text, source


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
