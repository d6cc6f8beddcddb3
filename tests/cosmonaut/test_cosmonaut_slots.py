"""Server slots: the registry's config laid onto the running slots, and the runtime commands.
Every config laid onto slots, the one Cosmonaut writes into the container, goes through
``haproxy -c`` (2.6 and 2.8)."""

from __future__ import annotations

from collections.abc import Callable

from compiler.lower import lower_bundle, slot_capacity
from compiler.models import Service
from compiler.options import RenderOptions
from compiler.printer import print_config
from cosmonaut.apply.slots import Plan, place, runtime_plan
from grammar.parser import parse


def config(*containers: tuple[str, str], cookie: str | None = "SID", **options: object) -> str:
    service = Service.model_validate(
        {
            "name": "web",
            "mode": "host",
            "predicate": "web.example",
            "cookie": cookie,
            "containers": [{"id": i, "ip": ip} for i, ip in containers],
        }
    )
    return print_config(lower_bundle([service], RenderOptions.model_validate(options)).config)


def servers(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("server ")]


def test_slot_capacity_is_the_next_size_up_by_the_growth_factor() -> None:
    assert [slot_capacity(n, 4, 2.0) for n in (0, 3, 4, 7, 8, 100)] == [4, 4, 8, 8, 16, 128]
    assert slot_capacity(4, 4, 1.5) == 6


Accepts = Callable[[str], None]


def test_the_registry_gives_free_slots_with_their_own_cookie_values(
    assert_haproxy_accepts: Accepts,
) -> None:
    text = config(("c1", "10.0.0.1:80"))
    assert servers(text) == [
        "server c1 10.0.0.1:80 check cookie c1",
        "server slot-1 127.0.0.1:1 check cookie slot-1 disabled",
        "server slot-2 127.0.0.1:1 check cookie slot-2 disabled",
        "server slot-3 127.0.0.1:1 check cookie slot-3 disabled",
    ]
    assert_haproxy_accepts(text)


def test_a_new_container_fills_a_free_slot_and_keeps_the_others_where_they_are(
    assert_haproxy_accepts: Accepts,
) -> None:
    running = parse(config(("c1", "10.0.0.1:80"), ("c2", "10.0.0.2:80")))
    new = parse(config(("c1", "10.0.0.1:80"), ("c2", "10.0.0.2:80"), ("c3", "10.0.0.3:80")))
    placed = place(new, running, keep_capacity=True)
    written = print_config(placed.config)
    assert servers(written) == [
        "server c1 10.0.0.1:80 check cookie c1",
        "server c2 10.0.0.2:80 check cookie c2",
        "server slot-1 10.0.0.3:80 check cookie slot-1",
        "server slot-2 127.0.0.1:1 check cookie slot-2 disabled",
    ]
    assert_haproxy_accepts(written)
    assert placed.servers["c3"] == ("web", "slot-1")
    plan = runtime_plan(running, placed.config)
    assert plan == Plan(
        (
            "set server web/slot-1 addr 10.0.0.3 port 80",
            "enable health web/slot-1",
            "set server web/slot-1 state ready",
        ),
        filled=1,
        emptied=0,
    )


def test_a_leaving_container_empties_its_slot_which_keeps_its_name(
    assert_haproxy_accepts: Accepts,
) -> None:
    running = parse(config(("c1", "10.0.0.1:80"), ("c2", "10.0.0.2:80")))
    new = parse(config(("c2", "10.0.0.2:80")))
    placed = place(new, running, keep_capacity=True)
    written = print_config(placed.config)
    assert servers(written)[:2] == [
        "server c1 127.0.0.1:1 check cookie c1 disabled",
        "server c2 10.0.0.2:80 check cookie c2",
    ]
    assert_haproxy_accepts(written)
    assert runtime_plan(running, placed.config) == Plan(
        ("set server web/c1 state maint",), filled=0, emptied=1
    )


def test_a_full_backend_grows_at_a_reload_keeping_running_names(
    assert_haproxy_accepts: Accepts,
) -> None:
    four = [(f"c{n}", f"10.0.0.{n}:80") for n in range(1, 5)]
    running_text = config(*four[:3])
    running = parse(running_text)
    step = place(parse(config(*four)), running, keep_capacity=True)
    assert not step.grew  # the fourth fills the last slot
    full = step.config
    five = place(parse(config(*four, ("c5", "10.0.0.5:80"))), full, keep_capacity=True)
    assert five.grew == ("web",)
    grown = place(parse(config(*four, ("c5", "10.0.0.5:80"))), full, keep_capacity=False)
    written = print_config(grown.config)
    names = [line.split()[1] for line in servers(written)]
    assert names[:4] == ["c1", "c2", "c3", "slot-1"]  # the fourth keeps its slot name
    assert len(names) == 8
    assert_haproxy_accepts(print_config(full))
    assert_haproxy_accepts(written)


def test_anything_but_servers_changing_takes_a_reload() -> None:
    running = parse(config(("c1", "10.0.0.1:80")))
    new = parse(config(("c1", "10.0.0.1:80"), retries=5))
    placed = place(new, running, keep_capacity=True)
    assert "structural" in str(runtime_plan(running, placed.config))


def test_without_slots_nothing_is_translated() -> None:
    text = config(("c1", "10.0.0.1:80"), server_slots={"enabled": False})
    placed = place(parse(text), parse(text), keep_capacity=True)
    assert print_config(placed.config) == text


def test_only_ip_addresses_and_plain_names_become_runtime_commands() -> None:
    """The registry's words go into commands the runtime API splits at ``;`` and line ends:
    an address that ``ipaddress`` does not read, or a name that is not an identifier, takes
    a reload instead (where haproxy -c reads the config first)."""
    running_text = config(("c1", "10.0.0.1:80"))
    running = parse(running_text)
    slot = "server slot-1 127.0.0.1:1 check cookie slot-1 disabled"
    for server, why in [
        ("server c2 '127.0.0.1; disable frontend http:80' check cookie c2", "address"),
        ('server c2 "10.0.0.2\\nshow info:80" check cookie c2', "address"),
        ("server c2 fe80::1%eth0:80 check cookie c2", "address"),
        ("server c2 [fd00::2]:0 check cookie c2", "address"),
        ("server c2 web.example:80 check cookie c2", "address"),
    ]:
        new = parse(running_text.replace(slot, f"{server}\n    {slot}"))
        placed = place(new, running, keep_capacity=True)
        assert f"has an {why} the runtime API cannot set" in str(
            runtime_plan(running, placed.config)
        ), server
    renamed = running_text.replace("backend web", "backend 'web;show info'").replace(
        "use_backend web", "use_backend 'web;show info'"
    )
    new = parse(renamed.replace(slot, "server c2 10.0.0.2:80 check cookie c2\n    " + slot))
    placed = place(new, parse(renamed), keep_capacity=True)
    assert "has a name the runtime API cannot take" in str(
        runtime_plan(parse(renamed), placed.config)
    )
    good = parse(running_text.replace(slot, "server c2 [FD00::2]:80 check cookie c2\n    " + slot))
    plan = runtime_plan(running, place(good, running, keep_capacity=True).config)
    assert isinstance(plan, Plan)
    assert "set server web/slot-1 addr fd00::2 port 80" in plan.commands
