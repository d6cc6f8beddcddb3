"""Service settings from labels and environment variables (pure)."""

from __future__ import annotations

import json

import pytest

from cosmonaut.discovery.labels import (
    ContainerProblem,
    ServiceSettings,
    is_enabled,
    is_managed,
    network_of,
    parse_environment,
    read_services,
    read_settings,
)

WEB = {"cosmonaut.service": "web", "cosmonaut.predicate": "Web.Example.org", "cosmonaut.port": "80"}


def test_labels() -> None:
    assert read_settings("c1", {**WEB, "cosmonaut.cookie": "SID"}, {}) == ServiceSettings(
        "web", "host", "web.example.org", "SID", 80
    )


def test_environment_of_the_original() -> None:
    env = {"SERVICE_NAME": "api", "CONFIG_MODE": "Path", "PREDICATE": "api/", "PORT": "8080"}
    assert read_settings("c1", {}, env) == ServiceSettings("api", "path", "/api", None, 8080)


def test_labels_win_setting_by_setting() -> None:
    env = {"SERVICE_NAME": "env", "PREDICATE": "env.example", "PORT": "1", "COOKIE": "E"}
    labels = {"cosmonaut.service": "label", "cosmonaut.port": "8080"}
    assert read_settings("c1", labels, env) == ServiceSettings(
        "label", "host", "env.example", "E", 8080
    )


def test_mode_defaults_to_host_and_empty_cookie_means_none() -> None:
    settings = read_settings("c1", {**WEB, "cosmonaut.mode": "", "cosmonaut.cookie": " "}, {})
    assert settings == ServiceSettings("web", "host", "web.example.org", None, 80)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param(
            {"cosmonaut.service": "web"},
            [
                ContainerProblem("c1", "cosmonaut.predicate / PREDICATE", "missing (required)"),
                ContainerProblem("c1", "cosmonaut.port / PORT", "missing (required)"),
            ],
            id="missing",
        ),
        pytest.param(
            {**WEB, "cosmonaut.port": "0"},
            [ContainerProblem("c1", "cosmonaut.port", "'0' is not a port number (1 to 65535)")],
            id="port-zero",
        ),
        pytest.param(
            {**WEB, "cosmonaut.service": ""},
            [ContainerProblem("c1", "cosmonaut.service", "is empty")],
            id="empty-service",
        ),
        pytest.param(
            {**WEB, "cosmonaut.mode": "tcp", "cosmonaut.predicate": "/x"},
            [ContainerProblem("c1", "cosmonaut.mode", "Input should be 'host' or 'path'")],
            id="bad-mode-only",
        ),
    ],
)
def test_problems(labels: dict[str, str], expected: list[ContainerProblem]) -> None:
    assert read_settings("c1", labels, {}) == tuple(expected)


@pytest.mark.parametrize(
    ("setting", "value", "fragment"),
    [
        ("cosmonaut.service", "a b", "not a valid HAProxy name"),
        ("cosmonaut.service", "if", "reserved word"),
        ("cosmonaut.predicate", "x\nbind :81", "not a valid host name"),
        ("cosmonaut.cookie", "a;b", "not a valid cookie name"),
    ],
)
def test_injection_is_refused_with_the_setting_named(
    setting: str, value: str, fragment: str
) -> None:
    problems = read_settings("c1", {**WEB, setting: value}, {})
    assert isinstance(problems, tuple)
    assert [p.setting for p in problems] == [setting]
    assert fragment in problems[0].reason
    assert str(problems[0]).startswith(f"c1: {setting}: ")


def test_what_is_managed() -> None:
    assert is_managed({"cosmonaut.port": "80"}, {})
    assert is_managed({}, {"SERVICE_NAME": "x"})
    assert not is_managed({"other": "x"}, {"PORT": "8080", "PATH": "/bin"})


def test_parse_environment() -> None:
    assert parse_environment(["A=1", "B=x=y", "C", "A=2"]) == {"A": "2", "B": "x=y"}
    assert parse_environment(None) == {}


# --- TLS ------------------------------------------------------------------------
TLS_WEB = {"cosmonaut.service": "w", "cosmonaut.predicate": "w.example", "cosmonaut.port": "80"}


@pytest.mark.parametrize(
    ("labels", "env", "expected"),
    [
        ({}, {}, "off"),
        ({"cosmonaut.tls": "redirect"}, {}, "redirect"),
        ({"cosmonaut.tls": "ON"}, {}, "on"),
        ({"cosmonaut.tls": ""}, {}, "off"),
        ({}, {"HTTPS_METHOD": "redirect"}, "redirect"),
        ({}, {"HTTPS_METHOD": "noredirect"}, "on"),
        ({}, {"HTTPS_METHOD": "nohttps"}, "off"),
        ({}, {"HTTPS_METHOD": "nohttp"}, "redirect"),
        ({"cosmonaut.tls": "off"}, {"HTTPS_METHOD": "redirect"}, "off"),  # the label wins
    ],
)
def test_tls_from_the_label_or_nginx_proxys_variable(
    labels: dict[str, str], env: dict[str, str], expected: str
) -> None:
    settings = read_settings("c1", {**TLS_WEB, **labels}, env)
    assert isinstance(settings, ServiceSettings)
    assert settings.tls == expected


@pytest.mark.parametrize(
    ("labels", "env", "where"),
    [
        ({"cosmonaut.tls": "yes"}, {}, "cosmonaut.tls"),
        ({}, {"HTTPS_METHOD": "sometimes"}, "HTTPS_METHOD"),
    ],
)
def test_bad_tls_value_names_the_label_or_variable(
    labels: dict[str, str], env: dict[str, str], where: str
) -> None:
    problems = read_settings("c1", {**TLS_WEB, **labels}, env)
    assert isinstance(problems, tuple)
    assert [(p.container, p.setting) for p in problems] == [("c1", where)]
    assert "off, on or redirect" in problems[0].reason


# -- per-service settings, several services per container ------------------------

SHA512 = "$6$salt$" + "x" * 86
SETTINGS_LABELS = {
    "cosmonaut.weight": "3",
    "cosmonaut.balance": "leastconn",
    "cosmonaut.maxconn": "50",
    "cosmonaut.health.path": "/healthz",
    "cosmonaut.health.status": "200",
    "cosmonaut.health.interval": "2s",
    "cosmonaut.timeouts.tunnel": "1h",
    "cosmonaut.auth.realm": "staff",
    "cosmonaut.auth.users": f"alice:{SHA512}, bob:{SHA512}",
    "cosmonaut.allow": "10.0.0.0/8, fd00::/8",
    "cosmonaut.headers.request.X-Env": "prod",
    "cosmonaut.headers.response.X-Frame-Options": "DENY",
}


def test_setting_labels_become_the_payload_settings() -> None:
    (settings,) = read_services("c1", {**WEB, **SETTINGS_LABELS}, {})
    assert isinstance(settings, ServiceSettings)
    assert settings.weight == 3
    assert json.loads(settings.options) == {
        "balance": "leastconn",
        "maxconn": 50,
        "health": {"path": "/healthz", "status": 200, "interval": "2s"},
        "timeouts": {"tunnel": "1h"},
        "auth": {
            "realm": "staff",
            "users": [{"name": "alice", "hash": SHA512}, {"name": "bob", "hash": SHA512}],
        },
        "allow": ["10.0.0.0/8", "fd00::/8"],
        "headers": {"request": {"X-Env": "prod"}, "response": {"X-Frame-Options": "DENY"}},
    }


def namespaced(labels: dict[str, str], service: str) -> dict[str, str]:
    return {
        f"cosmonaut.{service}.{key.removeprefix('cosmonaut.')}": value
        for key, value in labels.items()
        if key != "cosmonaut.service"
    }


def test_namespaced_and_single_service_forms_agree() -> None:
    single = read_services("c1", {**WEB, **SETTINGS_LABELS}, {})
    assert read_services("c1", namespaced({**WEB, **SETTINGS_LABELS}, "web"), {}) == single


def test_two_services_on_two_ports() -> None:
    labels = {
        "cosmonaut.web.predicate": "web.example.com",
        "cosmonaut.web.port": "80",
        "cosmonaut.admin.predicate": "admin.example.com",
        "cosmonaut.admin.port": "8080",
        "cosmonaut.admin.allow": "127.0.0.1",
    }
    found = read_services("c1", labels, {})
    assert [(s.service, s.port) for s in found if isinstance(s, ServiceSettings)] == [
        ("admin", 8080),
        ("web", 80),
    ]


def test_compose_service_name_is_the_default() -> None:
    labels = {
        "com.docker.compose.service": "shop",
        "cosmonaut.predicate": "shop.example.com",
        "cosmonaut.port": "80",
    }
    (settings,) = read_services("c1", labels, {})
    assert isinstance(settings, ServiceSettings) and settings.service == "shop"


def test_enable_false_and_network() -> None:
    assert not is_enabled({**WEB, "cosmonaut.enable": "false"})
    assert is_enabled({**WEB, "cosmonaut.enable": "true"}) and is_enabled(WEB)
    assert network_of({**WEB, "cosmonaut.network": "front"}) == "front"
    assert network_of(WEB) is None


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("cosmonaut.weight", "257"),
        ("cosmonaut.weight", "3 backup"),
        ("cosmonaut.maxconn", "many"),
        ("cosmonaut.balance", "roundrobin\nbackend x"),
        ("cosmonaut.health.status", "abc"),
        ("cosmonaut.timeouts.connect", "5s #x"),
        ("cosmonaut.auth.users", "alice:hunter2"),
        ("cosmonaut.allow", "everyone"),
        ("cosmonaut.headers.request.X A", "v"),
        ("cosmonaut.headers.request.X-A", "v\r\nSet-Cookie: x"),
        ("cosmonaut.timeouts.client", "5s"),
    ],
)
def test_bad_setting_labels_leave_out_the_container_naming_the_label(
    label: str, value: str
) -> None:
    problems = read_services("c1", {**WEB, "cosmonaut.health.path": "/h", label: value}, {})
    assert problems and all(isinstance(p, ContainerProblem) for p in problems)
    assert any(p.setting == label for p in problems if isinstance(p, ContainerProblem)), problems
    assert all("hunter2" not in str(p) for p in problems)


def test_tls_in_the_namespaced_form_rides_with_the_settings() -> None:
    labels = {
        "cosmonaut.web.predicate": "w.example",
        "cosmonaut.web.port": "80",
        "cosmonaut.web.tls": "redirect",
        "cosmonaut.web.maxconn": "5",
    }
    (settings,) = read_services("c1", labels, {})
    assert isinstance(settings, ServiceSettings)
    assert settings.tls == "redirect"
    assert json.loads(settings.options) == {"maxconn": 5, "tls": "redirect"}
