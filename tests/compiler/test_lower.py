"""Lowering and printing: what the generated config says, statement by statement."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from compiler.lower import lower_bundle
from compiler.models import Service
from compiler.options import RenderOptions
from compiler.printer import print_config
from runtime.pipeline import compile_payload
from tests.support.paths import FIXTURES


def statements(text: str) -> list[str]:
    """Non-blank lines without indentation: the seed's rendering lost its indentation."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def service(
    name: str, predicate: str, *ids: str, mode: str = "host", cookie: str | None = None
) -> Service:
    return Service.model_validate(
        {
            "name": name,
            "mode": mode,
            "predicate": predicate,
            "cookie": cookie,
            "containers": [{"id": i, "ip": f"10.0.0.{n + 1}:80"} for n, i in enumerate(ids)],
        }
    )


def test_seed_compat_reproduces_the_seeds_config(seed_payload: dict[str, Any]) -> None:
    result = compile_payload(seed_payload, options=RenderOptions(compat="seed"))
    expected = (FIXTURES / "seed_expected.cfg").read_text()
    assert statements(result.text) == statements(expected)


def test_default_output_gives_each_server_its_own_cookie_value() -> None:
    text = print_config(lower_bundle([service("app", "a.com", "c1", "c2", cookie="SID")]).config)
    assert "    cookie SID prefix nocache\n" in text
    assert "    server c1 10.0.0.1:80 check cookie c1\n" in text
    assert "    server c2 10.0.0.2:80 check cookie c2\n" in text


def test_host_rule_ignores_the_port_in_the_host_header() -> None:
    text = print_config(lower_bundle([service("app", "a.com", "c1")]).config)
    assert "    acl host_app hdr(host),field(1,:) -i a.com\n" in text
    assert "    use_backend app if host_app\n" in text


def test_path_rules_match_whole_segments_most_specific_first() -> None:
    services = [
        service("root", "app", "r1", mode="path"),
        service("deep", "app/v2", "d1", mode="path"),
        service("apple", "apple", "p1", mode="path"),
        service("site", "a.com", "s1"),
    ]
    frontend = statements(print_config(lower_bundle(services).config).split("frontend http")[1])
    rules = [line for line in frontend if line.startswith(("acl", "use_backend"))]
    assert rules == [
        "acl host_site hdr(host),field(1,:) -i a.com",
        "use_backend site if host_site",
        "acl path_deep path /app/v2",
        "acl path_deep path_beg /app/v2/",
        "use_backend deep if path_deep",
        "acl path_root path /app",
        "acl path_root path_beg /app/",
        "use_backend root if path_root",
        "acl path_apple path /apple",
        "acl path_apple path_beg /apple/",
        "use_backend apple if path_apple",
    ]


def test_seed_compat_uses_url_beg_and_the_cookie_name_as_value() -> None:
    options = RenderOptions(compat="seed")
    text = print_config(
        lower_bundle([service("api", "api", "c1", mode="path", cookie="SID")], options).config
    )
    assert "    acl api url_beg /api\n" in text
    assert "    server c1 10.0.0.1:80 check cookie SID\n" in text


def test_output_does_not_depend_on_input_order(seed_payload: dict[str, Any]) -> None:
    expected = compile_payload(seed_payload).text
    shuffler = random.Random(7)
    for _ in range(5):
        shuffled = dict(seed_payload)
        shuffled["running"] = shuffler.sample(seed_payload["running"], k=2)
        shuffled["candidates"] = [
            {**c, "containers": shuffler.sample(c["containers"], k=len(c["containers"]))}
            for c in shuffler.sample(seed_payload["candidates"], k=2)
        ]
        assert compile_payload(shuffled).text == expected


def test_no_services_still_gives_a_valid_frontend() -> None:
    text = print_config(lower_bundle([]).config)
    assert "frontend http\n    bind :80\n" in text
    assert "backend" not in text


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            {"bind_address": "127.0.0.1", "bind_port": 8080}, "bind 127.0.0.1:8080", id="bind"
        ),
        pytest.param({"frontend_name": "edge"}, "frontend edge", id="frontend-name"),
        pytest.param({"maxconn": 20000}, "maxconn 20000", id="maxconn"),
        pytest.param(
            {"log_targets": [{"address": "/dev/log", "facility": "daemon"}]},
            "log /dev/log daemon",
            id="log-targets",
        ),
        pytest.param(
            {"user": None, "group": None, "daemon": False}, "global\n    log", id="no-user"
        ),
        pytest.param(
            {"timeouts": {"connect": "5s", "client": "1m", "server": "30s"}},
            "timeout client 1m",
            id="timeouts",
        ),
        pytest.param({"balance": "leastconn"}, "balance leastconn", id="balance"),
        pytest.param(
            {"health_check": {"http_path": "/healthz"}}, "option httpchk GET /healthz", id="httpchk"
        ),
        pytest.param(
            {"health_check": {"enabled": False}}, "server c1 10.0.0.1:80\n", id="no-check"
        ),
    ],
)
def test_render_options_reach_the_output(options: dict[str, Any], expected: str) -> None:
    text = print_config(
        lower_bundle(
            [service("app", "a.com", "c1")], RenderOptions.model_validate_json(json.dumps(options))
        ).config
    )
    assert expected in text
