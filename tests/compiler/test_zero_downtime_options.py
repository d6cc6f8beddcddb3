"""Render options for zero downtime: safe retries, old workers, server state, runtime API and
server slots. Every config here goes through haproxy -c."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from compiler.errors import OptionsError
from compiler.lower import lower_bundle
from compiler.models import Service
from compiler.options import RenderOptions, parse_render_options
from compiler.printer import print_config

ZERO_DOWNTIME = (
    "hard-stop-after",
    "server-state-file",
    "stats socket",
    "timeout tunnel",
    "load-server-state-from-file",
    "retries",
    "option redispatch",
    "retry-on",
    " disabled",
)


def web(*ids: str, cookie: str | None = "SID") -> Service:
    return Service.model_validate(
        {
            "name": "web",
            "mode": "host",
            "predicate": "web.example",
            "cookie": cookie,
            "containers": [{"id": i, "ip": f"10.0.0.{n + 1}:80"} for n, i in enumerate(ids)],
        }
    )


def render(**options: object) -> str:
    return print_config(
        lower_bundle([web("c1", "c2")], RenderOptions.model_validate(options)).config
    )


def test_defaults_give_safe_retries_a_bounded_reload_server_state_and_slots(
    assert_haproxy_accepts: Callable[[str], None],
) -> None:
    text = render()
    assert_haproxy_accepts(text)
    for line in (
        "    hard-stop-after 30m\n",
        "    server-state-file /var/lib/haproxy/server-state\n",
        "    stats socket /var/lib/haproxy/admin.sock mode 660 level admin\n",
        "    timeout tunnel 1h\n",
        "    load-server-state-from-file global\n",
        "    retries 3\n",
        "    option redispatch 1\n",
        "    retry-on conn-failure empty-response response-timeout\n",
        "    server slot-1 127.0.0.1:1 check cookie slot-1 disabled\n",
        "    server slot-2 127.0.0.1:1 check cookie slot-2 disabled\n",
    ):
        assert line in text
    assert "slot-3" not in text  # 2 servers: 4 in all


def test_each_option_can_be_changed_or_left_out(
    assert_haproxy_accepts: Callable[[str], None],
) -> None:
    text = render(
        retries=1,
        retry_on=["conn-failure", "503"],
        tunnel_timeout="30m",
        hard_stop_after="5m",
        server_state_file="/run/haproxy/state",
        stats_socket={"path": "/run/haproxy/api.sock", "mode": "600", "level": "operator"},
        server_slots={"minimum": 2, "growth": 3},
    )
    assert_haproxy_accepts(text)
    for line in (
        "    retries 1\n",
        "    retry-on conn-failure 503\n",
        "    timeout tunnel 30m\n",
        "    hard-stop-after 5m\n",
        "    server-state-file /run/haproxy/state\n",
        "    stats socket /run/haproxy/api.sock mode 600 level operator\n",
    ):
        assert line in text
    assert text.count(" disabled\n") == 4  # 2 servers: the next size up from 2 is 6
    off = render(
        retries=None,
        redispatch=None,
        retry_on=[],
        tunnel_timeout=None,
        hard_stop_after=None,
        server_state_file=None,
        stats_socket=None,
        server_slots={"enabled": False},
    )
    assert_haproxy_accepts(off)
    assert [w for w in ZERO_DOWNTIME if w in off] == []


def test_seed_compat_leaves_every_zero_downtime_statement_out() -> None:
    text = print_config(lower_bundle([web("c1")], RenderOptions(compat="seed")).config)
    assert [w for w in ZERO_DOWNTIME if w in text] == []


def test_a_slot_name_never_takes_a_containers_name(
    assert_haproxy_accepts: Callable[[str], None],
) -> None:
    text = print_config(lower_bundle([web("slot-1", cookie=None)]).config)
    assert "    server slot-1 10.0.0.1:80 check\n" in text
    assert "    server slot-2 127.0.0.1:1 check disabled\n" in text
    assert text.count("server slot-1 ") == 1
    assert_haproxy_accepts(text)  # haproxy refuses two servers of one name


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ('{"retry_on": ["conn-failure", "sometimes"]}', "$.retry_on[1]"),
        ('{"stats_socket": {"mode": "999"}}', "$.stats_socket.mode"),
        ('{"server_slots": {"growth": 1.0}}', "$.server_slots.growth"),
        ('{"hard_stop_after": "soon"}', "$.hard_stop_after"),
    ],
)
def test_bad_zero_downtime_options_say_where(document: str, path: str) -> None:
    with pytest.raises(OptionsError) as caught:
        parse_render_options(document, file="options.json")
    assert caught.value.json_path == path
