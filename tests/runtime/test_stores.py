"""Stores: the protocol's contract on memory and SQLite, SQLite under concurrent processes,
and real faults (a read-only database, a lock held by another process)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from compiler.errors import InternalError, OptionsError
from compiler.models import ContainerRef, Payload, Service
from compiler.options import RenderOptions
from runtime.merge import Reconciled, reconcile
from runtime.pipeline import compile_payload
from runtime.stores import ConflictError, Store, StoreError, apply, changes
from runtime.stores.memory import MemoryStore
from runtime.stores.select import StoreSpec, default_sqlite_path, open_store, parse_store_spec
from runtime.stores.sqlite import SQLiteStore
from tests.support.paths import FIXTURES, ROOT, run_cli
from tests.support.required import require
from tests.support.stores import (
    SECOND_SERVERS,
    SEED_SERVERS,
    assert_serialised,
    concurrent_payload,
    lock_held_by_another_process,
    servers,
    statements,
)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "state.db")


# -- the protocol, on every local store ------------------------------------------------------


def test_seed_first_and_second_call(store: Store, seed_payload: dict[str, Any]) -> None:
    expected = (FIXTURES / "seed_expected.cfg").read_text()
    first = compile_payload(seed_payload, store=store, options=RenderOptions(compat="seed"))
    assert statements(first.text) == statements(expected)
    assert servers(list(store.services("astro").values())) == SEED_SERVERS

    second = compile_payload(seed_payload, store=store, options=RenderOptions(compat="seed"))
    assert servers(second.services) == SECOND_SERVERS
    assert second.reconciled.delete == ("app2",)
    assert "server jk3243j54jl 192.168.1.8:80 check cookie JSESSIONID" in second.text
    assert servers(sorted(store.services("astro").values(), key=lambda s: s.name)) == (
        SECOND_SERVERS
    )


def test_failure_inside_decide_stores_nothing(store: Store, seed_payload: dict[str, Any]) -> None:
    compile_payload(seed_payload, store=store)
    before = store.services("astro")

    def failing(stored: Any) -> Reconciled:
        reconcile(stored, Payload.model_validate(seed_payload))
        raise InternalError("round trip failed (injected)")

    with pytest.raises(InternalError):
        store.update("astro", failing)
    assert store.services("astro") == before


def test_round_trip_failure_in_the_pipeline_stores_nothing(
    store: Store, seed_payload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    compile_payload(seed_payload, store=store)
    before = store.services("astro")

    def broken_round_trip(bundle: Any) -> dict[str, str]:
        raise InternalError("round trip: the printed config parses differently (injected)")

    monkeypatch.setattr("runtime.pipeline.print_verified_bundle", broken_round_trip)
    payload = {**seed_payload, "candidates": [*seed_payload["candidates"], NEWCOMER]}
    with pytest.raises(InternalError, match="round trip"):
        compile_payload(payload, store=store)
    assert store.services("astro") == before


NEWCOMER = {
    "serviceName": "app3",
    "predicate": "third.example.com",
    "containers": [{"id": "n1", "ip": "192.168.1.20:80"}],
}


def test_tables_are_separate_and_clear_forgets_one(
    store: Store, seed_payload: dict[str, Any]
) -> None:
    compile_payload(seed_payload, store=store)
    compile_payload({**seed_payload, "table": "other"}, store=store)
    assert store.clear("astro") == 2
    assert store.services("astro") == {}
    assert set(store.services("other")) == {"app1", "app2"}
    assert store.clear("astro") == 0


def test_table_is_data_never_sql(store: Store) -> None:
    table = "x'); DROP TABLE services; --"
    service = Service(name="a", mode="host", predicate="a.com")
    store.update(table, lambda _: Reconciled((service,), (service,), ()))
    assert store.services(table) == {"a": service}
    assert store.services("x") == {}


def test_changes_writes_only_what_differs() -> None:
    a = Service(name="a", mode="host", predicate="a.com")
    b = Service(name="b", mode="host", predicate="b.com")
    b2 = b.model_copy(update={"containers": (ContainerRef(id="b1", ip="10.0.0.1:80"),)})
    current = {"a": a, "b": b, "gone": Service(name="gone", mode="host", predicate="g.com")}
    result = Reconciled((a, b2), (a, b2), ("gone", "b"))
    todo = changes(current, result)
    assert todo.put == (b2,)
    assert todo.delete == ("gone",)
    assert apply(current, result) == {"a": a, "b": b2}
    assert not changes({"a": a}, Reconciled((a,), (a,), ()))


def test_memory_store_threads_lose_no_update() -> None:
    store = MemoryStore()
    outputs: list[str] = []

    def call(index: int) -> None:
        outputs.append(compile_payload(concurrent_payload(index), store=store).text)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.services("busy")) == 16
    assert_serialised(outputs)


def test_ephemeral_memory_store_remembers_nothing(seed_payload: dict[str, Any]) -> None:
    store = MemoryStore(ephemeral=True)
    compile_payload(seed_payload, store=store)
    second = compile_payload(seed_payload, store=store)
    assert servers(second.services) == SEED_SERVERS
    assert store.services("astro") == {}


# -- store specs -----------------------------------------------------------------------------


def test_store_specs(tmp_path: Path) -> None:
    assert parse_store_spec("memory") == StoreSpec("memory")
    assert parse_store_spec("dynamodb") == StoreSpec("dynamodb")
    assert parse_store_spec(f"sqlite:{tmp_path}/x.db") == StoreSpec("sqlite", tmp_path / "x.db")
    assert parse_store_spec("sqlite:~/x.db").path == Path.home() / "x.db"
    assert parse_store_spec("sqlite", environ={"XDG_STATE_HOME": "/srv/state"}).path == Path(
        "/srv/state/lambda-registry/state.db"
    )
    for bad in ("mysql", "sqlite:", "", "SQLite"):
        with pytest.raises(OptionsError, match="--store"):
            parse_store_spec(bad)
    assert isinstance(open_store("memory"), MemoryStore)
    opened = open_store(f"sqlite:{tmp_path}/y.db")
    assert isinstance(opened, SQLiteStore) and opened.label == f"sqlite:{tmp_path}/y.db"


def test_default_sqlite_path_follows_xdg(isolated_state: Path) -> None:
    assert default_sqlite_path() == isolated_state / "lambda-registry" / "state.db"
    home = Path.home() / ".local" / "state" / "lambda-registry" / "state.db"
    assert default_sqlite_path({"XDG_STATE_HOME": "relative/dir"}) == home  # XDG: ignored
    assert default_sqlite_path({}) == home


# -- SQLite: files, schema, damage -----------------------------------------------------------


def test_reading_never_creates_the_database(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "deep" / "state.db")
    assert store.services("astro") == {}
    assert store.clear("astro") == 0
    assert not (tmp_path / "deep").exists()


def test_the_state_database_is_owner_only(isolated_state: Path, seed_payload: Any) -> None:
    """Stored services hold password hashes and header values: ``lambda-registry compile``
    makes its state home 0700 and the database 0600, and tightens a database an older
    release (or a hand) left open at its next write."""
    previous = os.umask(0o022)
    try:
        done = run_cli("compile", "-", stdin=json.dumps(seed_payload))
        assert done.returncode == 0, done.stderr
        database = default_sqlite_path()
        assert database.parent.stat().st_mode & 0o777 == 0o700
        assert database.stat().st_mode & 0o777 == 0o600
        database.chmod(0o644)
        assert run_cli("compile", "-", stdin=json.dumps(seed_payload)).returncode == 0
    finally:
        os.umask(previous)
    assert database.stat().st_mode & 0o777 == 0o600


def test_unreadable_stored_service_is_a_clear_error(tmp_path: Path, seed_payload: Any) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    compile_payload(seed_payload, store=store)
    with sqlite3.connect(tmp_path / "state.db") as connection:
        connection.execute("UPDATE services SET service = '{\"name\": 1}' WHERE name = 'app1'")
    with pytest.raises(StoreError, match="stored service 'app1' of table 'astro' is unreadable"):
        compile_payload(seed_payload, store=store)


def test_newer_schema_is_refused(tmp_path: Path, seed_payload: Any) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    compile_payload(seed_payload, store=store)
    with sqlite3.connect(tmp_path / "state.db") as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        compile_payload(seed_payload, store=store)


# -- SQLite: concurrent processes ------------------------------------------------------------


def test_sixteen_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    processes = []
    for _ in range(16):
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "compile", "-", "--store", f"sqlite:{database}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        processes.append(process)
    # Feed them all only once all are started, so they really run at the same time.
    outputs = []
    for index, process in enumerate(processes):
        assert process.stdin is not None
        process.stdin.write(json.dumps(concurrent_payload(index)))
        process.stdin.close()
    for process in processes:
        assert process.stdout is not None and process.stderr is not None
        outputs.append(process.stdout.read())
        error = process.stderr.read()
        assert process.wait(timeout=300) == 0, error
    assert sorted(SQLiteStore(database).services("busy")) == [f"svc{n:02d}" for n in range(16)]
    assert_serialised(outputs)


# -- SQLite: real faults ---------------------------------------------------------------------


def read_only_runner(
    directory: Path,
) -> Callable[[Sequence[str]], subprocess.CompletedProcess[str]]:
    """Runs a command while ``directory`` (and the database in it) is really read-only.

    Not root: chmod. Root ignores permissions, so there the directory is bind-mounted
    read-only in a private mount namespace (``unshare -m``): the mount vanishes with the
    process, whatever happens to the test.
    """
    if os.geteuid() != 0:

        def run_chmod(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
            files = [directory, *directory.iterdir()]
            modes = {path: path.stat().st_mode for path in files}
            try:
                for path in files:
                    path.chmod(0o555 if path.is_dir() else 0o444)
                return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
            finally:
                for path, mode in modes.items():
                    path.chmod(mode)

        return run_chmod
    unshare = shutil.which("unshare")
    if unshare is None:
        require("unshare(1)", "running as root without it: cannot make a directory read-only")
    probe = subprocess.run(
        [unshare, "-m", "sh", "-c", f"mount --bind '{directory}' '{directory}'"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        require(
            "a private mount namespace",
            f"running as root and cannot bind-mount read-only: {probe.stderr.strip()}",
        )

    def run_mounted(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        script = (
            f"mount --bind '{directory}' '{directory}' && "
            f"mount -o remount,bind,ro '{directory}' '{directory}' && "
            f"touch '{directory}/probe' 2>/dev/null && exit 99; exec \"$@\""
        )
        return subprocess.run(
            [unshare, "-m", "sh", "-c", script, "sh", *argv],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )

    return run_mounted


def test_read_only_database_fails_clearly_and_changes_nothing(
    tmp_path: Path, seed_payload: dict[str, Any]
) -> None:
    directory = tmp_path / "state"
    database = directory / "state.db"
    store = SQLiteStore(database)
    compile_payload(seed_payload, store=store)
    before = store.services("astro")
    payload = tmp_path / "second.json"
    payload.write_text(json.dumps(seed_payload))

    run = read_only_runner(directory)
    result = run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "compile",
            str(payload),
            "--store",
            f"sqlite:{database}",
        ]
    )
    assert result.returncode == 2, result.stderr
    assert "read-only; nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert store.services("astro") == before
    # Reading still works on a read-only database.
    shown = run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "state",
            "show",
            "astro",
            "--store",
            f"sqlite:{database}",
        ]
    )
    assert shown.returncode == 0 and "app1" in shown.stdout, shown.stderr


def test_database_locked_by_another_process_is_a_conflict_and_changes_nothing(
    tmp_path: Path, seed_payload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "state.db"
    store = SQLiteStore(database, timeout=0.3)
    compile_payload(seed_payload, store=store)
    before = store.services("astro")
    with lock_held_by_another_process(database):
        with pytest.raises(ConflictError, match=r"stayed locked by another process for 0\.3 s"):
            compile_payload(seed_payload, store=store)
        monkeypatch.setenv("LAMBDA_REGISTRY_SQLITE_TIMEOUT", "0.3")
        result = run_cli(
            "compile", "-", "--store", f"sqlite:{database}", stdin=json.dumps(seed_payload)
        )
        assert result.returncode == 2
        assert "stayed locked by another process for 0.3 s; nothing was changed" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert store.services("astro") == before
    second = compile_payload(seed_payload, store=store)
    assert servers(second.services) == SECOND_SERVERS
