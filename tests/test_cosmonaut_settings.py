"""Service settings from labels and environment variables (pure)."""

from __future__ import annotations

import pytest

from cosmonaut.settings import (
    ContainerProblem,
    ServiceSettings,
    is_managed,
    parse_environment,
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


# --- TLS (issue 14) ------------------------------------------------------------------------
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
