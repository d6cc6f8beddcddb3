"""Counters in the Prometheus text format, served on ``/metrics`` when ``--metrics-address``
is given (the standard library's threading HTTP server: one tiny read-only endpoint)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cosmonaut.errors import UsageError

# Apply latency buckets (seconds): a reload takes a few hundred milliseconds.
BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)

_HELP = {
    "cosmonaut_reconciles_total": ("counter", "Reconcile passes (one listing, one payload)."),
    "cosmonaut_reloads_total": ("counter", "HAProxy reloads that applied a new config."),
    "cosmonaut_failures_total": (
        "counter",
        "Passes that did not bring HAProxy up to date (refused config, failed reload, "
        "registry or Docker unavailable).",
    ),
    "cosmonaut_rollbacks_total": (
        "counter",
        "Failed reloads after which the last known good config was restored.",
    ),
    "cosmonaut_skips_total": ("counter", "Passes whose config was identical to the running one."),
    "cosmonaut_docker_reconnects_total": ("counter", "Reconnections to the Docker API."),
    "cosmonaut_docker_events_replayed_total": (
        "counter",
        "Events the engine sent again or from before the subscription (Podman 4.3 replays "
        "half its event log when it rotates it); dropped.",
    ),
    "cosmonaut_registry_up": (
        "gauge",
        "1 when the registry answered the last call (a pass's or a poll's), else 0.",
    ),
    "cosmonaut_registry_failures_total": (
        "counter",
        "Registry calls that found it unavailable (no connection, timeout, 5xx, 429), after "
        "their retries.",
    ),
    "cosmonaut_polls_total": ("counter", "Polls of the table's config (--poll-interval)."),
    "cosmonaut_polled_changes_total": (
        "counter",
        "Polls that brought a config other than the one this host last had from the registry.",
    ),
    "cosmonaut_last_success_timestamp_seconds": (
        "gauge",
        "Unix time of the last pass that left HAProxy up to date.",
    ),
    "cosmonaut_managed_containers": ("gauge", "Containers routed by the last pass."),
    # Zero downtime: the runtime API path.
    "cosmonaut_runtime_updates_total": (
        "counter",
        "Changes applied through HAProxy's runtime API (slots filled or emptied), no reload.",
    ),
    "cosmonaut_reloads_avoided_total": (
        "counter",
        "Reloads the runtime API made unnecessary.",
    ),
    "cosmonaut_drains_total": (
        "counter",
        "Servers put in drain at once (a stop signal, or the container turned unhealthy).",
    ),
    "cosmonaut_runtime_fallbacks_total": (
        "counter",
        "Changes that took the reload path although the runtime API is configured, by reason "
        "(structural, slots, command, certificates).",
    ),
    "cosmonaut_problem_containers": ("gauge", "Containers left out for bad settings."),
    "cosmonaut_acme_names": ("gauge", "Names whose certificate Cosmonaut gets (ACME)."),
    "cosmonaut_acme_names_failed": (
        "gauge",
        "ACME names without a working certificate whose last order failed.",
    ),
    "cosmonaut_acme_names_waiting": (
        "gauge",
        "ACME names another host of the fleet is ordering (it holds the lease).",
    ),
    "cosmonaut_acme_certificates_issued_total": ("counter", "Certificates this host ordered."),
    "cosmonaut_acme_failures_total": ("counter", "ACME orders that failed (retried later)."),
    "cosmonaut_acme_next_expiry_timestamp_seconds": (
        "gauge",
        "When the first ACME certificate expires (unix time; 0: none).",
    ),
}
# Per-name gauges (label ``name``): set whole by ``set_per_name``.
_PER_NAME_HELP: dict[str, str] = {
    "cosmonaut_acme_certificate_expiry_timestamp_seconds": (
        "When each ACME certificate expires (unix time)."
    ),
    "cosmonaut_acme_certificate_failing": ("1 while the last order for the name failed, else 0."),
    "cosmonaut_service_left_out": (
        "1 for each service left out of the running config: haproxy -c refused its lines."
    ),
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, float] = dict.fromkeys(_HELP, 0.0)
        self.failures_by_reason: dict[str, int] = {}
        self.fallbacks_by_reason: dict[str, int] = {}
        self.per_name: dict[str, dict[str, float]] = {name: {} for name in _PER_NAME_HELP}
        self._buckets = [0] * len(BUCKETS)
        self._latency_sum = 0.0
        self._latency_count = 0

    def inc(self, name: str, amount: float = 1.0) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0.0) + amount

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self.values[name] = value

    def failure(self, reason: str) -> None:
        with self._lock:
            self.values["cosmonaut_failures_total"] += 1
            self.failures_by_reason[reason] = self.failures_by_reason.get(reason, 0) + 1

    def fallback(self, reason: str) -> None:
        with self._lock:
            self.values["cosmonaut_runtime_fallbacks_total"] += 1
            self.fallbacks_by_reason[reason] = self.fallbacks_by_reason.get(reason, 0) + 1

    def set_per_name(self, metric: str, values: dict[str, float]) -> None:
        with self._lock:
            self.per_name[metric] = dict(values)

    def success(self) -> None:
        self.set("cosmonaut_last_success_timestamp_seconds", time.time())

    def observe_apply(self, seconds: float) -> None:
        with self._lock:
            self._latency_sum += seconds
            self._latency_count += 1
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[index] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.values,
                "failures_by_reason": dict(self.failures_by_reason),
                "fallbacks_by_reason": dict(self.fallbacks_by_reason),
                "apply_latency_seconds": {
                    "count": self._latency_count,
                    "sum": round(self._latency_sum, 4),
                },
            }

    def render(self) -> str:
        with self._lock:
            lines: list[str] = []
            for name, (kind, text) in _HELP.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                by_reason = {
                    "cosmonaut_failures_total": self.failures_by_reason,
                    "cosmonaut_runtime_fallbacks_total": self.fallbacks_by_reason,
                }.get(name)
                if by_reason:
                    lines += [
                        f'{name}{{reason="{reason}"}} {count}'
                        for reason, count in sorted(by_reason.items())
                    ]
                else:
                    lines.append(f"{name} {_number(self.values.get(name, 0.0))}")
            for name, text in _PER_NAME_HELP.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
                lines += [
                    f'{name}{{name="{label}"}} {_number(value)}'
                    for label, value in sorted(self.per_name[name].items())
                ]
            name = "cosmonaut_apply_latency_seconds"
            lines += [
                f"# HELP {name} Time from a new config to a confirmed reload.",
                f"# TYPE {name} histogram",
            ]
            lines += [
                f'{name}_bucket{{le="{bound:g}"}} {count}'
                for bound, count in zip(BUCKETS, self._buckets, strict=True)
            ]
            lines += [
                f'{name}_bucket{{le="+Inf"}} {self._latency_count}',
                f"{name}_sum {_number(self._latency_sum)}",
                f"{name}_count {self._latency_count}",
            ]
            return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


LOOPBACK = "127.0.0.1"


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """``GET /metrics`` on ``host:port`` in a daemon thread. Without a host (``:9100`` or
    ``9100``) it listens on loopback only: another interface is the operator's explicit
    choice (``0.0.0.0:9100``), not a default."""

    def __init__(self, metrics: Metrics, address: str) -> None:
        host, _, port_text = address.rpartition(":")
        if not port_text.isdigit():
            raise UsageError(f"{address!r}: expected HOST:PORT", file="--metrics-address")
        host = host.strip("[]") or LOOPBACK
        metrics_ref = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "try /metrics")
                    return
                body = metrics_ref.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        try:
            kind = _Server6 if ":" in host else ThreadingHTTPServer
            self.server = kind((host, int(port_text)), Handler)
        except OSError as error:
            raise UsageError(
                f"cannot listen on {address}: {error.strerror or error}", file="--metrics-address"
            ) from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="cosmonaut-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self.server.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/metrics"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
