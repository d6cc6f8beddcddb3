"""Fleet mode (host reports): any sequence of reports, clock steps, forgotten hosts and reads
gives what an independent model of ``reference/semantics.md`` ("Fleet mode") says, on every
store.

The model below is written from the semantics (and the decisions ``runtime/fleet.py``'s
docstring states), not from ``runtime.fleet``:

* the table keeps each host's last report and when it came; a report replaces its own host's
  report and nothing else, and removes the hosts that are expired at that moment;
* a host is live while ``now - reported_at <= ttl``; only live hosts count;
* a container's ``created`` is never later than the earliest its host said for it, in the
  report the table keeps or elsewhere in the same report (a forged time cannot keep
  winning, and a container listed twice does not change its time from report to report);
* a service exists while a live host runs a container of it that it lists as a candidate (a
  candidate without containers is no deployment: it neither keeps a service nor decides
  anything about it); its containers are those of
  the candidates that carry the winning settings, plus the ``running`` containers of that
  service that their host does not list as a candidate;
* the winning settings of a service are those of its newest deployment: the candidate whose
  newest known ``created`` is latest (a container without ``created`` is older than any
  known time); a tie is decided by the settings alone (the larger ``(mode, predicate,
  cookie)`` as text), so that the result never depends on the order of the reports; every
  other candidate of the service is left out and reported;
* two services whose winning settings claim one route (same mode and predicate): the one
  deployed first keeps it: the one whose containers the registry saw first (a host's
  container is first seen at the first report of it that the table still keeps), then the
  one with the oldest known ``created``; when that cannot be told (never seen, no known
  time, or a tie), every claimant is left out; the losers are reported.

Reports draw from a few hosts, services, predicates and creation times so that they interact:
hosts disagree on a service's settings (spelled differently: ``Host``/``host``, upper case,
trailing dots and slashes), services claim one shared host name or path, equal instants are
written in different time zones, and leases expire exactly at, and just after, the TTL.
"""

from __future__ import annotations

import copy
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from compiler.models import Service
from runtime.pipeline import compile_payload, render_table
from runtime.stores import Store, TableModeError
from runtime.stores.memory import MemoryStore
from runtime.stores.sqlite import SQLiteStore
from tests.support.aws import MotoServer, aws_env

TABLE = "fleet-model"
TTL = 30.0
START = 1_800_000_000.0
HOSTS = ["h0", "h1", "h2", "h3"]
NAMES = ["web", "api", "shop"]
# Equal instants spelled differently, and no time at all (None).
CREATED = [
    None,
    "2026-01-01T00:00:00Z",
    "2026-01-01T01:00:00+01:00",
    "2026-03-01T12:00:00Z",
    "2026-03-01T12:00:00.500000Z",
    "2026-02-28T22:00:00-14:00",
]

Settings = tuple[str, str, str | None]  # (mode, predicate, cookie), normalised
# name -> (mode, predicate, cookie, container ids)
ModelServices = dict[str, tuple[str, str, str | None, frozenset[str]]]


def address(container_id: str) -> str:
    """Every container id stands for one address: ``h1-api-2`` -> 10.1.1.3:80."""
    host, name, number = container_id.split("-")
    return f"10.{HOSTS.index(host)}.{NAMES.index(name)}.{int(number) + 1}:80"


def container_id(host: str, name: str, number: int) -> str:
    return f"{host}-{name}-{number}"


# -- what a host sends ----------------------------------------------------------------------


@st.composite
def candidate(draw: st.DrawFn, host: str, name: str) -> dict[str, Any]:
    mode = draw(st.sampled_from(["host", "Host", "path", "PATH", None]))
    if mode is None or mode.lower() == "host":
        predicate = draw(
            st.sampled_from(
                [
                    f"{name}.example.com",
                    f"{name.upper()}.Example.COM.",
                    "shared.example.com",
                    "Shared.Example.com",
                ]
            )
        )
    else:
        predicate = draw(
            st.sampled_from([f"/{name}", f"{name}/", "/shared", "shared/", f"{name}/v2"])
        )
    entry: dict[str, Any] = {"serviceName": name, "predicate": predicate}
    if mode is not None:
        entry["configMode"] = mode
    cookie = draw(st.sampled_from([None, None, "SID"]))
    if cookie is not None:
        entry["cookie"] = cookie
    numbers = draw(st.lists(st.integers(0, 3), max_size=3, unique=True))
    containers = []
    for number in numbers:
        cid = container_id(host, name, number)
        item: dict[str, Any] = {"id": cid, "ip": address(cid)}
        created = draw(st.sampled_from(CREATED))
        if created is not None:
            item["created"] = created
        containers.append(item)
    entry["containers"] = containers
    return entry


@st.composite
def host_report(draw: st.DrawFn) -> dict[str, Any]:
    """A host's payload: mostly as Cosmonaut sends it (one candidate per service, every
    container also in ``running``), sometimes with a service listed twice with other settings,
    a candidate without containers, a candidate container missing from ``running``, or a
    running container of no candidate."""
    host = draw(st.sampled_from(HOSTS))
    names = draw(st.lists(st.sampled_from(NAMES), max_size=4))
    candidates = [draw(candidate(host, name)) for name in names]
    running = [
        {"serviceName": entry["serviceName"], "id": c["id"], "ip": c["ip"]}
        for entry in candidates
        for c in entry["containers"]
        if draw(st.integers(0, 5)) > 0
    ]
    for name, number in draw(
        st.lists(st.tuples(st.sampled_from(NAMES), st.integers(4, 5)), max_size=2)
    ):
        cid = container_id(host, name, number)
        running.append({"serviceName": name, "id": cid, "ip": address(cid)})
    return {"table": TABLE, "host": host, "running": running, "candidates": candidates}


# -- the model ------------------------------------------------------------------------------


def settings_of(entry: dict[str, Any]) -> Settings:
    mode = str(entry.get("configMode", "host")).lower()
    predicate = entry["predicate"]
    if mode == "host":
        predicate = predicate.lower().removesuffix(".")
    else:
        predicate = "/" + predicate.strip("/")
    return (mode, predicate, entry.get("cookie"))


def moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class Expected:
    services: ModelServices
    # (service, where) of each candidate left out because another deployment is newer
    outdated: frozenset[tuple[str, str]]
    conflicted: frozenset[str]  # services left out because another one holds their route


def where(host: str, index: int, reporting: str | None) -> str:
    base = "$" if host == reporting else f"host '{host}': $"
    return f"{base}.candidates[{index}]"


FirstSeen = dict[str, dict[str, float]]  # host -> container id -> when the table first saw it


def expect(
    reports: dict[str, dict[str, Any]], first_seen: FirstSeen, reporting: str | None = None
) -> Expected:
    """What the live ``reports`` (host -> payload) render."""
    claims: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
    for host, payload in reports.items():
        for index, entry in enumerate(payload["candidates"]):
            if not entry["containers"]:
                continue  # the host runs no container of the service: no deployment of it
            claims.setdefault(entry["serviceName"], []).append((host, index, entry))

    def newest(entry: dict[str, Any]) -> tuple[bool, datetime]:
        times = [t for c in entry["containers"] if (t := moment(c.get("created")))]
        return (True, max(times)) if times else (False, datetime.min)

    winners: dict[str, Settings] = {}
    outdated = set()
    for name, group in claims.items():
        best = max(group, key=lambda claim: (newest(claim[2]), _text(settings_of(claim[2]))))
        winners[name] = settings_of(best[2])
        for host, index, entry in group:
            if settings_of(entry) != winners[name]:
                outdated.add((name, where(host, index, reporting)))

    never = (float("inf"), (1, datetime.min))

    def first_deployed(name: str) -> tuple[float, tuple[int, datetime]]:
        times = [
            (
                first_seen.get(host, {}).get(c["id"], float("inf")),
                (0, t) if (t := moment(c.get("created"))) else (1, datetime.min),
            )
            for host, _, entry in claims[name]
            if settings_of(entry) == winners[name]
            for c in entry["containers"]
        ]
        return min(times, default=never)

    kept = set()
    for name, (mode, predicate, _) in winners.items():
        rivals = [o for o, won in winners.items() if won[:2] == (mode, predicate) and o != name]
        mine = first_deployed(name)
        if not rivals or (mine != never and all(mine < first_deployed(r) for r in rivals)):
            kept.add(name)

    services: ModelServices = {}
    for name in kept:
        ids = {
            c["id"]
            for _, _, entry in claims[name]
            if settings_of(entry) == winners[name]
            for c in entry["containers"]
        }
        for payload in reports.values():
            listed = {c["id"] for entry in payload["candidates"] for c in entry["containers"]}
            ids.update(
                r["id"]
                for r in payload["running"]
                if r["serviceName"] == name and r["id"] not in listed
            )
        services[name] = (*winners[name], frozenset(ids))
    return Expected(services, frozenset(outdated), frozenset(set(winners) - kept))


def _text(settings: Settings) -> tuple[str, str, str]:
    return (settings[0], settings[1], settings[2] or "")


def no_later_than_said(payload: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The payload as the table keeps it: a container's ``created`` is never later than the
    earliest its host said for it, in the report the table still keeps or anywhere in this
    one. Every ``created`` drawn is before ``START``, so the other bound, the arrival time,
    never applies."""
    said: dict[tuple[str, str], datetime] = {}
    for entry in [*(previous or {"candidates": []})["candidates"], *payload["candidates"]]:
        for c in entry["containers"]:
            key, when = (entry["serviceName"], c["id"]), moment(c.get("created"))
            if when is not None and (key not in said or when < said[key]):
                said[key] = when
    kept = copy.deepcopy(payload)
    for entry in kept["candidates"]:
        for c in entry["containers"]:
            if c.get("created"):
                c["created"] = said[(entry["serviceName"], c["id"])].isoformat()
    return kept


# -- what the registry says -----------------------------------------------------------------


def observed(services: Any) -> ModelServices:
    found: ModelServices = {}
    for service in services:
        assert isinstance(service, Service)
        assert all(c.ip == address(c.id) for c in service.containers)
        ids = [c.id for c in service.containers]
        assert ids == sorted(set(ids)), f"{service.name}: containers unique and sorted"
        found[service.name] = (service.mode, service.predicate, service.cookie, frozenset(ids))
    return found


_ACL = re.compile(r"\s+acl (\S+) (hdr\(host\)\S* -i|path) (\S+)$")
_USE = re.compile(r"\s+use_backend (\S+) if (\S+)$")


def from_config(text: str) -> ModelServices:
    """The services the emitted haproxy.cfg routes: backends, servers, frontend rules."""
    acls: dict[str, tuple[str, str]] = {}
    routes: dict[str, tuple[str, str]] = {}
    backends: dict[str, tuple[str | None, list[str]]] = {}
    backend: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("backend "):
            backend = line.split()[1]
            backends[backend] = (None, [])
        elif line and not line[0].isspace():
            backend = None
        elif match := _ACL.match(line):
            acls[match[1]] = ("host" if match[2].startswith("hdr") else "path", match[3])
        elif match := _USE.match(line):
            routes[match[1]] = acls[match[2]]
        elif backend is not None:
            words = line.split()
            servers = backends[backend][1]
            if words[0] == "cookie":
                backends[backend] = (words[1], servers)
            elif words[0] == "server" and words[-1] != "disabled":  # not a free slot
                assert words[2] == address(words[1]), line
                servers.append(words[1])
    assert sorted(routes) == sorted(backends), "one routing rule per backend"
    return {
        name: (*routes[name], cookie, frozenset(servers))
        for name, (cookie, servers) in backends.items()
    }


# -- the machine ----------------------------------------------------------------------------


class FleetMachine(RuleBasedStateMachine):
    """Every store receives the same calls and must agree with the model after each one."""

    make_stores: Callable[[Path], list[Store]] = staticmethod(
        lambda directory: [MemoryStore(), SQLiteStore(directory / "state.db")]
    )

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="fleet-model-"))
        self.stores = type(self).make_stores(self.directory)
        self.now = START
        # host -> (reported_at, payload): what the table keeps, expired hosts included
        self.kept: dict[str, tuple[float, dict[str, Any]]] = {}
        self.first_seen: FirstSeen = {}  # of the hosts the table keeps
        for store in self.stores:
            store.clear(TABLE)

    def clock(self) -> float:
        return self.now

    def live(self) -> dict[str, tuple[float, dict[str, Any]]]:
        return {h: kept for h, kept in self.kept.items() if self.now - kept[0] <= TTL}

    @rule(payload=host_report())
    def report(self, payload: dict[str, Any]) -> None:
        host = payload["host"]
        others_before = [
            {h: r for h, r in store.hosts(TABLE).items() if h != host} for store in self.stores
        ]
        live_others = {h: kept for h, kept in self.live().items() if h != host}
        before_seen = self.first_seen.get(host, {}) if host in self.kept else {}
        previous = self.kept[host][1] if host in self.kept else None
        self.kept = {**live_others, host: (self.now, no_later_than_said(payload, previous))}
        self.first_seen = {h: self.first_seen[h] for h in live_others} | {
            host: {
                c["id"]: before_seen.get(c["id"], self.now)
                for entry in payload["candidates"]
                for c in entry["containers"]
            }
        }
        expected = expect(
            {h: p for h, (_, p) in self.kept.items()}, self.first_seen, reporting=host
        )
        texts = []
        for store, before in zip(self.stores, others_before, strict=True):
            result = compile_payload(payload, store=store, clock=self.clock, host_ttl=TTL)
            assert observed(result.services) == expected.services, store.label
            assert [s.name for s in result.services] == sorted(expected.services)
            assert from_config(result.text) == expected.services, store.label
            assert self.diagnosed(result.diagnostics) == (expected.outdated, expected.conflicted)
            texts.append(result.text)
            # A report never changes another host's report; it removes the expired ones only.
            after = store.hosts(TABLE)
            assert after[host].reported_at == self.now
            assert {h: r for h, r in after.items() if h != host} == {
                h: r for h, r in before.items() if h in live_others
            }, store.label
        assert len(set(texts)) == 1, "every store renders the same text"

    @staticmethod
    def diagnosed(diagnostics: Any) -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
        outdated = set()
        conflicted = set()
        for diagnostic in diagnostics:
            name = re.search(r"service '([^']+)'", diagnostic.message)
            assert name is not None, diagnostic
            if "newest deployment" in diagnostic.message:
                outdated.add((name[1], diagnostic.path))
            elif "conflicts" in diagnostic.message:
                conflicted.add(name[1])
            else:
                raise AssertionError(f"unexpected diagnostic: {diagnostic}")
        return frozenset(outdated), frozenset(conflicted)

    @rule(seconds=st.sampled_from([1.0, 10.0, 29.0, TTL, TTL + 1, 2 * TTL]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(host=st.sampled_from(HOSTS))
    def forget(self, host: str) -> None:
        for store in self.stores:
            assert store.forget_host(TABLE, host) is (host in self.kept), store.label
        self.kept.pop(host, None)
        self.first_seen.pop(host, None)

    @precondition(lambda self: bool(self.kept))
    @rule()
    def host_less_payload_is_refused(self) -> None:
        payload = {"table": TABLE, "running": [], "candidates": []}
        for store in self.stores:
            before = store.hosts(TABLE)
            with pytest.raises(TableModeError):
                compile_payload(payload, store=store, clock=self.clock, host_ttl=TTL)
            assert store.hosts(TABLE) == before and store.services(TABLE) == {}

    @precondition(lambda self: len(self.live()) > 1)
    @rule(data=st.data())
    def sending_the_same_reports_again_changes_nothing(self, data: st.DataObject) -> None:
        """Every live host sends its report again, in any order: the config stays what it
        was (no flapping: who came first and which deployment is newest stay decided)."""
        live = self.live()
        before = self.rendered()
        for host in data.draw(st.permutations(sorted(live)), label="order"):
            self.report(live[host][1])
        assert self.rendered() == before

    def rendered(self) -> list[str]:
        texts = []
        for store in self.stores:
            rendered = render_table(store, TABLE, clock=self.clock, host_ttl=TTL)
            assert rendered is not None
            texts.append(rendered.text)
        return texts

    @invariant()
    def a_read_renders_the_live_hosts(self) -> None:
        live = self.live()
        expected = expect({h: p for h, (_, p) in live.items()}, self.first_seen).services
        gone = {h for h in HOSTS if h not in live}
        texts = set()
        for store in self.stores:
            assert sorted(store.hosts(TABLE)) == sorted(self.kept), store.label
            rendered = render_table(store, TABLE, clock=self.clock, host_ttl=TTL)
            if not self.kept:
                assert rendered is None, store.label
                continue
            assert rendered is not None
            assert rendered.hosts == len(live)
            assert observed(rendered.services) == expected, store.label
            assert from_config(rendered.text) == expected, store.label
            servers = {c for *_, ids in from_config(rendered.text).values() for c in ids}
            assert not {c for c in servers if c.split("-")[0] in gone}, "expired hosts are gone"
            texts.add(rendered.text)
        assert len(texts) <= 1, "every store renders the same text"

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


LOCAL = settings(
    max_examples=60,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_memory_and_sqlite_agree_with_the_model() -> None:
    run_state_machine_as_test(FleetMachine, settings=LOCAL)


def test_dynamodb_agrees_with_the_model(
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.stores.dynamodb import DynamoDBStore

    aws_env(monkeypatch, moto_server.endpoint)

    class DynamoDBMachine(FleetMachine):
        make_stores = staticmethod(lambda directory: [MemoryStore(), DynamoDBStore()])

    run_state_machine_as_test(
        DynamoDBMachine, settings=settings(LOCAL, max_examples=12, stateful_step_count=10)
    )


# -- the model itself, on the cases semantics.md and the issue spell out --------------------


def _payload(host: str, *entries: tuple[str, str, str | None]) -> dict[str, Any]:
    """entries: (service, predicate, created) -> one candidate each, number 0."""
    candidates = []
    for name, predicate, created in entries:
        cid = container_id(host, name, 0)
        item: dict[str, Any] = {"id": cid, "ip": address(cid)}
        if created:
            item["created"] = created
        candidates.append({"serviceName": name, "predicate": predicate, "containers": [item]})
    return {"table": TABLE, "host": host, "running": [], "candidates": candidates}


def test_the_model_routes_with_the_newest_deployment() -> None:
    old = _payload("h0", ("web", "old.example.com", "2026-01-01T00:00:00Z"))
    new = _payload("h1", ("web", "new.example.com", "2026-03-01T12:00:00Z"))
    expected = expect({"h0": old, "h1": new}, {}, reporting="h0")
    assert expected.services == {"web": ("host", "new.example.com", None, frozenset({"h1-web-0"}))}
    assert expected.outdated == {("web", "$.candidates[0]")}


def test_the_model_gives_a_shared_route_to_the_first_deployed() -> None:
    first = _payload("h0", ("api", "shared.example.com", "2026-01-01T00:00:00Z"))
    later = _payload("h1", ("web", "shared.example.com", "2026-03-01T12:00:00Z"))
    expected = expect({"h0": first, "h1": later}, {})
    assert sorted(expected.services) == ["api"] and expected.conflicted == {"web"}
    # The same instant in another time zone: who came first cannot be told.
    tied = _payload("h1", ("web", "shared.example.com", "2026-01-01T01:00:00+01:00"))
    expected = expect({"h0": first, "h1": tied}, {})
    assert expected.services == {} and expected.conflicted == {"api", "web"}
    # What the registry saw first decides before any ``created`` a host states.
    seen = {"h0": {"h0-api-0": START + 5}, "h1": {"h1-web-0": START}}
    expected = expect({"h0": first, "h1": later}, seen)
    assert sorted(expected.services) == ["web"] and expected.conflicted == {"api"}
