"""ACME without a CA: store records, the vault's leases, the labels, which services wait on
HTTP, and the manager's schedule (renewal at a third of the lifetime, backoff that respects
``Retry-After``, one name's failure never touching another), on a test clock.

The CA itself is pebble in ``tests/cosmonaut/test_acme_pebble.py``; here an ``Orderer`` that answers
as told stands in for it, since what is under test is when Cosmonaut orders, not how.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from cosmonaut.acme.client import AcmeError
from cosmonaut.acme.manager import CertificateManager
from cosmonaut.acme.policy import acme_names, hold_back
from cosmonaut.acme.vault import Issued, Vault
from cosmonaut.discovery.containers import ManagedContainer
from cosmonaut.discovery.labels import ContainerProblem, ServiceSettings, read_services
from cosmonaut.discovery.payload import build_payload
from cosmonaut.metrics import Metrics
from runtime.pipeline import compile_payload
from runtime.stores import Store
from runtime.stores.memory import MemoryStore
from runtime.stores.sqlite import SQLiteStore
from tests.support.tls_certs import self_signed

DAY = 86_400.0


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "state.db")
    request.getfixturevalue("dynamodb")
    from runtime.stores.dynamodb import DynamoDBStore

    return DynamoDBStore()


@pytest.fixture
def table(request: pytest.FixtureRequest) -> str:
    import uuid

    return f"acme-{uuid.uuid4().hex[:10]}"


# -- records ---------------------------------------------------------------------------------


def test_records_are_written_by_compare_and_swap(store: Store, table: str) -> None:
    assert store.record(table, "k") is None
    assert store.swap_record(table, "k", 0, "one")
    assert not store.swap_record(table, "k", 0, "again")  # exists now
    record = store.record(table, "k")
    assert record is not None and (record.value, record.revision) == ("one", 1)
    assert not store.swap_record(table, "k", 5, "stale")
    assert store.swap_record(table, "k", 1, "two")
    assert store.record(table, "k") == type(record)("two", 2)
    assert store.swap_record(table, "k", 2, None)
    assert store.record(table, "k") is None


def test_records_do_not_show_as_services_or_hosts(store: Store, table: str) -> None:
    store.swap_record(table, "acme:cert:web.example", 0, "{}")
    payload = {
        "table": table,
        "running": [{"serviceName": "web", "id": "w1", "ip": "10.0.0.1:80"}],
        "candidates": [
            {
                "serviceName": "web",
                "predicate": "web.example",
                "containers": [{"id": "w1", "ip": "10.0.0.1:80"}],
            }
        ],
    }
    text = compile_payload(payload, store=store).text
    assert list(store.services(table)) == ["web"]
    assert store.hosts(table) == {}
    assert "acme" not in text


def test_two_writers_racing_for_one_record_one_wins(store: Store, table: str) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        barrier.wait()
        results.append(store.swap_record(table, "lease", 0, str(n)))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1


def test_the_sqlite_file_is_private(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state" / "registry.db")
    store.swap_record("t", "acme:account-key", 0, "secret")
    assert (tmp_path / "state" / "registry.db").stat().st_mode & 0o777 == 0o600


# -- the vault -------------------------------------------------------------------------------


def test_one_account_key_for_every_host() -> None:
    store = MemoryStore()
    made: list[str] = []

    def create() -> str:
        made.append(f"key-{len(made)}")
        return made[-1]

    a = Vault(store, "t", "a").account_key(create)
    b = Vault(store, "t", "b").account_key(create)
    assert a == b == "key-0" and made == ["key-0"]


def test_a_lease_is_held_until_released_or_expired() -> None:
    now = [1000.0]
    store = MemoryStore()
    a = Vault(store, "t", "a", clock=lambda: now[0])
    b = Vault(store, "t", "b", clock=lambda: now[0])
    assert a.take_lease("web.example", 60) is None
    busy = b.take_lease("web.example", 60)
    assert busy is not None and (busy.holder, busy.backoff) == ("a", False)
    assert a.take_lease("web.example", 60) is None  # its own: renewed
    now[0] += 61
    assert b.take_lease("web.example", 60) is None  # a's expired
    b.release_lease("web.example")
    a.release_lease("web.example")  # not a's: nothing happens
    assert a.take_lease("web.example", 60) is None


# -- labels and the plan ---------------------------------------------------------------------

WEB = {"cosmonaut.service": "web", "cosmonaut.predicate": "web.example", "cosmonaut.port": "80"}


def test_the_acme_label_in_both_label_forms() -> None:
    single = read_services(
        "c1", {**WEB, "cosmonaut.tls": "redirect", "cosmonaut.tls.acme": "true"}, {}
    )
    assert [s.acme for s in single] == [True]  # type: ignore[union-attr]
    namespaced = read_services(
        "c1",
        {
            "cosmonaut.api.predicate": "api.example",
            "cosmonaut.api.port": "81",
            "cosmonaut.api.tls": "on",
            "cosmonaut.api.tls.acme": "yes",
            "cosmonaut.www.predicate": "www.example",
            "cosmonaut.www.port": "82",
        },
        {},
    )
    assert {s.service: s.acme for s in namespaced} == {"api": True, "www": False}  # type: ignore[union-attr]
    # Not sent to the registry: only tls is.
    assert "acme" not in single[0].options  # type: ignore[union-attr]


def test_a_bad_acme_label_leaves_out_its_container_and_says_where() -> None:
    problems = read_services("c1", {**WEB, "cosmonaut.tls.acme": "sure"}, {})
    assert problems == (
        ContainerProblem("c1", "cosmonaut.tls.acme", "'sure' is not true or false"),
    )


def managed(name: str, settings: ServiceSettings) -> ManagedContainer:
    return ManagedContainer(f"{name:0<12}{'f' * 52}", name, 0.0, settings, "podman", "10.88.0.2:80")


def settings(service: str, tls: str, *, acme: bool, mode: str = "host") -> ServiceSettings:
    predicate = f"{service}.example" if mode == "host" else f"/{service}"
    options = json.dumps({"tls": tls}) if tls != "off" else "{}"
    return ServiceSettings(service, mode, predicate, None, 80, options, None, acme)  # type: ignore[arg-type]


def test_which_services_get_acme_certificates() -> None:
    plan = build_payload(
        "t",
        [
            managed("a", settings("a", "redirect", acme=True)),
            managed("b", settings("b", "on", acme=False)),
            managed("c", settings("c", "off", acme=True)),  # no HTTPS asked
            managed("d", settings("d", "on", acme=True, mode="path")),  # no name to certify
            managed("e", settings("e", "on", acme=False)),
        ],
    )
    assert acme_names(plan, everyone=False) == {0: "a.example"}
    # Daemon-wide: every on/redirect host service without a certificate file of its own.
    assert acme_names(plan, everyone=True, folder=["e.example.pem", "a.example.acme.pem"]) == {
        0: "a.example",
        1: "b.example",
    }


def test_a_service_waiting_for_its_first_certificate_stays_on_http() -> None:
    plan = build_payload(
        "t",
        [
            managed("a", settings("a", "redirect", acme=True)),
            managed("b", settings("b", "redirect", acme=False)),
        ],
    )
    held = hold_back(plan, [0])
    assert [c.get("tls") for c in held.payload["candidates"]] == ["off", "redirect"]
    assert [c.get("tls") for c in plan.payload["candidates"]] == ["redirect", "redirect"]


# -- the manager -----------------------------------------------------------------------------


def issued(name: str, not_before: float, not_after: float, by: str = "a") -> Issued:
    """A real (self-signed) certificate and key; the validity the manager reads is given."""
    chain, key = self_signed(name)
    return Issued(name, chain.decode(), key.decode(), not_before, not_after, by)


class Answers:
    """Issues certificates valid for 90 days from the clock, or raises what it is told to."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.failures: dict[str, list[Exception]] = {}
        self.orders: list[str] = []

    def order(self, name: str) -> Issued:
        self.orders.append(name)
        if self.failures.get(name):
            raise self.failures[name].pop(0)
        now = self.clock[0]
        return issued(name, now, now + 90 * DAY)


def manager_on_clock(**options: Any) -> tuple[CertificateManager, Answers, list[float], list[str]]:
    clock = [1_000_000.0]
    answers = Answers(clock)
    notified: list[str] = []
    manager = CertificateManager(
        Vault(MemoryStore(), "t", "a", clock=lambda: clock[0]),
        answers,
        clock=lambda: clock[0],
        metrics=Metrics(),
        notify=notified.append,
        **options,
    )
    return manager, answers, clock, notified


def test_ordered_once_then_renewed_with_a_third_of_the_lifetime_left() -> None:
    manager, answers, clock, notified = manager_on_clock()
    manager.want(["web.example"])
    manager.tick()
    assert answers.orders == ["web.example"] and notified == ["certificate web.example"]
    first = manager.ready("web.example")
    assert first is not None
    manager.installed([first])
    clock[0] += 59 * DAY  # 31 days left: more than a third
    manager.tick()
    assert answers.orders == ["web.example"]
    clock[0] += 2 * DAY  # 29 days left
    manager.tick()
    assert answers.orders == ["web.example"] * 2
    second = manager.ready("web.example")
    assert second is not None and second.not_after > first.not_after
    assert notified == ["certificate web.example"] * 2


def test_failures_back_off_and_respect_retry_after_without_touching_other_names() -> None:
    manager, answers, clock, _ = manager_on_clock(retry_min=60, retry_max=600)
    answers.failures["bad.example"] = [
        AcmeError("the CA refused: rateLimited: too many", retry_after=3600),
        AcmeError("the CA refused: serverInternal: oops"),
    ]
    manager.want(["bad.example", "good.example"])
    manager.tick()
    status = {s["name"]: s for s in manager.status()}
    assert status["good.example"]["state"] == "valid"
    assert status["bad.example"]["state"] == "failed"
    assert status["bad.example"]["last_error"] == "the CA refused: rateLimited: too many"
    assert manager.ready("good.example") is not None
    clock[0] += 600  # the backoff alone would allow it; Retry-After does not
    manager.tick()
    assert answers.orders.count("bad.example") == 1
    clock[0] += 3000
    manager.tick()
    assert answers.orders.count("bad.example") == 2
    status = {s["name"]: s for s in manager.status()}
    assert status["bad.example"]["failures"] == 2
    assert manager.metrics.per_name["cosmonaut_acme_certificate_failing"] == {
        "bad.example": 1.0,
        "good.example": 0.0,
    }
    clock[0] += 600 * 1.2 + 1  # the second backoff (at most 120 s * jitter) has passed
    manager.tick()
    assert manager.ready("bad.example") is not None
    assert manager.status()[0]["last_error"] is None
    rendered = manager.metrics.render()
    assert 'cosmonaut_acme_certificate_expiry_timestamp_seconds{name="bad.example"}' in rendered


def test_a_failed_renewal_keeps_the_working_certificate_served() -> None:
    manager, answers, clock, _ = manager_on_clock()
    manager.want(["web.example"])
    manager.tick()
    clock[0] += 61 * DAY
    answers.failures["web.example"] = [AcmeError("cannot reach the CA")]
    manager.tick()
    assert manager.status()[0]["state"] == "valid"
    assert manager.status()[0]["last_error"] == "cannot reach the CA"
    assert manager.ready("web.example") is not None


def test_a_host_waits_while_another_holds_the_lease() -> None:
    manager, answers, clock, _ = manager_on_clock()
    other = Vault(manager.vault.store, "t", "b", clock=lambda: clock[0])
    assert other.take_lease("web.example", 600) is None
    manager.want(["web.example"])
    manager.tick()
    assert answers.orders == []
    assert manager.status()[0]["state"] == "waiting"
    assert manager.status()[0]["lease_holder"] == "b"


def test_key_material_never_reaches_the_status() -> None:
    manager, _, _, _ = manager_on_clock()
    manager.want(["web.example"])
    manager.tick()
    assert "PRIVATE KEY" not in json.dumps(manager.status())
    assert "PRIVATE KEY" not in json.dumps(manager.ready("web.example").public())  # type: ignore[union-attr]


def test_records_are_listed_by_prefix(store: Store, table: str) -> None:
    store.swap_record(table, "acme:cert:a.example", 0, "A")
    store.swap_record(table, "acme:cert:b.example", 0, "B")
    store.swap_record(table, "acme:lease:a.example", 0, "L")
    store.swap_record(f"{table}-other", "acme:cert:c.example", 0, "C")
    listed = store.records(table, "acme:cert:")
    assert {key: record.value for key, record in listed.items()} == {
        "acme:cert:a.example": "A",
        "acme:cert:b.example": "B",
    }
    assert store.records("never-written", "acme:") == {}


def test_every_host_installs_every_certificate_of_the_fleet() -> None:
    manager, _, clock, _ = manager_on_clock()
    manager.want(["mine.example"])
    manager.tick()
    other = Vault(manager.vault.store, "t", "b", clock=lambda: clock[0])
    now = clock[0]
    other.put_certificate(issued("theirs.example", now, now + DAY, "b"))
    other.put_certificate(issued("expired.example", now - 2 * DAY, now - DAY, "b"))
    assert [i.name for i in manager.ready_all()] == ["mine.example", "theirs.example"]


def test_a_damaged_certificate_record_is_skipped_and_ordered_again() -> None:
    manager, answers, clock, _ = manager_on_clock()
    manager.want(["web.example"])
    manager.tick()
    store = manager.vault.store
    good = issued("other.example", clock[0], clock[0] + DAY)
    manager.vault.put_certificate(good)
    record = store.record("t", "acme:cert:web.example")
    assert record is not None
    mismatched = json.loads(record.value) | {"key": good.key}  # another certificate's key
    assert store.swap_record("t", "acme:cert:web.example", record.revision, json.dumps(mismatched))
    # Installing skips it (the other certificates are still installed), routing holds it back.
    assert [i.name for i in manager.ready_all()] == ["other.example"]
    assert manager.ready("web.example") is None
    clock[0] += 61 * DAY  # due: the damaged record is replaced by a new order
    manager.tick()
    assert answers.orders == ["web.example"] * 2
    assert manager.ready("web.example") is not None


# -- the command line ------------------------------------------------------------------------


def test_acme_usage_errors_say_what_is_missing(tmp_path: Path) -> None:
    from tests.support.cosmonaut_cli import cli

    done = cli("once", "--acme-directory", "https://ca.invalid/dir", "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert "--acme-directory needs --acme-accept-tos" in done.stderr
    done = cli("once", "--acme-email", "ops@example.test", "--state-dir", str(tmp_path))
    assert done.returncode == 2 and "need --acme-directory" in done.stderr
    done = cli(
        *("once", "--table", "t", "--store", "memory", "--state-dir", str(tmp_path)),
        *("--acme-directory", "https://ca.invalid/dir", "--acme-accept-tos"),
    )
    assert done.returncode == 2
    assert "--acme-directory needs a certificate folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_text_shows_each_name_its_expiry_and_last_error() -> None:
    from cosmonaut.state import status_text

    manager, answers, _, _ = manager_on_clock()
    answers.failures["bad.example"] = [AcmeError("the CA refused: rejectedIdentifier: no")]
    manager.want(["bad.example", "good.example"])
    manager.tick()
    text = status_text({"table": "t", "acme": manager.status()})
    assert "acme:       2 name(s)" in text
    assert "bad.example" in text and "failed 1x: the CA refused: rejectedIdentifier: no" in text
    good = next(line for line in text.splitlines() if "good.example" in line)
    assert "valid" in good and "expires 1970-" in good


def test_letsencrypt_host_asks_for_a_certificate_as_acme_companion_does() -> None:
    environment = {"SERVICE_NAME": "web", "PREDICATE": "web.example", "PORT": "80"}
    (plain,) = read_services("c1", {}, environment)  # type: ignore[misc]
    assert (plain.tls, plain.acme) == ("off", False)
    (companion,) = read_services("c1", {}, {**environment, "LETSENCRYPT_HOST": "web.example"})  # type: ignore[misc]
    assert (companion.tls, companion.acme) == ("redirect", True)  # nginx-proxy's default
    (on,) = read_services(  # type: ignore[misc]
        "c1", {}, {**environment, "LETSENCRYPT_HOST": "web.example", "HTTPS_METHOD": "noredirect"}
    )
    assert (on.tls, on.acme) == ("on", True)
    (labelled,) = read_services(  # type: ignore[misc]
        "c1", {"cosmonaut.tls.acme": "false"}, {**environment, "LETSENCRYPT_HOST": "web.example"}
    )
    assert labelled.acme is False  # labels win


# -- what a review found (fleet backoff, damaged records, a store down for a moment) ---------


def fleet_of_two(**options: Any) -> tuple[list[CertificateManager], Answers, list[float]]:
    clock = [1_000_000.0]
    answers = Answers(clock)
    store = MemoryStore()
    managers = [
        CertificateManager(
            Vault(store, "t", holder, clock=lambda: clock[0]),
            answers,
            clock=lambda: clock[0],
            metrics=Metrics(),
            **options,
        )
        for holder in ("a", "b")
    ]
    return managers, answers, clock


def test_the_fleet_shares_one_backoff_after_a_failed_order() -> None:
    (a, b), answers, clock = fleet_of_two(retry_min=60, retry_max=600)
    answers.failures["web.example"] = [AcmeError("the CA refused: rateLimited", retry_after=3600)]
    a.want(["web.example"])
    a.tick()
    b.want(["web.example"])
    b.tick()  # a holds the lease through its backoff: b does not order
    assert answers.orders == ["web.example"]
    assert b.status()[0]["state"] == "waiting" and b.status()[0]["lease_holder"] == "a"
    clock[0] += 3601  # the lease ran out with a's backoff: one of them orders again
    b.tick()
    a.tick()
    assert answers.orders == ["web.example"] * 2
    assert a.ready("web.example") is not None


def test_a_name_that_leaves_and_comes_back_keeps_its_backoff() -> None:
    manager, answers, clock, _ = manager_on_clock(retry_min=60, retry_max=600)
    answers.failures["web.example"] = [AcmeError("the CA refused: serverInternal")]
    manager.want(["web.example"])
    manager.tick()
    manager.want([])  # the container went away...
    assert manager.status() == []
    manager.want(["web.example"])  # ...and came back at once
    manager.tick()
    assert answers.orders == ["web.example"]
    clock[0] += 100
    manager.tick()
    assert answers.orders == ["web.example"] * 2


def test_a_released_lease_stays_as_a_free_record_and_a_damaged_one_reads_free() -> None:
    store = MemoryStore()
    a, b = Vault(store, "t", "a"), Vault(store, "t", "b")
    assert a.take_lease("web.example", 60) is None
    a.release_lease("web.example")
    record = store.record("t", "acme:lease:web.example")
    assert record is not None and record.revision == 2  # never deleted: revisions only grow
    assert b.take_lease("web.example", 60) is None
    store.swap_record("t", "acme:lease:web.example", 3, "{not json")
    assert a.take_lease("web.example", 60) is None  # overwritten


def test_one_name_raising_a_surprise_does_not_stop_the_others() -> None:
    manager, answers, _, _ = manager_on_clock()
    answers.failures["a.example"] = [RuntimeError("a bug")]
    manager.want(["a.example", "b.example"])
    manager.tick()
    status = {s["name"]: s for s in manager.status()}
    assert status["a.example"]["state"] == "failed"
    assert status["a.example"]["last_error"] == "internal error: RuntimeError: a bug"
    assert status["b.example"]["state"] == "valid"


class FlakyStore(MemoryStore):
    """A memory store whose reads fail while ``down`` is set."""

    down = False

    def record(self, table: str, key: str) -> Any:
        if self.down:
            from runtime.stores import StoreError

            raise StoreError("the store is down", file="flaky")
        return super().record(table, key)

    def records(self, table: str, prefix: str) -> Any:
        if self.down:
            from runtime.stores import StoreError

            raise StoreError("the store is down", file="flaky")
        return super().records(table, prefix)


def test_a_store_down_for_a_moment_keeps_ready_certificates_ready() -> None:
    clock = [1_000_000.0]
    store = FlakyStore()
    manager = CertificateManager(
        Vault(store, "t", "a", clock=lambda: clock[0]), Answers(clock), clock=lambda: clock[0]
    )
    manager.want(["web.example"])
    manager.tick()
    assert manager.ready("web.example") is not None
    store.down = True
    assert manager.ready("web.example") is not None  # not taken off HTTPS for one bad read
    assert manager.ready("never.example") is None


def test_letsencrypt_host_leaves_a_path_mode_service_on_http() -> None:
    environment = {
        **{"SERVICE_NAME": "docs", "CONFIG_MODE": "path", "PREDICATE": "/docs", "PORT": "80"},
        "LETSENCRYPT_HOST": "example.com",
    }
    (docs,) = read_services("c1", {}, environment)  # type: ignore[misc]
    assert docs.tls == "off"


def test_acme_all_counts_a_user_file_whose_name_holds_acme_as_the_users() -> None:
    plan = build_payload("t", [managed("a", settings("acme", "on", acme=False))])
    assert acme_names(plan, everyone=True, folder=["acme.example.pem"]) == {}
    assert acme_names(plan, everyone=True, folder=["acme.example.acme.pem"]) == {0: "acme.example"}


def test_an_existing_sqlite_file_is_made_private_when_it_gets_records(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    store = SQLiteStore(path)
    store.swap_record("t", "k", 0, "v")
    path.chmod(0o644)  # as an older release left it
    store.swap_record("t", "acme:account-key", 0, "secret")
    assert path.stat().st_mode & 0o777 == 0o600


def test_more_acme_usage_errors(tmp_path: Path) -> None:
    from tests.support.cosmonaut_cli import cli

    base = ("once", "--state-dir", str(tmp_path), "--acme-directory", "https://ca.invalid/d")
    done = cli(*base, "--acme-accept-tos", "--acme-retry-min", "0")
    assert done.returncode == 2 and "--acme-retry-min must be at least 1 s" in done.stderr
    done = cli(*base, "--acme-accept-tos", "--acme-retry-min", "60", "--acme-retry-max", "10")
    assert done.returncode == 2 and "must not be below --acme-retry-min" in done.stderr
    done = cli(*base, "--acme-accept-tos", "--acme-ca-bundle", str(tmp_path / "none.pem"))
    assert done.returncode == 2 and "none.pem: no such file" in done.stderr
    done = cli("once", "--state-dir", str(tmp_path), "--acme-accept-tos")
    assert done.returncode == 2 and "need --acme-directory" in done.stderr
    done = cli("once", "--state-dir", str(tmp_path), "--acme-table", "fleet-acme")
    assert done.returncode == 2 and "need --acme-directory" in done.stderr
    done = cli(*base, "--acme-accept-tos", "--acme-table", "no/slash")
    assert done.returncode == 2
    assert "'no/slash' is not a table name: 3 to 255 of letters" in done.stderr


def test_a_restarted_host_keeps_its_own_backoff() -> None:
    manager, answers, clock, _ = manager_on_clock(retry_min=60, retry_max=600)
    answers.failures["web.example"] = [AcmeError("the CA refused: rateLimited", retry_after=900)]
    manager.want(["web.example"])
    manager.tick()
    restarted = CertificateManager(  # the same holder id, a new process
        Vault(manager.vault.store, "t", "a", clock=lambda: clock[0]),
        answers,
        clock=lambda: clock[0],
    )
    restarted.want(["web.example"])
    restarted.tick()
    assert answers.orders == ["web.example"]
    assert restarted.next_due() == pytest.approx(clock[0] + 600)  # no store reads meanwhile
    clock[0] += 901
    restarted.tick()
    assert answers.orders == ["web.example"] * 2


def test_a_surprise_in_an_order_holds_the_lease_like_any_failure() -> None:
    (a, b), answers, _ = fleet_of_two()
    answers.failures["web.example"] = [RuntimeError("a bug")]
    a.want(["web.example"])
    a.tick()
    b.want(["web.example"])
    b.tick()
    assert answers.orders == ["web.example"]  # b waits out a's backoff


def test_a_deleted_certificate_record_is_ordered_again_at_once() -> None:
    manager, answers, _, _ = manager_on_clock()
    manager.want(["web.example"])
    manager.tick()
    record = manager.vault.store.record("t", "acme:cert:web.example")
    assert record is not None
    manager.vault.store.swap_record("t", "acme:cert:web.example", record.revision, None)
    assert manager.ready("web.example") is None  # a pass looks...
    manager.tick()  # ...and the round orders, not weeks later at the renewal time
    assert answers.orders == ["web.example"] * 2
