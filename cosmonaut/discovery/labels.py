"""A container's service settings, from its labels or (as the original read them) its environment.

Pure: a container's name, labels and environment in, ``ServiceSettings`` or the problems out.
Each setting is read from its label when the label is present, otherwise from its environment
variable ("labels win", setting by setting). Values are validated by the compiler's own payload
model, so Cosmonaut refuses exactly what the registry would refuse, but reports it with the
container's name and the label or variable that holds the bad value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import ValidationError

from compiler.models import SETTING_FIELDS, Candidate
from compiler.validators import NO_WORDS, YES_WORDS, TlsMode

SettingName = Literal["service", "mode", "predicate", "cookie", "port", "tls"]

LABELS: dict[SettingName, str] = {
    "service": "cosmonaut.service",
    "mode": "cosmonaut.mode",
    "predicate": "cosmonaut.predicate",
    "cookie": "cosmonaut.cookie",
    "port": "cosmonaut.port",
    "tls": "cosmonaut.tls",
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
COMPOSE_SERVICE = "com.docker.compose.service"
ENABLE_LABEL = "cosmonaut.enable"
ACME_SUFFIX = "tls.acme"  # cosmonaut.tls.acme, cosmonaut.<service>.tls.acme
LETSENCRYPT_VARIABLE = "LETSENCRYPT_HOST"  # acme-companion's name for the same request
NETWORK_LABEL = "cosmonaut.network"
# Label roots of the single-service form; any other ``cosmonaut.<name>.`` is a namespace.
SERVICE_ROOTS = frozenset({*(label.removeprefix(LABEL_PREFIX) for label in LABELS.values())})
SINGLE_ROOTS = frozenset({*SERVICE_ROOTS, *SETTING_FIELDS, "weight", "enable", "network"})
_DOCS = "docs/cosmonaut.md, 'Per-service settings'"

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
    # The per-service settings in the payload's form, as canonical JSON ("{}" for none), and
    # this container's weight.
    options: str = "{}"
    weight: int | None = None
    # ``cosmonaut.tls.acme=true``: Cosmonaut gets the certificate (ACME); never sent to the
    # registry, which only sees ``tls``.
    acme: bool = False

    @property
    def tls(self) -> TlsMode:
        """HTTPS for the service: carried in ``options`` like the other settings."""
        mode = json.loads(self.options).get("tls", "off") if self.options != "{}" else "off"
        return cast(TlsMode, mode)


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
    container: str,
    labels: Mapping[str, str],
    environment: Mapping[str, str],
    *,
    prefix: str = LABEL_PREFIX,
) -> ServiceSettings | tuple[ContainerProblem, ...]:
    """The container's settings, or every problem found with them (never an exception).

    ``prefix`` is where its labels start: ``cosmonaut.`` for the single-service form,
    ``cosmonaut.<service>.`` for one service of the namespaced form (which reads no
    environment). Without a service name, the Compose service name is the default.
    """
    raw: dict[SettingName, tuple[str, str]] = {}  # setting -> (where, value)
    names = {
        setting: prefix + label.removeprefix(LABEL_PREFIX) for setting, label in LABELS.items()
    }
    for setting, label in names.items():
        if label in labels:
            raw[setting] = (label, labels[label])
        elif ENVIRONMENT[setting] in environment:
            raw[setting] = (ENVIRONMENT[setting], environment[ENVIRONMENT[setting]])
    if "service" not in raw and "predicate" in raw and labels.get(COMPOSE_SERVICE, "").strip():
        raw["service"] = (COMPOSE_SERVICE, labels[COMPOSE_SERVICE])

    def where(setting: SettingName) -> str:
        return raw[setting][0] if setting in raw else f"{names[setting]} / {ENVIRONMENT[setting]}"

    problems: list[ContainerProblem] = []
    for setting in REQUIRED:
        if setting not in raw:
            problems.append(ContainerProblem(container, where(setting), "missing (required)"))
        elif not raw[setting][1].strip():
            problems.append(ContainerProblem(container, where(setting), "is empty"))
    port = _port(raw.get("port"))
    if isinstance(port, str) and "port" in raw and raw["port"][1].strip():
        problems.append(ContainerProblem(container, where("port"), port))

    document, acme, weight = _document(container, raw, labels, environment, prefix, problems)
    candidate = _candidate(container, document, prefix, where, problems)
    if problems or candidate is None or not isinstance(port, int):
        return tuple(problems) or (ContainerProblem(container, "settings", "invalid"),)
    return ServiceSettings(
        service=candidate.service_name,
        mode=candidate.config_mode,
        predicate=candidate.predicate,
        cookie=candidate.cookie,
        port=port,
        options=candidate.settings_key(),
        weight=weight,
        acme=acme,
    )


def _document(
    container: str,
    raw: Mapping[SettingName, tuple[str, str]],
    labels: Mapping[str, str],
    environment: Mapping[str, str],
    prefix: str,
    problems: list[ContainerProblem],
) -> tuple[dict[str, object], bool, int | None]:
    """The payload candidate the settings describe, whether it asks for a certificate, and
    its weight."""
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
    acme = _flag(container, prefix + ACME_SUFFIX, labels, problems)
    # acme-companion's convention: LETSENCRYPT_HOST asks for a certificate, and nginx-proxy
    # then redirects to HTTPS by default. Labels win, as for every setting.
    if environment.get(LETSENCRYPT_VARIABLE, "").strip() and prefix + ACME_SUFFIX not in labels:
        acme = True
        if "tls" not in raw and str(document.get("configMode", "host")).lower() == "host":
            document["tls"] = "redirect"  # path mode: no name of its own to certify
    options, weight = _options(container, labels, prefix, problems)
    document.update(options)
    return document, acme, weight


def _candidate(
    container: str,
    document: dict[str, object],
    prefix: str,
    where: Callable[[SettingName], str],
    problems: list[ContainerProblem],
) -> Candidate | None:
    """The document validated as a payload candidate; each error becomes a problem."""
    candidate: Candidate | None = None
    try:
        candidate = Candidate.model_validate(document)
    except ValidationError as error:
        for detail in error.errors(include_url=False):
            field = str(detail["loc"][0]) if detail["loc"] else ""
            if field in SETTING_FIELDS:
                problems.append(
                    ContainerProblem(
                        container,
                        _option_label(prefix, detail["loc"]),
                        _reason(detail["msg"], "port"),
                    )
                )
                continue
            if field not in _MODEL_FIELDS or detail["type"] == "missing":
                continue  # reported above as missing or empty
            setting = _MODEL_FIELDS[field]
            if setting == "predicate" and any(p.setting == where("mode") for p in problems):
                continue  # validated against the wrong mode: only the mode is wrong for sure
            problems.append(
                ContainerProblem(container, where(setting), _reason(detail["msg"], setting))
            )
    return candidate


def read_services(
    container: str, labels: Mapping[str, str], environment: Mapping[str, str]
) -> tuple[ServiceSettings, ...] | tuple[ContainerProblem, ...]:
    """Every service the container offers: the single-service form (``cosmonaut.predicate``,
    or the original's environment) and each ``cosmonaut.<service>.*`` namespace. Any problem
    leaves out the whole container (all of them are reported)."""
    namespaces = sorted(
        {
            key[len(LABEL_PREFIX) :].split(".", 1)[0]
            for key in labels
            if key.startswith(LABEL_PREFIX)
            and "." in key[len(LABEL_PREFIX) :]
            and key[len(LABEL_PREFIX) :].split(".", 1)[0] not in SINGLE_ROOTS
        }
    )
    single = any(
        key.startswith(LABEL_PREFIX) and key[len(LABEL_PREFIX) :].split(".", 1)[0] in SERVICE_ROOTS
        for key in labels
    ) or any(name in environment for name in MARKER_VARIABLES)
    found: list[ServiceSettings] = []
    problems: list[ContainerProblem] = []
    if single or not namespaces:
        read = read_settings(container, labels, environment)
        if isinstance(read, ServiceSettings):
            found.append(read)
        else:
            problems.extend(read)
    for namespace in namespaces:
        prefix = f"{LABEL_PREFIX}{namespace}."
        scoped = {key: value for key, value in labels.items() if key.startswith(prefix)}
        scoped.setdefault(prefix + "service", namespace)
        read = read_settings(container, scoped, {}, prefix=prefix)
        if isinstance(read, ServiceSettings):
            found.append(read)
        else:
            problems.extend(read)
    services = [s.service for s in found]
    for name in sorted({n for n in services if services.count(n) > 1}):
        problems.append(ContainerProblem(container, LABEL_PREFIX + name, "service given twice"))
    if problems:
        return tuple(problems)
    return tuple(found)


def is_enabled(labels: Mapping[str, str]) -> bool:
    """``cosmonaut.enable=false`` (or no, 0, off) opts a container out, whatever else it says."""
    return labels.get(ENABLE_LABEL, "true").strip().lower() not in NO_WORDS


def network_of(labels: Mapping[str, str]) -> str | None:
    """The Docker network to reach the container on (``cosmonaut.network``), if it says."""
    value = labels.get(NETWORK_LABEL, "").strip()
    return value or None


def _options(
    container: str, labels: Mapping[str, str], prefix: str, problems: list[ContainerProblem]
) -> tuple[dict[str, Any], int | None]:
    """The settings labels under ``prefix`` in the payload's shape, and the weight."""
    options: dict[str, Any] = {}
    weight: int | None = None
    for key, value in labels.items():
        if not key.startswith(prefix):
            continue
        path = key[len(prefix) :].split(".")
        root = path[0]
        text = value.strip()
        if root == "weight" and len(path) == 1:
            if not (text.isascii() and text.isdigit() and 0 <= int(text) <= 256):
                problems.append(
                    ContainerProblem(container, key, f"{_short(text)} is not a weight (0 to 256)")
                )
            else:
                weight = int(text)
        elif root in ("balance", "maxconn") and len(path) == 1:
            options[root] = _number(text) if root == "maxconn" else text
        elif root == "allow" and len(path) == 1:
            options["allow"] = [part.strip() for part in text.split(",") if part.strip()]
        elif root in ("health", "timeouts") and len(path) == 2:
            number = path[1] in ("status", "rise", "fall")
            options.setdefault(root, {})[path[1]] = _number(text) if number else text
        elif root == "auth" and len(path) == 2 and path[1] == "realm":
            options.setdefault("auth", {})["realm"] = text
        elif root == "auth" and len(path) == 2 and path[1] == "users":
            users = []
            for entry in (part.strip() for part in text.split(",")):
                name, _, hashed = entry.partition(":")
                users.append({"name": name, "hash": hashed})
            options.setdefault("auth", {})["users"] = users
        elif root == "headers" and len(path) >= 3 and path[1] in ("request", "response"):
            # The header name may itself hold dots: everything after the direction.
            options.setdefault("headers", {}).setdefault(path[1], {})[".".join(path[2:])] = value
        elif root == "tls" and path[1:] == ["acme"]:
            continue  # read by _flag
        elif root in SETTING_FIELDS or root == "weight":
            problems.append(ContainerProblem(container, key, f"unknown setting label; see {_DOCS}"))
    return options, weight


def _flag(
    container: str, label: str, labels: Mapping[str, str], problems: list[ContainerProblem]
) -> bool:
    """A yes/no label (absent: no)."""
    text = labels.get(label, "").strip().lower()
    if text in YES_WORDS:
        return True
    if text and text not in NO_WORDS:  # absent or empty: no
        problems.append(ContainerProblem(container, label, f"{_short(text)} is not true or false"))
    return False


def _option_label(prefix: str, loc: tuple[int | str, ...]) -> str:
    """The label that holds the value at ``loc`` of the candidate."""
    root = str(loc[0])
    if root == "headers" and len(loc) >= 3:
        return f"{prefix}headers.{loc[1]}.{loc[2]}"
    if root in ("health", "timeouts") and len(loc) >= 2:
        return f"{prefix}{root}.{loc[1]}"
    if root == "auth" and len(loc) >= 2:
        return f"{prefix}auth.{loc[1]}"
    return f"{prefix}{root}"


def _number(text: str) -> int | str:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else text


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


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
