"""Apply on a real HAProxy container: check, move, reload, confirm, roll back."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmonaut.apply.container import HaproxyTarget
from cosmonaut.apply.reload import Applier
from cosmonaut.discovery.containers import Discoverer, HaproxyContainer
from cosmonaut.discovery.engine import Engine
from cosmonaut.errors import HaproxyContainerError
from cosmonaut.state import History
from tests.support.cosmonaut_e2e import (
    DockerHost,
    HaproxyBox,
    eventually,
    ip_of,
    leftovers,
    short,
    web_config,
)

WEB = {"cosmonaut.service": "web", "cosmonaut.predicate": "web.example", "cosmonaut.port": "8080"}


def applier(haproxy: HaproxyBox, tmp_path: Path | None = None, **options: object) -> Applier:
    engine = Engine()
    target = HaproxyTarget(
        engine,
        Discoverer(engine, haproxy_container=haproxy.name),
        reload_timeout=float(options.pop("reload_timeout", 10.0)),  # type: ignore[arg-type]
    )
    history = History(tmp_path / "history", keep=2) if tmp_path else None
    return Applier(target, history, dry_run=bool(options.pop("dry_run", False)))


def test_apply_reloads_and_routes_then_skips_the_same_config(
    host: DockerHost, tmp_path: Path
) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    apply = applier(haproxy, tmp_path)
    text = web_config(web)
    result = apply.apply(text)
    assert result.outcome == "applied", result.message
    assert haproxy.config() == text
    eventually(lambda: haproxy.get(host="web.example").body == short(web), what="routing")
    assert set(result.steps) == {"locate", "verify", "write", "check+move", "reload"}
    assert apply.apply(text).outcome == "unchanged"
    assert leftovers(haproxy) == []
    assert [p.read_text() for p in History(tmp_path / "history").entries()] == [text]


def test_quiet_haproxy_reloads_are_confirmed_from_its_processes(host: DockerHost) -> None:
    haproxy = host.haproxy(command=QUIET)
    web = host.service("web", labels=WEB)
    apply = applier(haproxy)
    result = apply.apply(web_config(web))
    assert result.outcome == "applied", result.message
    assert apply.target.mark(haproxy_container(apply)).lines is None  # no log to follow
    assert haproxy.get(host="web.example").body == short(web)


def haproxy_container(apply: Applier) -> HaproxyContainer:
    return apply.target.locate()


def test_config_refused_by_haproxy_is_not_applied(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    apply = applier(haproxy)
    good = web_config(web)
    assert apply.apply(good).outcome == "applied"
    bad = good.replace("bind :80", "bind :80\n    use_backend nowhere")
    result = apply.apply(bad)
    assert result.outcome == "rejected"
    assert "haproxy -c refused the config" in result.message
    assert "nowhere" in result.message
    assert haproxy.config() == good
    assert haproxy.get(host="web.example").body == short(web)
    assert leftovers(haproxy) == []


def test_config_refused_by_the_grammar_is_not_applied(host: DockerHost) -> None:
    haproxy = host.haproxy()
    before = haproxy.config()
    result = applier(haproxy).apply(before + 'backend b\n    server s "10.0.0.1:80\n')
    assert result.outcome == "rejected"
    assert "grammar check" in result.message
    assert haproxy.config() == before


QUIET = ["haproxy", "-W", "-db", "-q", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(None, id="confirmed-from-log"),
        pytest.param(QUIET, id="quiet-confirmed-from-processes"),
    ],
)
def test_failed_reload_restores_the_last_known_good_config(
    host: DockerHost, command: list[str] | None
) -> None:
    haproxy = host.haproxy(command=command)
    web = host.service("web", labels=WEB)
    apply = applier(haproxy, reload_timeout=20.0)
    good = web_config(web)
    assert apply.apply(good).outcome == "applied"
    # haproxy -c accepts it, but the master cannot bind an address this host does not have.
    unbindable = good.replace("bind :80", "bind 192.0.2.77:80")
    result = apply.apply(unbindable)
    assert result.outcome == "rolled-back", result.message
    assert "HAProxy refused the new config at reload" in result.message
    if command is None:
        assert "cannot bind socket" in result.message
    assert "the last known good config was restored" in result.message
    assert haproxy.config() == good
    assert haproxy.get(host="web.example").body == short(web)
    assert apply.apply(good).outcome == "unchanged"


def test_dry_run_returns_the_diff_and_changes_nothing(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    before = haproxy.config()
    result = applier(haproxy, dry_run=True).apply(web_config(web))
    assert result.outcome == "dry-run"
    assert result.diff is not None
    assert f"+    server {short(web)} {ip_of(web)}:8080 check" in result.diff.splitlines()
    assert result.diff.startswith(f"--- {haproxy.name}:/usr/local/etc/haproxy/haproxy.cfg\n")
    assert haproxy.config() == before


def test_history_keeps_the_last_n_configs(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    a = host.service("a", labels=WEB)
    b = host.service("b", labels=WEB)
    apply = applier(haproxy, tmp_path)
    configs = [web_config(a), web_config(a, b), web_config(b)]
    for text in configs:
        assert apply.apply(text).outcome == "applied"
    assert [p.read_text() for p in History(tmp_path / "history").entries()] == configs[1:]


def test_haproxy_not_in_master_worker_mode_is_never_signalled(host: DockerHost) -> None:
    haproxy = host.haproxy(command=["haproxy", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"])
    web = host.service("web", labels=WEB)
    with pytest.raises(HaproxyContainerError, match="not in master-worker mode"):
        applier(haproxy).apply(web_config(web))
    haproxy.container.reload()
    assert haproxy.container.status == "running"


def test_missing_haproxy_container_is_an_error(host: DockerHost) -> None:
    engine = Engine()
    target = HaproxyTarget(engine, Discoverer(engine, haproxy_container=f"{host.prefix}none"))
    with pytest.raises(HaproxyContainerError, match="no container named"):
        Applier(target).apply("global\n")
