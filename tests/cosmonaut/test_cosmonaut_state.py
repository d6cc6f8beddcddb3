"""Metrics, history, status and the CLI's offline parts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmonaut import logs
from cosmonaut.errors import RegistryError
from cosmonaut.metrics import Metrics, MetricsServer
from cosmonaut.registry.remote import RemoteRegistry
from cosmonaut.state import History, make_private, read_status, write_status
from tests.support.cosmonaut_cli import cli


def test_metrics_render_in_the_prometheus_text_format() -> None:
    metrics = Metrics()
    metrics.inc("cosmonaut_reloads_total")
    metrics.failure("registry")
    metrics.failure("registry")
    metrics.observe_apply(0.25)
    text = metrics.render()
    assert "# TYPE cosmonaut_reloads_total counter\ncosmonaut_reloads_total 1\n" in text
    assert 'cosmonaut_failures_total{reason="registry"} 2\n' in text
    assert 'cosmonaut_apply_latency_seconds_bucket{le="0.2"} 0\n' in text
    assert 'cosmonaut_apply_latency_seconds_bucket{le="0.3"} 1\n' in text
    assert "cosmonaut_apply_latency_seconds_count 1\n" in text
    assert "cosmonaut_apply_latency_seconds_sum 0.25\n" in text


def test_metrics_endpoint() -> None:
    metrics = Metrics()
    metrics.inc("cosmonaut_skips_total", 3)
    server = MetricsServer(metrics, "127.0.0.1:0")
    server.start()
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "cosmonaut_skips_total 3" in response.read().decode()
    finally:
        server.stop()


@pytest.mark.parametrize("address", [":0", "0"])
def test_metrics_without_a_host_listen_on_loopback_only(address: str) -> None:
    """``--metrics-address :9100`` once listened on every interface."""
    metrics = Metrics()
    metrics.inc("cosmonaut_skips_total")
    server = MetricsServer(metrics, address)
    server.start()
    try:
        host, port = server.server.server_address[:2]
        assert host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{port}/metrics"  # what the 'metrics' line says
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(server.url, timeout=5) as response:
            assert "cosmonaut_skips_total 1" in response.read().decode()
    finally:
        server.stop()


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::1]:0"])
def test_metrics_on_an_address_given_listen_there(address: str) -> None:
    server = MetricsServer(Metrics(), address)
    try:
        assert server.server.server_address[0] == address.rpartition(":")[0].strip("[]")
    finally:
        server.server.server_close()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_history_and_status_are_owner_only(tmp_path: Path) -> None:
    """They hold userlist hashes and header values."""
    previous = os.umask(0o022)  # the usual umask: what is not asked for is 0644 / 0755
    try:
        state = tmp_path / "state"
        entry = History(state / "history").record("userlist admins\n    user a password $6$x\n")
        write_status(state / "status.json", {"last_pass": {"ok": True}})
        write_status(state / "status.json", {"last_pass": {"ok": False}})  # replaced: still
    finally:
        os.umask(previous)
    assert mode(state / "history") == 0o700
    assert mode(entry) == 0o600
    assert mode(state / "status.json") == 0o600


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Cosmonaut's JSON log lines, as the CLI writes them, into a string."""
    saved = (list(logs.LOGGER.handlers), logs.LOGGER.level, logs.LOGGER.propagate)
    stream = io.StringIO()
    logs.configure(stream)
    try:
        yield stream
    finally:
        logs.LOGGER.handlers[:], level, logs.LOGGER.propagate = saved[0], saved[1], saved[2]
        logs.LOGGER.setLevel(level)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_state_folder_left_open_is_made_private_and_logged(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    state = tmp_path / "state"
    (state / "history").mkdir(parents=True)
    written = {
        state / "history" / "000001-20261201T000000Z-0123456789ab.cfg": 0o644,
        state / "status.json": 0o644,
        state / "acme-holder": 0o664,
        state / "registry.db": 0o644,
        state / "registry.db-wal": 0o644,
        state / "acme.db": 0o444,  # read-only stays read-only, for its owner alone
    }
    for path, was in written.items():
        path.write_text("x")
        path.chmod(was)
    mine = state / "notes.txt"  # not Cosmonaut's: left as it is
    mine.write_text("x")
    mine.chmod(0o644)
    for folder in (state, state / "history"):
        folder.chmod(0o755)  # as an older release left them
    changed = make_private(state)
    assert mode(state) == mode(state / "history") == 0o700
    assert {path: mode(path) for path in written} == {
        path: (0o400 if was == 0o444 else 0o600) for path, was in written.items()
    }
    assert mode(mine) == 0o644
    (line,) = log_lines(log_stream)
    assert (line["level"], line["event"], line["folder"]) == (
        "warning",
        "state made private",
        str(state),
    )
    assert line["tightened"] == changed
    assert f"{state} (0755 -> 0700)" in changed
    assert f"{state / 'status.json'} (0644 -> 0600)" in changed
    assert make_private(state) == []  # once is enough
    assert len(log_lines(log_stream)) == 1


def test_a_shared_state_folder_keeps_its_mode_with_a_warning(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    """``--state-dir /tmp`` must not make /tmp private: a sticky folder is shared on purpose.
    Cosmonaut's own files in it are still made private."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "status.json").write_text("{}")
    (shared / "status.json").chmod(0o644)
    make_private(shared)
    assert mode(shared) == 0o1777
    assert mode(shared / "status.json") == 0o600
    events = [(line["event"], line.get("mode")) for line in log_lines(log_stream)]
    assert events == [("state folder open to others", "1777"), ("state made private", None)]


URL = "https://deploy:hunter2@registry.invalid:8443/"


def test_a_registry_url_password_never_reaches_a_log_line_or_the_status(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    """Everything that names the registry (its label, the errors of a call, a traceback)
    shows the URL with its password masked, in the log and in ``status.json``."""
    remote = RemoteRegistry(URL, retries=0, timeout=1)
    with pytest.raises(RegistryError) as failed:
        remote.compile({"table": "t", "running": []})
    logs.info("started", registry=remote.label)
    logs.error("reconcile failed", error=str(failed.value))
    try:
        raise RegistryError(f"{URL}: HTTP 500", file="registry")
    except RegistryError:
        logs.LOGGER.exception("internal error", extra={"cosmonaut_fields": {}})
    write_status(tmp_path / "status.json", {"registry": remote.label, "error": str(failed.value)})
    status = (tmp_path / "status.json").read_text()
    for text in (log_stream.getvalue(), status):
        assert "hunter2" not in text
        assert "https://deploy:***@registry.invalid:8443/" in text
    lines = log_lines(log_stream)
    assert lines[0]["registry"] == "remote (https://deploy:***@registry.invalid:8443/)"
    assert "deploy:***@" in lines[2]["traceback"]
    assert logs.redacted("http://a:b@c/ and http://d@e/ and http://f/g:h@i") == (
        "http://a:***@c/ and http://d@e/ and http://f/g:h@i"  # only passwords of URLs
    )


def test_a_usage_error_shows_a_url_without_its_password(tmp_path: Path) -> None:
    done = cli(
        "once",
        "--registry-url",
        "ftp://deploy:hunter2@registry.invalid/",
        "--state-dir",
        str(tmp_path),
    )
    assert done.returncode == 2
    assert "hunter2" not in done.stderr
    assert "ftp://deploy:***@registry.invalid/" in done.stderr
    assert "not an http(s) URL" in done.stderr


def test_history_keeps_the_newest(tmp_path: Path) -> None:
    history = History(tmp_path / "history", keep=2)
    for text in ("a\n", "b\n", "c\n"):
        history.record(text)
    assert [p.read_text() for p in history.entries()] == ["b\n", "c\n"]
    assert history.entries()[-1].read_text() == "c\n"
    assert [p.name[:6] for p in history.entries()] == ["000002", "000003"]


def test_status_round_trip(tmp_path: Path) -> None:
    write_status(tmp_path / "s" / "status.json", {"last_pass": {"ok": True}})
    assert read_status(tmp_path / "s" / "status.json") == {"last_pass": {"ok": True}}
    assert read_status(tmp_path / "missing.json") is None


def test_status_from_a_recorded_pass(tmp_path: Path) -> None:
    status = {
        "table": "web-1",
        "registry": "local (memory)",
        "haproxy_container": "haproxy",
        "last_pass": {
            "time": "2026-01-01T00:00:00.000+00:00",
            "ok": False,
            "failure": None,
            "apply": {"outcome": "rejected", "message": "haproxy -c refused the config"},
        },
        "last_success": None,
        "routed": [
            {
                "name": "web-1",
                "service": "web",
                "mode": "host",
                "predicate": "web.example",
                "address": "10.0.0.2:80",
                "cookie": None,
            }
        ],
        "problems": [{"container": "bad", "setting": "PORT", "reason": "missing (required)"}],
        "excluded": [],
    }
    write_status(tmp_path / "status.json", status)
    done = cli("status", "--state-dir", str(tmp_path))
    assert done.returncode == 1
    assert "FAILED  rejected" in done.stdout
    assert "haproxy -c refused the config" in done.stdout
    assert "web.example  -> 10.0.0.2:80" in done.stdout
    assert "left out: bad: PORT: missing (required)" in done.stdout
    as_json = cli("status", "--state-dir", str(tmp_path), "--format", "json")
    assert json.loads(as_json.stdout)["table"] == "web-1"


def test_status_names_the_services_haproxy_refused(tmp_path: Path) -> None:
    from cosmonaut.apply.reload import ApplyResult

    why = "`timeout server 10xyz`: unexpected character 'x' in 'timeout server'"
    applied = ApplyResult(
        "pruned", "reloaded: new worker(s) 8", "0" * 64, 0.1, left_out=(("bad", why),)
    )
    status = {
        "table": "web-1",
        "last_pass": {"time": "2026-01-01T00:00:00.000+00:00", "ok": applied.ok},
        "routed": [],
    }
    status["last_pass"]["apply"] = applied.as_dict()  # type: ignore[index]
    write_status(tmp_path / "status.json", status)
    done = cli("status", "--state-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout
    assert "ok  pruned" in done.stdout
    assert f"left out by haproxy -c: bad: {why}" in done.stdout


def test_usage_errors() -> None:
    done = cli("run", "--debounce-min", "-1")
    assert done.returncode == 2
    assert "must be a finite number >= 0" in done.stderr
    done = cli("once", "--registry-url", "http://x/", "--store", "memory")
    assert done.returncode == 2
    assert "configure the in-process registry" in done.stderr


def test_without_the_docker_sdk_run_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['docker'] = None\n"  # as if the extra were not installed
        "from cosmonaut.cli import main\n"
        f"sys.exit(main(['once', '--state-dir', {str(tmp_path)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "pip install 'lambda-registry[cosmonaut]'" in done.stderr
    assert "Traceback" not in done.stderr
