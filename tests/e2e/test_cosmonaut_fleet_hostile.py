"""A hostile host in a fleet on the real engine: it attacks, and nobody freezes.

Two honest hosts (``cosmonaut run`` processes, ``tests.support.fleet_e2e``) and a hostile
one, ``host-evil``, that is raw HTTP POSTs, each with its own token
(``serve --host-tokens``). The hostile host tries what a compromised host of a shared fleet
could: values that would stop HAProxy from loading or starting (poison pills), hashes that cost
minutes to check, another host's report, a forged ``created``, another service's route, name or
protected path, servers on each host's own loopback and metadata addresses, and config text
smuggled in a value. Each attempt counts as refused when the registry answers 4xx, or when
its answer reports the entry left out and the entry's effect is absent from the config both
honest HAProxies run, and from what they answer. A canary service in each attempt's report
(an entry the registry accepts) shows that both HAProxies run a config made after the
attempt, so an absence is one that counts.

Then both honest hosts must still serve (through either HAProxy) and still update: a new
container on host-b reaches both HAProxies. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtime.identity import parse_host_tokens
from tests.support.cosmonaut_e2e import DockerHost, HaproxyBox, eventually, ip_of, short
from tests.support.fleet_e2e import (
    Cosmonaut,
    Registry,
    another_host,
    answers,
    backends,
    fleet_registry,
)
from tests.support.passwords import sha512_hash

TTL = 60  # host-evil's report stays live between its POSTs
OPERATOR = "operator-" + uuid.uuid4().hex
TOKENS = {host: f"{host}-{uuid.uuid4().hex}" for host in ("host-a", "host-b", "host-evil")}
# serve --host-tokens' format: <token> <host-id-glob>...
HOST_TOKENS = "".join(f"{token} {host}\n" for host, token in TOKENS.items())
# A render option binding one service to its host: nobody else may add containers to it.
OPTIONS = {"fleet_owners": [{"services": "api", "hosts": ["host-b"]}]}
PASSWORD = "correct horse"
CREDENTIALS = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
EVIL_NET = "198.51.100."  # host-evil's containers (TEST-NET-2)


HASH = sha512_hash(PASSWORD)
AUTH_LABEL = {"cosmonaut.auth.users": f"alice:{HASH}"}
WEB = {
    "cosmonaut.service": "web",
    "cosmonaut.predicate": "web.example",
    "cosmonaut.port": "8080",
    **AUTH_LABEL,
}
ADMIN = {
    "cosmonaut.service": "admin",
    "cosmonaut.mode": "path",
    "cosmonaut.predicate": "/admin",
    "cosmonaut.port": "8080",
    **AUTH_LABEL,
}
API = {"cosmonaut.service": "api", "cosmonaut.predicate": "api.example", "cosmonaut.port": "8080"}


@dataclass
class Honest:
    a: Cosmonaut
    b: Cosmonaut
    web: Any  # host-a's containers
    admin: Any
    api: Any  # host-b's
    evil: str  # host-evil's own answering servers' addresses (no Cosmonaut manages them)
    canary: str

    @property
    def haproxies(self) -> tuple[HaproxyBox, HaproxyBox]:
        return self.a.haproxy, self.b.haproxy


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    env = {"LAMBDA_REGISTRY_HOST_TTL": str(TTL), "LAMBDA_REGISTRY_OPTIONS": json.dumps(OPTIONS)}
    credentials = parse_host_tokens(HOST_TOKENS, file="host-tokens")
    with fleet_registry(monkeypatch, env, OPERATOR, credentials) as running:
        yield running


@pytest.fixture
def second_host(client: Any) -> Iterator[DockerHost]:
    with another_host(client) as box:
        yield box


@pytest.fixture
def evil_host(client: Any) -> Iterator[DockerHost]:
    with another_host(client) as box:
        yield box


@pytest.fixture
def honest(
    host: DockerHost,
    second_host: DockerHost,
    evil_host: DockerHost,
    registry: Registry,
    tmp_path: Path,
) -> Iterator[Honest]:
    table = f"fleet-{uuid.uuid4().hex[:8]}"
    url = registry.url
    a = Cosmonaut("host-a", host, host.haproxy(), tmp_path / "a", url, table, TOKENS["host-a"])
    b = Cosmonaut(
        "host-b", second_host, second_host.haproxy(), tmp_path / "b", url, table, TOKENS["host-b"]
    )
    fleet = Honest(
        a,
        b,
        web=host.service("web1", labels=WEB),
        admin=host.service("admin1", labels=ADMIN),
        api=second_host.service("api1", labels=API),
        evil=f"{ip_of(evil_host.service('evil', paths=('admin/evil',)))}:8080",
        canary=f"{ip_of(evil_host.service('canary'))}:8080",
    )
    a.start()
    b.start()
    try:
        yield fleet
    finally:
        a.stop()
        b.stop()
        for one in (a, b):
            print(f"--- {one.host_id} log tail ---\n{one.tail()}")


# -- what a user of the honest hosts sees ------------------------------------------------------


def expect(haproxy: HaproxyBox, want: int | str, **request: Any) -> list[str]:
    """``[]`` when a request through ``haproxy`` answers ``want`` (a status, or the body of a
    200), else what it answered instead."""
    try:
        reply = haproxy.get(**request)
    except OSError as error:  # routed to an address that never answers
        return [f"{request}: {type(error).__name__}: {error} (want {want!r})"]
    if (reply.status, reply.body) == (200, want) or reply.status == want:
        return []
    shown = {k: v for k, v in request.items() if k != "authorization"}
    with_credentials = " with credentials" if "authorization" in request else ""
    return [f"{shown}{with_credentials}: {reply.status} {reply.body[:40]!r} (want {want!r})"]


def web_protected(haproxy: HaproxyBox, fleet: Honest) -> list[str]:
    return [
        *expect(haproxy, 401, host="web.example"),
        *expect(haproxy, short(fleet.web), host="web.example", authorization=CREDENTIALS),
    ]


def admin_protected(haproxy: HaproxyBox, fleet: Honest) -> list[str]:
    return [
        *expect(haproxy, 401, host="any.example", path="/admin/"),
        *expect(haproxy, 401, host="any.example", path="/admin/evil/"),
        *expect(
            haproxy,
            short(fleet.admin),
            host="any.example",
            path="/admin/",
            authorization=CREDENTIALS,
        ),
    ]


def api_routed(haproxy: HaproxyBox, fleet: Honest) -> list[str]:
    return [
        problem
        for _ in range(6)
        for problem in expect(haproxy, short(fleet.api), host="api.example")
    ]


def serving(haproxy: HaproxyBox, fleet: Honest) -> bool:
    return not (
        web_protected(haproxy, fleet)
        or admin_protected(haproxy, fleet)
        or api_routed(haproxy, fleet)
    )


# -- the hostile host ----------------------------------------------------------------------------


def post(registry: Registry, payload: Any) -> tuple[int, dict[str, Any]]:
    """host-evil's POST with its own token: the status and the JSON answer (or problem)."""
    request = urllib.request.Request(
        registry.url,
        json.dumps(payload).encode(),
        {
            "Authorization": f"Bearer {TOKENS['host-evil']}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def registry_config(registry: Registry, table: str) -> str:
    """The table's config as any host reads it (host-evil's token may read)."""
    request = urllib.request.Request(
        f"{registry.url}?table={table}", headers={"Authorization": f"Bearer {TOKENS['host-evil']}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return str(response.read().decode())


def evil(number: int, **settings: Any) -> dict[str, Any]:
    """A candidate of host-evil's, its container at an address of its own."""
    entry: dict[str, Any] = {
        "serviceName": f"evil{number}",
        "predicate": f"evil{number}.example",
        "containers": [{"id": f"evil{number}", "ip": f"{EVIL_NET}{number}:8080"}],
    }
    entry.update(settings)
    return entry


EVIL_SERVER = "<host-evil's server>"  # filled in with its address when sent


def boxes(number: int, ip: str | None = None, created: str | None = None) -> list[dict[str, Any]]:
    box = {"id": f"evil{number}", "ip": ip or f"{EVIL_NET}{number}:8080"}
    if created:
        box["created"] = created
    return [box]


Check = Callable[[HaproxyBox, Honest], list[str]]


@dataclass
class Attempt:
    name: str
    candidate: dict[str, Any]  # the hostile entry, $.candidates[0]
    absent: tuple[str, ...] = ()  # text that must not reach either HAProxy's config
    answers: tuple[Check, ...] = ()  # what either HAProxy must still answer
    host: str = "host-evil"
    running: list[dict[str, Any]] = field(default_factory=list)


ATTEMPTS = [
    # 1. poison pills: one would stop HAProxy from loading the whole config
    Attempt("timeout-overflow", evil(1, timeouts={"server": "999999999d"}), ("999999999",)),
    Attempt("health-interval-0", evil(2, health={"path": "/", "interval": "0"}), ("inter 0",)),
    Attempt("allow-zone-index", evil(3, allow=["fe80::1%eth0"]), ("fe80::1%eth0",)),
    Attempt("empty-header-value", evil(4, headers={"request": {"X-Evil": ""}}), ("X-Evil",)),
    # 2. costly hashes: checked at every reload and every login
    Attempt(
        "sha512-rounds",
        evil(5, auth={"users": [{"name": "u", "hash": "$6$rounds=999999999$salt$" + "a" * 86}]}),
        ("rounds=999999999",),
    ),
    Attempt(
        "bcrypt-cost-99",
        evil(6, auth={"users": [{"name": "u", "hash": "$2b$99$" + "a" * 53}]}),
        ("$2b$99$",),
    ),
    # 3. forged identity and time, addresses local to every host
    Attempt("impersonate-host-b", evil(7), answers=(api_routed,), host="host-b"),
    Attempt(
        "web-created-9999",
        {
            "serviceName": "web",
            "predicate": "web.example",
            "containers": boxes(8, EVIL_SERVER, "9999-12-31T23:59:59Z"),
        },
        answers=(web_protected,),
    ),
    Attempt(
        "api-route-created-0001",
        {
            "serviceName": "api2",
            "predicate": "api.example",
            "containers": boxes(9, EVIL_SERVER, "0001-01-01T00:00:00Z"),
        },
        ("backend api2",),
        (api_routed,),
    ),
    Attempt(
        "created-out-of-range",
        evil(10, containers=boxes(10, created="0001-01-01T00:00:00+01:00")),
    ),
    Attempt(
        "metadata-address",
        evil(11, containers=boxes(11, "169.254.169.254:80")),
        ("169.254.169.254",),
    ),
    Attempt(
        "docker-api-address",
        evil(12, containers=boxes(12, "127.0.0.1:2375")),
        ("127.0.0.1:2375",),
    ),
    # 4. takeovers: a protected service by name, a path under a protected path, an owned service
    Attempt(
        "web-by-name-without-auth",
        {"serviceName": "web", "predicate": "web.example", "containers": boxes(13, EVIL_SERVER)},
        answers=(web_protected,),
    ),
    Attempt(
        "path-under-protected-admin",
        evil(14, configMode="path", predicate="/admin/evil", containers=boxes(14, EVIL_SERVER)),
        ("/admin/evil",),
        (admin_protected,),
    ),
    Attempt(
        "join-api-owned-by-host-b",
        {"serviceName": "api", "predicate": "api.example", "containers": boxes(15, EVIL_SERVER)},
        answers=(api_routed,),
    ),
    # 5. config text smuggled in a value
    Attempt(
        "header-program-injection",
        evil(16, headers={"request": {"X-Evil": "v\nprogram evil\n  command /bin/sh -c id"}}),
        ("program evil", "/bin/sh"),
    ),
    Attempt(
        "predicate-lua-load-injection",
        evil(17, predicate="evil17.example\nglobal\n  lua-load /tmp/evil.lua"),
        ("lua-load",),
    ),
]


def canary(number: int, fleet: Honest) -> dict[str, Any]:
    """An entry the registry accepts: once it answers through both HAProxies, they run a
    config made after the attempt that carried it."""
    return {
        "serviceName": f"canary{number}",
        "predicate": f"canary{number}.example",
        "containers": [{"id": f"canary{number}", "ip": fleet.canary}],
    }


def sent(attempt: Attempt, fleet: Honest) -> dict[str, Any]:
    """The attempt's entry, with host-evil's server's address filled in."""
    entry: dict[str, Any] = json.loads(
        json.dumps(attempt.candidate).replace(EVIL_SERVER, fleet.evil)
    )
    return entry


def left_out(document: dict[str, Any]) -> bool:
    """The registry's answer reports the hostile entry ($.candidates[0]) left out."""
    paths = [d.get("path", "") for d in document.get("diagnostics", [])]
    return any(p == "$.candidates[0]" or p.startswith("$.candidates[0].") for p in paths)


def attack(
    registry: Registry, fleet: Honest, number: int, attempt: Attempt
) -> tuple[int, list[str]]:
    """Send ``attempt``; its status and why it was not refused (empty: refused)."""
    candidate = sent(attempt, fleet)
    payload = {
        "table": fleet.a.table,
        "host": attempt.host,
        "running": attempt.running,
        "candidates": [candidate, canary(number, fleet)],
    }
    status, document = post(registry, payload)
    evil_address = str(candidate["containers"][0]["ip"])
    if 400 <= status < 500:
        # Refused whole: nothing stored, the impersonated host's report stands.
        kept = short(fleet.api) in registry_config(registry, fleet.a.table)
        return status, [] if kept else ["host-b's api left the registry's config"]
    if status != 200:
        return status, [f"answered {status}: {document.get('detail')}"]
    problems = [] if left_out(document) else ["no diagnostic for $.candidates[0]"]
    for haproxy, who in zip(fleet.haproxies, ("host-a", "host-b"), strict=True):
        try:
            eventually(
                lambda haproxy=haproxy: haproxy.get(host=f"canary{number}.example").status == 200,
                30,
                what=f"attempt {number}'s canary at {who}",
            )
        except pytest.fail.Exception:
            problems.append(f"{who}'s HAProxy never ran a config made after it")
            continue
        config = haproxy.config()
        for text in (f"{evil_address} ", *attempt.absent):
            if text in config:
                problems.append(f"{text!r} in {who}'s HAProxy config")
        for check in attempt.answers:
            problems += [f"through {who}'s HAProxy {p}" for p in check(haproxy, fleet)]
    return status, problems


def test_a_hostile_host_is_refused_and_no_honest_host_freezes(
    honest: Honest, registry: Registry
) -> None:
    fleet = honest
    for haproxy, who in zip(fleet.haproxies, ("host-a", "host-b"), strict=True):
        eventually(lambda haproxy=haproxy: serving(haproxy, fleet), 90, what=f"serving at {who}")

    refused, lines = 0, []
    for number, attempt in enumerate(ATTEMPTS, start=1):
        status, problems = attack(registry, fleet, number, attempt)
        refused += not problems
        what = json.dumps(attempt.candidate)[:110]
        verdict = "refused" if not problems else "NOT REFUSED: " + "; ".join(problems)
        lines.append(f"{number:2} {attempt.name} as {attempt.host}: {status} {verdict}\n   {what}")
    print("\n".join(lines))

    # Every entry at once, without a canary: the hostile host's last word.
    final = {
        "table": fleet.a.table,
        "host": "host-evil",
        "running": [],
        "candidates": [sent(a, fleet) for a in ATTEMPTS if a.host == "host-evil"],
    }
    status, document = post(registry, final)
    print(f"all at once: {status}, {len(document.get('diagnostics', []))} diagnostics")

    # Both honest hosts still serve, and still update: a new container on host-b reaches both.
    marks = {one.host_id: one.log.stat().st_size for one in (fleet.a, fleet.b)}
    newer = fleet.b.docker.service("api2", labels=API)
    frozen = []
    for one in (fleet.a, fleet.b):
        try:
            eventually(
                lambda one=one: short(newer) in backends(one.haproxy),
                60,
                what=f"host-b's new api container at {one.host_id}",
            )
        except pytest.fail.Exception:
            frozen.append(one.host_id)
    print(
        f"attempts={len(ATTEMPTS)} refused={refused} hosts_frozen={len(frozen)}"
        f"{' (' + ', '.join(frozen) + ')' if frozen else ''}"
    )
    assert refused == len(ATTEMPTS), "\n".join(line for line in lines if "NOT REFUSED" in line)
    assert frozen == []

    for one in (fleet.a, fleet.b):
        passes = one.passes_since(marks[one.host_id])
        outcomes = [(p["event"], p.get("outcome")) for p in passes]
        assert ("reconciled", "applied") in outcomes, outcomes
        assert set(outcomes) <= {("reconciled", "applied"), ("reconciled", "unchanged")}, outcomes
        haproxy = one.haproxy
        config = haproxy.config()
        for address in ("169.254.169.254", "127.0.0.1:2375", EVIL_NET, fleet.evil, fleet.canary):
            assert address not in config, f"{address} in {one.host_id}'s HAProxy config"
        assert web_protected(haproxy, fleet) == []
        assert admin_protected(haproxy, fleet) == []
        assert answers(haproxy, "api.example", 8) == {short(fleet.api), short(newer)}
