"""``grammar.refusal``: which services a ``haproxy -c`` refusal names, read from what each
oracle (2.6 and 2.8) really says about a compiled bundle with one line broken; and pruning a
compiled bundle gives what compiling without the service gives."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pytest

from compiler.ast import Bundle
from compiler.lower import lower_bundle
from compiler.models import AuthSettings, AuthUser, ContainerRef, Service
from compiler.options import RenderOptions
from compiler.printer import CONFIG_NAME, print_map
from grammar.maps import parse_map
from grammar.parser import parse
from grammar.refusal import attribute_files, prune
from grammar.roundtrip import print_verified, print_verified_bundle
from runtime.haproxy_check import check_config
from tests.support.haproxies import Oracle

HASH = "$5$saltsalt$O/1FQa3qd0jJ1ugEGUxTd2bMvUwTNvkAPBWuuKrNFe0"  # sha256-crypt of "secret"


def service(name: str, ip: str, **settings: object) -> Service:
    return Service(
        name=name,
        mode="host",
        predicate=f"{name}.example.com",
        containers=(ContainerRef(id=f"{name}-1", ip=ip),),
        **settings,  # type: ignore[arg-type]
    )


GOOD = service("good", "10.0.2.1:80")
BAD = service("bad", "10.0.1.1:80", auth=AuthSettings(users=[AuthUser(name="bob", hash=HASH)]))


def bundle(routing: str, *services: Service) -> Bundle:
    return lower_bundle(services, RenderOptions(routing=routing))  # type: ignore[arg-type]


def broken(routing: str, old: str, new: str) -> dict[str, str]:
    """The bundle of GOOD and BAD with one piece of its config text replaced."""
    files = print_verified_bundle(bundle(routing, GOOD, BAD))
    assert old in files[CONFIG_NAME], old
    files[CONFIG_NAME] = files[CONFIG_NAME].replace(old, new, 1)
    return files


def host_map(files: Mapping[str, str]) -> str:
    return next(name for name in files if name.startswith("host."))


# (routing, what is replaced, by what, what haproxy names it by, the service it blames)
CASES: dict[str, tuple[str, Callable[[Mapping[str, str]], tuple[str, str]], str, str]] = {
    "a backend line": (
        "acl",
        lambda _: ("    server bad-1 10.0.1.1:80 check", "    server bad-1 10.0.1.1:80 weight 999"),
        "weight of server bad-1 is not within 0 and 256",
        "bad",
    ),
    "a userlist line": (
        "acl",
        lambda _: (f"password '{HASH}'\n", f"password '{HASH}' wibble\n"),
        "'user' only supports",
        "bad",
    ),
    "a frontend ACL": (
        "acl",
        lambda _: ("-i bad.example.com", "-m reg -i ("),
        "regex '(' is invalid",
        "bad",
    ),
    "a map file line": (
        "map",
        lambda files: (f"map({host_map(files)})", f"map_ip({host_map(files)})"),
        "at line 1 of file",
        "bad",  # the map's first line: bad.example.com bad
    ),
    "a proxy by name": (
        "acl",
        lambda _: ("use_backend good if host_good", "use_backend missing if host_good"),
        "unable to find required use_backend: 'missing'",
        "missing",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=lambda case: case.replace(" ", "-"))
def test_the_service_a_refusal_names(case: str, haproxy_oracle: Oracle) -> None:
    routing, edit, said, blamed = CASES[case]
    files = print_verified_bundle(bundle(routing, GOOD, BAD))
    old, new = edit(files)
    files = broken(routing, old, new)
    verdict = check_config(files, binary=haproxy_oracle.binary)
    assert not verdict.ok
    assert said in verdict.output

    found = attribute_files(verdict.output, files)

    assert found.services == (blamed,), verdict.output
    assert found.unattributed == ()
    # haproxy's words, without its pid and the file's location
    assert any(said in blame.message for blame in found.blamed)
    assert not any(blame.message.startswith(("[", "parsing")) for blame in found.blamed)


def test_a_line_of_the_global_section_names_no_service(haproxy_oracle: Oracle) -> None:
    files = broken("acl", "    hard-stop-after 30m\n", "    hard-stop-after 30xyz\n")
    verdict = check_config(files, binary=haproxy_oracle.binary)
    assert not verdict.ok

    found = attribute_files(verdict.output, files)

    assert found.services == ()
    assert any("hard-stop-after" in line for line in found.unattributed), verdict.output


@pytest.mark.parametrize("routing", ["acl", "map"])
def test_pruning_a_compiled_bundle_gives_the_bundle_compiled_without_the_service(
    routing: str, assert_haproxy_accepts: Callable[[Mapping[str, str]], None]
) -> None:
    files = print_verified_bundle(bundle(routing, GOOD, BAD))
    maps = [parse_map(text, name) for name, text in list(files.items())[1:]]

    config, kept = prune(parse(files[CONFIG_NAME]), maps, ["bad"])

    pruned = {CONFIG_NAME: print_verified(config), **{m.name: print_map(m.entries) for m in kept}}
    assert pruned == print_verified_bundle(bundle(routing, GOOD))
    assert not re.search(r"\bbad\b|auth_bad", "".join(pruned.values()))
    assert_haproxy_accepts(pruned)
