"""Snapshots of generated configs, stored as plain .cfg files under snapshots/.

Each snapshot is also checked with the real ``haproxy -c``. Refresh with
``pytest --snapshot-update`` and review the diff like code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compiler.options import RenderOptions
from runtime.pipeline import compile_payload
from tests.support.paths import load_example


def compiled(payload: dict[str, Any], options: dict[str, Any] | None = None) -> str:
    parsed = RenderOptions.model_validate_json(json.dumps(options or {}))
    return compile_payload(payload, options=parsed).text


def many_services(count: int) -> dict[str, Any]:
    return {
        "table": "many",
        "running": [],
        "candidates": [
            {
                "serviceName": f"svc{n:03d}",
                "configMode": "path" if n % 3 == 0 else "host",
                "predicate": f"s{n:03d}" if n % 3 == 0 else f"svc{n:03d}.example.net",
                **({"cookie": "SID"} if n % 2 else {}),
                "containers": [
                    {"id": f"svc{n:03d}-{k}", "ip": f"10.1.{n}.{k + 1}:8080"} for k in range(3)
                ],
            }
            for n in range(count)
        ],
    }


CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "seed-default": (load_example("seed.json"), {}),
    "seed-compat": (load_example("seed.json"), {"compat": "seed"}),
    "path-mode": (load_example("path-services.json"), {}),
    "path-mode-compat": (load_example("path-services.json"), {"compat": "seed"}),
    "mixed-no-cookie": (load_example("mixed.json"), {}),
    "many-services": (many_services(40), {}),
    "empty": ({"table": "empty", "running": []}, {}),
    "all-options": (
        load_example("mixed.json"),
        {
            "bind_address": "0.0.0.0",
            "bind_port": 8080,
            "frontend_name": "edge",
            "maxconn": 20000,
            "log_targets": [{"address": "/dev/log", "facility": "daemon", "level": "info"}],
            "user": None,
            "group": None,
            "daemon": False,
            "timeouts": {"connect": "5s", "client": "1m", "server": "1m"},
            "balance": "leastconn",
            "health_check": {"enabled": True, "http_path": "/healthz"},
        },
    ),
    "no-health-check": (load_example("mixed.json"), {"health_check": {"enabled": False}}),
    # Per-service settings (examples/settings.json has every one): each in its backend; under
    # compat=seed all are ignored (and reported); a service's health check replaces the
    # render option's, and turns checks on where the option turned them off.
    "settings": (load_example("settings.json"), {}),
    "settings-compat": (load_example("settings.json"), {"compat": "seed"}),
    "settings-over-health-option": (
        load_example("settings.json"),
        {"health_check": {"enabled": True, "http_path": "/status"}, "balance": "source"},
    ),
    "settings-health-option-off": (
        load_example("settings.json"),
        {"health_check": {"enabled": False}},
    ),
}


# --- TLS ------------------------------------------------------------------------
CERTS_DIR = "/etc/haproxy/certs"  # replaced by a real folder for haproxy -c


def tls_payload() -> dict[str, Any]:
    """mixed.json with shop on redirect (and its cookie), blog on, docs off."""
    payload = load_example("mixed.json")
    modes = {"shop": "redirect", "blog": "on"}
    for candidate in payload["candidates"]:
        if candidate["serviceName"] in modes:
            candidate["tls"] = modes[candidate["serviceName"]]
    return payload


TLS_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "tls-defaults": (tls_payload(), {"tls": {"certs_dir": CERTS_DIR}}),
    "tls-all-options": (
        tls_payload(),
        {
            "bind_address": "0.0.0.0",
            "tls": {
                "certs_dir": CERTS_DIR,
                "bind_port": 8443,
                "alpn": "http/1.1",
                "min_version": "TLSv1.3",
                "ciphers": "ECDHE-RSA-AES256-GCM-SHA384",
                "ciphersuites": "TLS_AES_256_GCM_SHA384",
                "hsts_max_age": 31536000,
                "hsts_include_subdomains": True,
            },
            "acme_thumbprint": "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg",
        },
    ),
    "tls-hsts": (tls_payload(), {"tls": {"certs_dir": CERTS_DIR, "hsts_max_age": 300}}),
    "acme-without-tls": (
        load_example("mixed.json"),
        {"acme_thumbprint": "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg"},
    ),
    "tls-compat-seed": (tls_payload(), {"compat": "seed", "tls": {"certs_dir": CERTS_DIR}}),
}


@pytest.mark.parametrize("case", sorted(TLS_CASES))
def test_generated_tls_config(
    case: str,
    haproxy_snapshot: Any,
    assert_haproxy_accepts: Callable[[str], None],
    tmp_path: Path,
) -> None:
    from tests.support.tls_certs import write_pem

    payload, options = TLS_CASES[case]
    text = compiled(payload, options)
    assert text == haproxy_snapshot
    write_pem(tmp_path, "shop.example.org.pem", "shop.example.org")
    assert_haproxy_accepts(text.replace(CERTS_DIR, str(tmp_path)))


def test_tls_fields_without_the_option_change_nothing() -> None:
    assert compiled(tls_payload()) == compiled(load_example("mixed.json"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_config(
    case: str, haproxy_snapshot: Any, assert_haproxy_accepts: Callable[[str], None]
) -> None:
    payload, options = CASES[case]
    text = compiled(payload, options)
    assert text == haproxy_snapshot
    assert_haproxy_accepts(text)
