"""Metrics, history, status and the CLI's offline parts."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from cosmonaut.metrics import Metrics, MetricsServer
from cosmonaut.state import History, read_status, write_status
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
