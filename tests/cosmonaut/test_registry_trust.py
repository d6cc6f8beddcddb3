"""What Cosmonaut accepts from a registry (``cosmonaut.apply.allowed``).

Every config the compiler prints passes, whatever the payload and the render options; each
statement a registry could use to run a program in the HAProxy container, change HAProxy's
process, open or move the runtime API, read the container's files or environment is
refused, with its line and keyword. The end-to-end side (nothing written, nothing run) is
``tests/e2e/test_cosmonaut_registry_trust.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from compiler.errors import PayloadError
from compiler.options import RenderOptions
from cosmonaut.apply.allowed import ANY_REGISTRY, AllowList, Expected, check
from grammar.parser import parse
from runtime.pipeline import compile_payload
from tests.support.paths import ROOT
from tests.support.schema_strategy import PAYLOADS

# Render options that between them print every statement the compiler knows.
OPTIONS = [
    RenderOptions(),
    RenderOptions(routing="map"),
    RenderOptions(routing="acl"),
    RenderOptions(compat="seed"),
    RenderOptions.model_validate(
        {
            "tls": {
                "certs_dir": "/etc/haproxy/certs",
                "hsts_max_age": 31536000,
                "hsts_include_subdomains": True,
            },
            "acme_thumbprint": "a" * 43,
            "routing": "map",
        }
    ),
    RenderOptions.model_validate(
        {
            "tls": {"certs_dir": "/etc/haproxy/certs", "bind_port": 8443},
            "acme_thumbprint": "b" * 43,
            "routing": "acl",
            "bind_address": "10.0.0.1",
            "user": None,
            "group": None,
            "daemon": False,
            "stats_socket": None,
            "server_state_file": None,
            "hard_stop_after": None,
            "tunnel_timeout": None,
            "retries": None,
            "redispatch": None,
            "retry_on": [],
        }
    ),
    RenderOptions.model_validate(
        {
            "bind_address": "::",
            "server_state_file": "/run/haproxy/state",
            "stats_socket": {"path": "/run/haproxy/api.sock", "mode": "600", "level": "operator"},
        }
    ),
]

PAYLOAD = {
    "table": "trust",
    "running": [{"id": "c1", "ip": "10.0.0.1:80", "serviceName": "web"}],
    "candidates": [
        {
            "serviceName": "web",
            "predicate": "web.example",
            "containers": [{"id": "c1", "ip": "10.0.0.1:80"}],
        }
    ],
}
BASE = compile_payload(PAYLOAD).text
HASH = "$6$examplesalt$" + "a" * 86
STATS = "    stats socket /var/lib/haproxy/admin.sock mode 660 level admin"


def refused(text: str, maps: tuple[str, ...] = (), **options: Any) -> tuple[int | None, str]:
    found = check(parse(text), maps, **options)
    assert found is not None, "accepted"
    return found.line, found.keyword


def accepted(text: str, maps: tuple[str, ...] = (), **options: Any) -> bool:
    return check(parse(text), maps, **options) is None


def with_line(after: str, line: str, text: str = BASE) -> tuple[str, int]:
    """``text`` with ``line`` (indented) right after its line ``after``, and its number."""
    lines = text.splitlines(keepends=True)
    index = lines.index(after + "\n") + 1
    lines.insert(index, f"    {line}\n")
    return "".join(lines), index + 1


# -- what the compiler prints passes ---------------------------------------------------------


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(payload=PAYLOADS, options=st.sampled_from(OPTIONS))
def test_every_config_the_compiler_prints_is_accepted(
    payload: dict[str, Any], options: RenderOptions
) -> None:
    try:
        result = compile_payload(payload, options=options)
    except (PayloadError, ValidationError):
        return
    maps = tuple(name for name in result.files if name != "haproxy.cfg")
    config = parse(result.text)
    assert check(config, maps) is None
    assert check(config, maps, expected=Expected.of(options)) is None


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.json")), ids=str)
@pytest.mark.parametrize("options", OPTIONS)
def test_the_examples_are_accepted_under_every_render_option(
    example: Any, options: RenderOptions
) -> None:
    result = compile_payload(json.loads(example.read_text()), options=options)
    maps = tuple(name for name in result.files if name != "haproxy.cfg")
    assert check(parse(result.text), maps, expected=Expected.of(options)) is None


# -- what a registry may not send ------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "line", "keyword"),
    [
        # a program of the registry's, run by the master as root
        ("global", "master-worker", "master-worker"),
        ("global", "external-check", "external-check"),
        ("backend web", "option external-check", "option"),
        ("backend web", "external-check command /bin/sh", "external-check"),
        # Lua
        ("global", "lua-load /tmp/evil.lua", "lua-load"),
        ("global", "lua-load-per-thread /tmp/evil.lua", "lua-load-per-thread"),
        ("global", "lua-prepend-path /tmp/?.lua", "lua-prepend-path"),
        ("frontend http", "http-request lua.evil", "http-request"),
        ("frontend http", "http-request use-service lua.evil", "http-request"),
        # the process and its environment
        ("global", "insecure-fork-wanted", "insecure-fork-wanted"),
        ("global", "insecure-setuid-wanted", "insecure-setuid-wanted"),
        ("global", "setenv PATH /tmp", "setenv"),
        ("global", "presetenv LD_PRELOAD /tmp/evil.so", "presetenv"),
        ("global", "resetenv", "resetenv"),
        ("global", "unsetenv HOME", "unsetenv"),
        ("global", "chroot /", "chroot"),
        ("global", "uid 0", "uid"),
        ("global", "set-dumpable", "set-dumpable"),
        ("global", "ssl-engine rdrand", "ssl-engine"),
        # the runtime API: on a network, handing out sockets, or a second one
        ("global", "stats socket ipv4@0.0.0.0:9999 level admin", "stats"),
        ("global", "stats socket 0.0.0.0:9999 mode 660 level admin", "stats"),
        ("global", "stats socket abns@admin mode 660 level admin", "stats"),
        (
            "global",
            "stats socket /var/lib/haproxy/admin.sock mode 660 level admin expose-fd listeners",
            "stats",
        ),
        ("global", "stats socket /var/lib/haproxy/../../etc/x mode 660 level admin", "stats"),
        (STATS, "stats socket /var/lib/haproxy/b.sock mode 660 level admin", "stats"),
        ("global", "stats enable", "stats"),
        ("global", "server-state-file relative/state", "server-state-file"),
        (STATS, "server-state-file /var/lib/haproxy/state", "server-state-file"),
        # the container's files, into answers
        ("frontend http", "http-request return status 200 file /etc/shadow", "http-request"),
        ("frontend http", "http-request return status 200 lf-file /etc/shadow", "http-request"),
        ("backend web", "http-request deny errorfile /etc/shadow", "http-request"),
        ("defaults", "errorfile 503 /etc/passwd", "errorfile"),
        ("frontend http", "http-request set-var(txn.x) str(a),map(/etc/passwd)", "http-request"),
        ("frontend http", "use_backend %[req.hdr(host),map_str(/etc/hosts)]", "use_backend"),
        ("frontend http", "acl evil src -f /etc/hosts", "acl"),
        (
            "frontend http",
            'http-request set-header X-Key "${AWS_SECRET_ACCESS_KEY}"',
            "http-request",
        ),
        ("frontend http", 'http-request set-header X-Key "$HOME"', "http-request"),
        (
            "frontend http",
            "http-request set-header X-Key %[env(AWS_SECRET_ACCESS_KEY)]",
            "http-request",
        ),
        (
            "frontend http",
            "http-request return status 200 lf-string %[src]%[env(HOME)]",
            "http-request",
        ),
        ("frontend http", "http-request set-var(txn.k) env(HOME)", "http-request"),
        ("frontend http", "acl leak env(HOME) -m found", "acl"),
        ("frontend http", "use_backend web if { env(HOME) -m found }", "use_backend"),
        # servers only at IP addresses, with the compiler's parameters
        ("backend web", "server d /var/run/docker.sock", "server"),
        ("backend web", "server d unix@/var/run/docker.sock", "server"),
        ("backend web", "server d metadata.internal:80", "server"),
        ("backend web", "server d '127.0.0.1; disable frontend http:80'", "server"),
        ("backend web", "server d fe80::1%eth0:80", "server"),
        ("backend web", "server d 10.0.0.9:80 ssl verify none", "server"),
        ("backend web", "server d 10.0.0.9:80 source 0.0.0.0 usesrc clientip", "server"),
        ("backend web", "server 'd;show' 10.0.0.9:80", "server"),
        ("frontend http", "bind unix@/var/lib/haproxy/admin.sock", "bind"),
        ("frontend http", "bind :8080 expose-fd listeners", "bind"),
        ("frontend http", "bind :8080 user root", "bind"),
        # other statements the compiler never prints
        ("defaults", "no option httplog", "no option"),
        ("defaults", "option httpclose", "option"),
        ("defaults", "timeout check 1s", "timeout"),
        ("global", "default-path origin /etc", "default-path"),
        ("backend web", "http-response add-header X-A b", "http-response"),
        ("backend web", "http-check send meth GET", "http-check"),
        ("backend web", "stick-table type ip size 1m", "stick-table"),
        ("backend web", "filter spoe config /etc/spoe.conf", "filter"),
        ("frontend http", ".diag 'hello'", ".diag"),
    ],
)
def test_a_statement_the_compiler_never_prints_is_refused_with_its_line(
    after: str, line: str, keyword: str
) -> None:
    text, number = with_line(after, line)
    assert refused(text) == (number, keyword)


@pytest.mark.parametrize(
    ("section", "keyword"),
    [
        ("program pwn\n    command /bin/touch /tmp/pwned\n", "program"),
        ("listen admin\n    bind :9000\n    stats enable\n", "listen"),
        ("peers p\n    peer a 10.0.0.1:1024\n", "peers"),
        ("resolvers dns\n    nameserver a 10.0.0.1:53\n", "resolvers"),
        ("ring r\n    size 32764\n", "ring"),
        ("cache c\n    total-max-size 4\n", "cache"),
        ("http-errors e\n    errorfile 503 /etc/shadow\n", "http-errors"),
        ("mailers m\n    mailer a 10.0.0.1:25\n", "mailers"),
        ("fcgi-app php\n    docroot /\n", "fcgi-app"),
        ("backend extra from web\n", "backend"),
        ("userlist\n", "userlist"),
        ('backend "${HOME}"\n', "backend"),
    ],
)
def test_a_section_the_compiler_never_prints_is_refused_wherever_it_stands(
    section: str, keyword: str
) -> None:
    text = BASE + "\n" + section
    # named before the statements of the sections above it, however early those go wrong
    early, _ = with_line("global", "lua-load /tmp/evil.lua", text)
    number = len(BASE.splitlines()) + 2
    assert refused(text) == (number, keyword)
    assert refused(early) == (number + 1, keyword)


def test_userlists_hold_only_hashes_haproxy_checks_at_a_sane_cost() -> None:
    userlist = "userlist auth_web\n    user alice password {}\n"
    assert accepted(BASE + userlist.format(HASH))
    costly = "$6$rounds=999999999$examplesalt$" + "a" * 86
    assert refused(BASE + userlist.format(costly))[1] == "user"
    assert refused(BASE + "userlist auth_web\n    user alice insecure-password x\n")[1] == "user"
    assert refused(BASE + "userlist auth_web\n    group admins users alice\n")[1] == "group"
    found = check(parse(BASE + userlist.format("plain-text-secret")))
    assert found is not None and "plain-text-secret" not in str(found)


def test_a_quoted_dollar_and_a_single_quoted_one_are_told_apart() -> None:
    literal, _ = with_line("frontend http", 'http-request set-header X-Price "\\$5"')
    assert accepted(literal)  # \$ is a dollar sign, not a reference
    single, _ = with_line("frontend http", "http-request set-header X-Price '${HOME}'")
    assert accepted(single)  # HAProxy expands nothing inside single quotes
    mixed, number = with_line("frontend http", "http-request set-header X-A 'a'\"${HOME}\"")
    assert refused(mixed) == (number, "http-request")


def test_maps_come_only_under_the_names_the_registry_generates() -> None:
    bundle = compile_payload(PAYLOAD, options=RenderOptions(routing="map"))
    maps = tuple(name for name in bundle.files if name != "haproxy.cfg")
    assert maps and accepted(bundle.text, maps)
    assert refused(bundle.text, ("../haproxy.cfg",)) == (None, "../haproxy.cfg")
    assert refused(bundle.text, (*maps, "evil.map")) == (None, "evil.map")


def test_the_in_process_registry_pins_the_runtime_socket_and_the_state_file() -> None:
    """With the in-process registry Cosmonaut knows the render options: the socket and the
    state file must be the ones the compiler prints for them, or absent."""
    expected = Expected.of(RenderOptions())
    assert expected.stats == (
        "socket",
        "/var/lib/haproxy/admin.sock",
        "mode",
        "660",
        "level",
        "admin",
    )
    assert accepted(BASE, expected=expected)
    moved = BASE.replace("/var/lib/haproxy/admin.sock mode 660", "/tmp/admin.sock mode 660")
    assert accepted(moved)  # any registry: the shape is right
    assert refused(moved, expected=expected) == (10, "stats")
    state = BASE.replace("server-state-file /var/lib/haproxy/", "server-state-file /tmp/")
    assert refused(state, expected=expected) == (9, "server-state-file")
    none = Expected.of(RenderOptions(stats_socket=None, server_state_file=None))
    assert refused(BASE, expected=none) == (9, "server-state-file")
    without = BASE.replace(STATS + "\n", "")
    assert accepted(without, expected=expected)  # no runtime API at all opens nothing
    seed = Expected.of(RenderOptions(compat="seed"))
    assert seed == Expected(None, None)


def test_cosmonaut_pins_what_its_in_process_registry_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run``/``once`` build the allow-list from the in-process registry's render options;
    a remote registry's options are not known here, so only the shapes are checked."""
    from cosmonaut.cli import build_parser
    from cosmonaut.wiring import Wiring

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/cosmonaut-test.sock")
    options = tmp_path / "options.json"
    socket = {"path": "/run/haproxy/api.sock", "mode": "600", "level": "operator"}
    options.write_text(json.dumps({"stats_socket": socket}))
    common = ["once", "--table", "trust", "--state-dir", str(tmp_path)]
    local = Wiring(
        build_parser().parse_args([*common, "--options", str(options)]), wait_for_docker=None
    )
    assert local.applier.allow == AllowList(
        Expected(
            ("socket", "/run/haproxy/api.sock", "mode", "600", "level", "operator"),
            ("/var/lib/haproxy/server-state",),
        )
    )
    remote = build_parser().parse_args([*common, "--registry-url", "http://127.0.0.1:9/"])
    assert Wiring(remote, wait_for_docker=None).applier.allow == ANY_REGISTRY


def test_header_values_that_look_like_fetches_are_printed_literal_and_accepted() -> None:
    """The compiler doubles '%' and quotes '$' in a header value, so a value that spells a
    fetch or a variable stays text, and the allow-list tells it apart from a real one."""
    value = "%[env(HOME)] ${HOME} env(HOME)"
    payload = json.loads(json.dumps(PAYLOAD))
    payload["candidates"][0]["headers"] = {"request": {"X-Literal": value}}
    text = compile_payload(payload).text
    assert "%%[env(HOME)]" in text
    assert accepted(text)
