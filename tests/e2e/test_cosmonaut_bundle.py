"""Applying a bundle (haproxy.cfg + map files) on a real HAProxy container: whatever step
fails, the config in place only ever reads maps that are there, with its content."""

from __future__ import annotations

from typing import Any

import pytest
from test_cosmonaut_apply import WEB, applier

from compiler.options import RenderOptions
from cosmonaut.discovery.engine import EngineError
from runtime.bundle import referenced_maps
from runtime.contract import maps_of
from tests.support.cosmonaut_e2e import DockerHost, HaproxyBox, ip_of, leftovers, short


def bundle(*containers: Any, host: str = "web.example") -> tuple[str, tuple[tuple[str, str], ...]]:
    """The map-routed bundle routing service ``web`` (``host``) to ``containers``."""
    from runtime.pipeline import compile_payload

    payload = {
        "table": "e2e-test",
        "running": [],
        "candidates": [
            {
                "serviceName": "web",
                "predicate": host,
                "containers": [{"id": short(c), "ip": f"{ip_of(c)}:8080"} for c in containers],
            }
        ],
    }
    result = compile_payload(payload, options=RenderOptions(routing="map"))
    return result.text, maps_of(result.files)


def on_disk(haproxy: HaproxyBox) -> dict[str, str]:
    """The bundle the container holds: its config and the maps it reads (all must exist)."""
    config = haproxy.config()
    files = {"haproxy.cfg": config}
    for name in sorted(referenced_maps(config)):
        result = haproxy.container.exec_run(["cat", f"/usr/local/etc/haproxy/{name}"])
        assert result.exit_code == 0, f"the config reads {name}, which is missing"
        files[name] = result.output.decode()
    return files


def test_bundle_is_applied_whole_and_old_maps_are_removed(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    apply = applier(haproxy)
    text, maps = bundle(web)
    result = apply.apply(text, maps=maps)
    assert result.outcome == "applied", result.message
    assert on_disk(haproxy) == {"haproxy.cfg": text, **dict(maps)}
    assert sorted(leftovers(haproxy)) == sorted(name for name, _ in maps)
    assert haproxy.get(host="WEB.example:80").body == short(web)
    assert apply.apply(text, maps=maps).outcome == "unchanged"
    # Another host name: a new host map; the old one goes once the new config runs.
    text2, maps2 = bundle(web, host="www.example")
    result = apply.apply(text2, maps=maps2)
    assert result.outcome == "applied", result.message
    assert on_disk(haproxy) == {"haproxy.cfg": text2, **dict(maps2)}
    assert sorted(leftovers(haproxy)) == sorted(name for name, _ in maps2)
    assert haproxy.get(host="www.example").body == short(web)
    assert haproxy.get(host="web.example").status == 503


def test_a_mismatched_bundle_is_rejected_before_anything_is_written(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    apply = applier(haproxy)
    before = on_disk(haproxy)
    text, maps = bundle(web)
    for broken in ((), (*maps, ("host.000000000000.map", "x.example web\n"))):
        result = apply.apply(text, maps=broken)
        assert result.outcome == "rejected"
        assert "mismatched bundle" in result.message
    name, content = maps[0]
    result = apply.apply(text, maps=((name, content + "key-without-value\n"),))
    assert result.outcome == "rejected" and "map check" in result.message
    assert on_disk(haproxy) == before and leftovers(haproxy) == []


def test_refused_by_haproxy_leaves_the_old_bundle(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    apply = applier(haproxy)
    good, good_maps = bundle(web)
    assert apply.apply(good, maps=good_maps).outcome == "applied"
    text, maps = bundle(web, host="other.example")
    bad = text.replace("bind :80", "bind :80\n    use_backend nowhere")
    result = apply.apply(bad, maps=maps)
    assert result.outcome == "rejected", result.message
    assert "nowhere" in result.message
    assert on_disk(haproxy) == {"haproxy.cfg": good, **dict(good_maps)}
    assert sorted(leftovers(haproxy)) == sorted(name for name, _ in good_maps)
    assert haproxy.get(host="web.example").body == short(web)


def test_failed_reload_rolls_back_to_the_old_bundle(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    apply = applier(haproxy, reload_timeout=20.0)
    good, good_maps = bundle(web)
    assert apply.apply(good, maps=good_maps).outcome == "applied"
    text, maps = bundle(web, host="other.example")
    result = apply.apply(text.replace("bind :80", "bind 192.0.2.77:80"), maps=maps)
    assert result.outcome == "rolled-back", result.message
    assert on_disk(haproxy) == {"haproxy.cfg": good, **dict(good_maps)}
    assert sorted(leftovers(haproxy)) == sorted(name for name, _ in good_maps)
    assert haproxy.get(host="web.example").body == short(web)


@pytest.mark.parametrize("failing", ["write_temporary", "check_and_move"])
def test_a_failed_write_or_move_leaves_the_old_bundle(
    host: DockerHost, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    apply = applier(haproxy)
    good, good_maps = bundle(web)
    assert apply.apply(good, maps=good_maps).outcome == "applied"
    text, maps = bundle(web, host="other.example")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise EngineError(f"{failing}: the engine went away", file="docker")

    # The maps are written for real; the next step fails as an engine failure would.
    monkeypatch.setattr(apply.target, failing, broken)
    with pytest.raises(EngineError):
        apply.apply(text, maps=maps)
    monkeypatch.undo()
    assert on_disk(haproxy) == {"haproxy.cfg": good, **dict(good_maps)}
    assert sorted(leftovers(haproxy)) == sorted(name for name, _ in good_maps)
    assert haproxy.get(host="web.example").body == short(web)
