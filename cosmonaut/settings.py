"""A container's service settings, from its labels or (as the original read them) its environment.

Pure: a container's name, labels and environment in, ``ServiceSettings`` or the problems out.
Each setting is read from its label when the label is present, otherwise from its environment
variable ("labels win", setting by setting). Values are validated by the compiler's own payload
model, so Cosmonaut refuses exactly what the registry would refuse, but reports it with the
container's name and the label or variable that holds the bad value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from compiler.models import Candidate

SettingName = Literal["service", "mode", "predicate", "cookie", "port", "tls"]

LABELS: dict[SettingName, str] = {
    "service": "cosmonaut.service",
    "mode": "cosmonaut.mode",
    "predicate": "cosmonaut.predicate",
    "cookie": "cosmonaut.cookie",
    "port": "cosmonaut.port",
    "tls": "cosmonaut.tls",  # TLS (issue 14)
}
ENVIRONMENT: dict[SettingName, str] = {
    "service": "SERVICE_NAME",
    "mode": "CONFIG_MODE",
    "predicate": "PREDICATE",
    "cookie": "COOKIE",
    "port": "PORT",
    "tls": "HTTPS_METHOD",  # nginx-proxy's name; its values are mapped by _TLS_FROM_HTTPS_METHOD
}
REQUIRED: tuple[SettingName, ...] = ("service", "predicate", "port")
# What makes a container managed: any cosmonaut.* label, or one of these variables. PORT alone
# does not: many images set it for their own use.
MARKER_VARIABLES = frozenset({"SERVICE_NAME", "CONFIG_MODE", "PREDICATE", "COOKIE"})
LABEL_PREFIX = "cosmonaut."

_MODEL_FIELDS: dict[str, SettingName] = {
    "serviceName": "service",
    "service_name": "service",
    "configMode": "mode",
    "config_mode": "mode",
    "predicate": "predicate",
    "cookie": "cookie",
    "tls": "tls",
}
# nginx-proxy's HTTPS_METHOD -> our tls mode. `nohttp` (no HTTP at all) has no exact match:
# the nearest is `redirect`, which answers HTTP only with a redirect.
_TLS_FROM_HTTPS_METHOD = {
    "redirect": "redirect",
    "noredirect": "on",
    "nohttps": "off",
    "nohttp": "redirect",
}


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Validated routing settings; ``predicate`` is normalised (lower-case host, ``/a/b``)."""

    service: str
    mode: Literal["host", "path"]
    predicate: str
    cookie: str | None
    port: int
    tls: Literal["off", "on", "redirect"] = "off"  # TLS (issue 14)


@dataclass(frozen=True, slots=True)
class ContainerProblem:
    """Why a container is left out: its name, the label or variable at fault, and the reason."""

    container: str
    setting: str
    reason: str

    def __str__(self) -> str:
        return f"{self.container}: {self.setting}: {self.reason}"

    def as_dict(self) -> dict[str, str]:
        return {"container": self.container, "setting": self.setting, "reason": self.reason}


def parse_environment(entries: Iterable[str] | None) -> dict[str, str]:
    """Docker's ``Config.Env`` (``NAME=value`` strings) as a dict; the last one wins."""
    environment: dict[str, str] = {}
    for entry in entries or ():
        name, sep, value = entry.partition("=")
        if sep:
            environment[name] = value
    return environment


def is_managed(labels: Mapping[str, str], environment: Mapping[str, str]) -> bool:
    """Whether a container asks to be routed (it carries any service setting)."""
    return any(key.startswith(LABEL_PREFIX) for key in labels) or any(
        name in environment for name in MARKER_VARIABLES
    )


def read_settings(
    container: str, labels: Mapping[str, str], environment: Mapping[str, str]
) -> ServiceSettings | tuple[ContainerProblem, ...]:
    """The container's settings, or every problem found with them (never an exception)."""
    raw: dict[SettingName, tuple[str, str]] = {}  # setting -> (where, value)
    for setting, label in LABELS.items():
        if label in labels:
            raw[setting] = (label, labels[label])
        elif ENVIRONMENT[setting] in environment:
            raw[setting] = (ENVIRONMENT[setting], environment[ENVIRONMENT[setting]])

    def where(setting: SettingName) -> str:
        return raw[setting][0] if setting in raw else f"{LABELS[setting]} / {ENVIRONMENT[setting]}"

    problems: list[ContainerProblem] = []
    for setting in REQUIRED:
        if setting not in raw:
            problems.append(ContainerProblem(container, where(setting), "missing (required)"))
        elif not raw[setting][1].strip():
            problems.append(ContainerProblem(container, where(setting), "is empty"))
    port = _port(raw.get("port"))
    if isinstance(port, str) and "port" in raw and raw["port"][1].strip():
        problems.append(ContainerProblem(container, where("port"), port))

    document: dict[str, object] = {"containers": []}
    if "service" in raw and raw["service"][1].strip():
        document["serviceName"] = raw["service"][1].strip()
    if "predicate" in raw and raw["predicate"][1].strip():
        document["predicate"] = raw["predicate"][1].strip()
    if "mode" in raw and raw["mode"][1].strip():  # empty means the default, host
        document["configMode"] = raw["mode"][1].strip()
    if "cookie" in raw and raw["cookie"][1].strip():  # empty means no cookie
        document["cookie"] = raw["cookie"][1].strip()
    if "tls" in raw and raw["tls"][1].strip():  # empty means off
        value = raw["tls"][1].strip().lower()
        if raw["tls"][0] == ENVIRONMENT["tls"]:
            value = _TLS_FROM_HTTPS_METHOD.get(value, value)
        document["tls"] = value
    candidate: Candidate | None = None
    try:
        candidate = Candidate.model_validate(document)
    except ValidationError as error:
        for detail in error.errors(include_url=False):
            field = str(detail["loc"][0]) if detail["loc"] else ""
            if field not in _MODEL_FIELDS or detail["type"] == "missing":
                continue  # reported above as missing or empty
            setting = _MODEL_FIELDS[field]
            if setting == "predicate" and any(p.setting == where("mode") for p in problems):
                continue  # validated against the wrong mode: only the mode is wrong for sure
            problems.append(
                ContainerProblem(container, where(setting), _reason(detail["msg"], setting))
            )
    if problems or candidate is None or not isinstance(port, int):
        return tuple(problems) or (ContainerProblem(container, "settings", "invalid"),)
    return ServiceSettings(
        service=candidate.service_name,
        mode=candidate.config_mode,
        predicate=candidate.predicate,
        cookie=candidate.cookie,
        port=port,
        tls=candidate.tls,
    )


def _port(entry: tuple[str, str] | None) -> int | str:
    if entry is None:
        return "missing"
    text = entry[1].strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        return f"{text!r} is not a port number (1 to 65535)"
    return int(text)


def _reason(message: str, setting: SettingName) -> str:
    if setting == "tls":
        return (
            "must be off, on or redirect (HTTPS_METHOD also takes nginx-proxy's redirect, "
            "noredirect, nohttps, nohttp)"
        )
    return message.removeprefix("Value error, ")
