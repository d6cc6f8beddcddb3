"""Typed payload and service models: the only place payload validation errors are born.

A payload is ``{"table", "running", "candidates"}`` as Cosmonaut sends it. Validation is
strict (no type coercion, unknown fields refused) and every value that ends up in the config
is checked against what HAProxy can safely read, so nothing a payload says can inject a
directive.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from compiler.validators import (
    PREDICATE_SCHEMA,
    Address,
    BalanceName,
    Cidr,
    ConfigMode,
    ConfigModeName,
    CookieName,
    Created,
    Duration,
    HeaderName,
    HeaderValue,
    HealthPath,
    Identifier,
    Interval,
    PasswordHash,
    Realm,
    ServiceName,
    TableName,
    TlsMode,
    UserName,
    predicate_for_mode,
    refuse,
)


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, populate_by_name=True, validate_by_alias=True
    )


class ContainerRef(_Strict):
    """A container of a service: its id (the server name), ``address:port`` and, when set,
    its share of the traffic (``weight``, HAProxy's server weight: 0 takes none)."""

    id: Identifier
    ip: Address
    weight: int | None = Field(default=None, ge=0, le=256)


# Per-service settings: every field is optional and None means "as before": a payload
# without settings compiles to exactly the config it always did.


class HealthSettings(_Strict):
    """An HTTP health check: ``option httpchk GET <path>``, ``http-check expect status``,
    and the servers' ``inter``/``rise``/``fall``."""

    path: HealthPath
    status: int | None = Field(default=None, ge=100, le=599)
    interval: Interval | None = None
    rise: int | None = Field(default=None, ge=1, le=1000)
    fall: int | None = Field(default=None, ge=1, le=1000)


class TimeoutSettings(_Strict):
    """Backend timeouts; ``tunnel`` applies once a connection is upgraded (WebSocket)."""

    connect: Duration | None = None
    server: Duration | None = None
    queue: Duration | None = None
    tunnel: Duration | None = None


class AuthUser(_Strict):
    name: UserName
    hash: PasswordHash


class AuthSettings(_Strict):
    """HTTP basic authentication against a ``userlist`` of crypt(3) hashes."""

    realm: Realm | None = None
    users: list[AuthUser] = Field(min_length=1, max_length=1000)

    @field_validator("users")
    @classmethod
    def _unique_names(cls, users: list[AuthUser]) -> list[AuthUser]:
        seen: set[str] = set()
        for user in users:
            if user.name in seen:
                refuse("user_name", "is listed twice", user.name)
            seen.add(user.name)
        return users


class HeaderSettings(_Strict):
    """Headers to set (replacing any the client or server sent) on requests and responses."""

    # In the schema, a name that does not match the header-name pattern is refused too.
    request: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=100, json_schema_extra={"additionalProperties": False}
    )
    response: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=100, json_schema_extra={"additionalProperties": False}
    )


SETTING_FIELDS = ("health", "balance", "maxconn", "timeouts", "auth", "allow", "headers")
# What travels with a service like its settings (merge, fleet, stores, state show): the
# backend settings above and HTTPS, which the frontend and backend read apart.
CARRIED_FIELDS = (*SETTING_FIELDS, "tls")


class ServiceSettings(_Strict):
    """The optional per-service settings a candidate carries and a service keeps."""

    health: HealthSettings | None = None
    balance: BalanceName | None = None
    maxconn: int | None = Field(default=None, ge=1, le=1_000_000)
    timeouts: TimeoutSettings | None = None
    auth: AuthSettings | None = None
    allow: list[Cidr] | None = Field(default=None, min_length=1, max_length=1000)
    headers: HeaderSettings | None = None
    # Left out of dumps when "off", so stored state reads as it did before HTTPS existed.
    tls: TlsMode = Field(default="off", exclude_if=lambda mode: mode == "off")

    def settings_key(self) -> str:
        """The settings as canonical JSON: equal for equal settings, and comparable."""
        if self.tls == "off" and all(getattr(self, name) is None for name in SETTING_FIELDS):
            return "{}"  # the common case, without a dump (compile speed at 10 000 services)
        dumped = self.model_dump(mode="json", include=set(CARRIED_FIELDS), exclude_none=True)
        return json.dumps(dumped, sort_keys=True, separators=(",", ":"))

    def settings(self) -> dict[str, Any]:
        """The settings fields, to copy onto another model (``model_copy(update=...)``)."""
        return {name: getattr(self, name) for name in CARRIED_FIELDS}


class CandidateContainer(ContainerRef):
    """A container as a candidate lists it; ``created`` (RFC 3339), when known, says which
    deployment of a service is the newest across hosts."""

    created: Created | None = None


class RunningContainer(_Strict):
    """An entry of ``running``: a service container alive on the host network now."""

    service_name: ServiceName = Field(alias="serviceName")
    id: Identifier
    ip: Address


class Candidate(ServiceSettings):
    """An entry of ``candidates``: new containers with their service's routing settings."""

    service_name: ServiceName = Field(alias="serviceName")
    config_mode: ConfigMode = Field(default="host", alias="configMode")
    predicate: str = Field(json_schema_extra=PREDICATE_SCHEMA)
    cookie: CookieName | None = None
    containers: list[CandidateContainer] = Field(default_factory=list)

    _predicate_for_mode = field_validator("predicate")(predicate_for_mode)


class Payload(_Strict):
    """What Cosmonaut sends: the state table, what runs, and what is new.

    With ``host``, the payload is that host's report: ``running`` and ``candidates`` describe
    its containers only, and the table keeps one report per host (fleet mode).
    """

    table: TableName
    host: Identifier | None = None
    running: list[RunningContainer]
    candidates: list[Candidate] = Field(default_factory=list)


class Service(ServiceSettings):
    """A resolved service: one backend, one routing rule, its servers."""

    name: ServiceName
    mode: ConfigModeName
    predicate: str = Field(json_schema_extra=PREDICATE_SCHEMA)
    cookie: CookieName | None = None
    # Lax only about the container: JSON (and stores) give a list where we keep a tuple.
    containers: tuple[ContainerRef, ...] = Field(default=(), strict=False)

    _predicate_for_mode = field_validator("predicate")(predicate_for_mode)

    def stored_form(self) -> dict[str, Any]:
        """As JSON for stores and ``state show``: unset settings and weights left out, so a
        service without them reads exactly as before they existed (``cookie`` stays)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data.setdefault("cookie", None)
        return data

    @property
    def route_key(self) -> tuple[str, str]:
        """What two services must not share: the same host, or the same path."""
        return (self.mode, self.predicate)


class HostReport(_Strict):
    """A host's last report, as a fleet table keeps it: its containers and their settings.

    ``reported_at`` is the registry's clock (seconds since the epoch) when it arrived; ``seq``
    counts the host's reports, so that a store writes each host's report only over the one it
    read (the only thing two writers can race on is one host's own report).
    """

    host: Identifier
    reported_at: float
    seq: int = Field(ge=1)
    running: tuple[RunningContainer, ...] = Field(default=(), strict=False)
    candidates: tuple[Candidate, ...] = Field(default=(), strict=False)
    # Candidate container id -> the registry's clock when this host first reported it: who
    # deployed first, as the registry saw it (a host's own ``created`` can be forged into
    # the past).
    first_seen: dict[str, float] = Field(default_factory=dict, strict=False)

    @property
    def container_count(self) -> int:
        ids = {c.id for c in self.running}
        ids.update(c.id for candidate in self.candidates for c in candidate.containers)
        return len(ids)
