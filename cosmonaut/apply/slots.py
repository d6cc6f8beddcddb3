"""Server slots: the registry's config laid onto the slots HAProxy runs, and what changed.

The registry names a container's server after the container and gives it a few free slots
(``disabled`` servers, see ``compiler.lower``). HAProxy cannot rename a server or change its
cookie at run time, so once a server runs under a name, it keeps it: ``place`` lays a new
config from the registry onto the running one, keeping every running server's name (and so
its cookie value, which is its name) for the same address, filling free slots for new
containers and freeing the slots of containers that left. ``runtime_plan`` then says whether
the result differs from what runs only in which slots are filled (runtime API commands,
no reload) or in anything else (a reload).

Pure: configs in, configs and commands out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from compiler.ast import Backend, Config, Line, Section, Server
from cosmonaut.apply.allowed import NAME, ip_address

DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Placed:
    config: Config
    servers: dict[str, tuple[str, str]]  # the registry's server name -> (backend, slot name)
    grew: tuple[str, ...]  # backends that needed more slots than they run with


@dataclass(frozen=True, slots=True)
class Plan:
    commands: tuple[str, ...]  # runtime API commands, in order (empty: nothing to do)
    filled: int
    emptied: int


def is_free(server: Server) -> bool:
    return DISABLED in server.params


def slots_in_use(config: Config) -> bool:
    """Whether the registry gave this config's backends slots (free servers)."""
    return any(
        isinstance(line, Server) and is_free(line)
        for section in config.sections
        if isinstance(section, Backend)
        for line in section.body
    )


def place(new: Config, running: Config | None, *, keep_capacity: bool) -> Placed:
    """``new`` with each backend's servers laid onto ``running``'s slots of that backend.

    With ``keep_capacity``, each backend keeps the number of slots it runs with (so the
    result can differ from ``running`` in slots only) unless it needs more (``grew``);
    otherwise it gets the registry's number, or more when its running names need them.
    """
    if running is None or not slots_in_use(new):
        return Placed(new, _identity(new), ())
    old = {s.name: s for s in running.sections if isinstance(s, Backend)}
    sections: list[Section] = []
    servers: dict[str, tuple[str, str]] = {}
    grew: list[str] = []
    for section in new.sections:
        if isinstance(section, Backend) and section.name in old:
            body, mapping, more = _place_backend(section, old[section.name], keep_capacity)
            sections.append(replace(section, body=body))
            servers.update(mapping)
            if more:
                grew.append(section.name)
        else:
            sections.append(section)
            if isinstance(section, Backend):
                servers.update(_identity_backend(section))
    return Placed(replace(new, sections=tuple(sections)), servers, tuple(grew))


def _identity(config: Config) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for section in config.sections:
        if isinstance(section, Backend):
            found.update(_identity_backend(section))
    return found


def _identity_backend(backend: Backend) -> dict[str, tuple[str, str]]:
    return {
        line.name: (backend.name, line.name)
        for line in backend.body
        if isinstance(line, Server) and not is_free(line)
    }


def _place_backend(
    new: Backend, old: Backend, keep_capacity: bool
) -> tuple[tuple[Line, ...], dict[str, tuple[str, str]], bool]:
    wanted = [line for line in new.body if isinstance(line, Server)]
    real = [s for s in wanted if not is_free(s)]
    free_template = next((s for s in wanted if is_free(s)), None)
    running = [line for line in old.body if isinstance(line, Server)]
    by_address = {s.address: s.name for s in reversed(running) if not is_free(s)}
    names = [s.name for s in running]
    taken: dict[str, Server] = {}
    unplaced: list[Server] = []
    for server in real:
        name = by_address.get(server.address)
        if name is not None and name not in taken:
            taken[name] = server
        else:
            unplaced.append(server)
    free = [name for name in names if name not in taken]
    used = set(names) | {s.name for s in wanted}
    grew = False
    for server in unplaced:
        if free:
            name = free.pop(0)
        else:
            grew = True
            name = _fresh(server.name, used)
            names.append(name)
        used.add(name)
        taken[name] = server
    capacity = len(names) if keep_capacity and not grew else max(len(wanted), len(taken))
    spare = capacity - len(taken)
    extra = [s.name for s in wanted if is_free(s) and s.name not in names]
    keep_free = (free + extra)[:spare]
    while len(keep_free) < spare:
        name = _fresh("slot", used)
        used.add(name)
        keep_free.append(name)
    order = [n for n in names if n in taken or n in keep_free]
    order += [n for n in keep_free if n not in order]
    template = free_template if free_template is not None else (real[0] if real else None)
    placed: list[Server] = []
    for name in order:
        if name in taken:
            placed.append(_renamed(taken[name], name))
        elif template is not None:
            placed.append(_free_slot(template, name, free_template))
    body: list[Line] = []
    inserted = False
    for line in new.body:
        if isinstance(line, Server):
            if not inserted:
                body.extend(placed)
                inserted = True
            continue
        body.append(line)
    if not inserted:
        body.extend(placed)
    mapping = {server.name: (new.name, name) for name, server in taken.items()}
    return tuple(body), mapping, grew


def _fresh(base: str, used: set[str]) -> str:
    index = 1
    while f"slot-{index}" in used:
        index += 1
    return f"slot-{index}"


def _renamed(server: Server, name: str) -> Server:
    """``server`` under the slot name ``name``, with the slot's cookie value (its name)."""
    return Server(name, server.address, _cookie(server.params, name))


def _free_slot(template: Server, name: str, free_template: Server | None) -> Server:
    if free_template is not None:
        return Server(name, free_template.address, _cookie(free_template.params, name))
    return Server(name, "127.0.0.1:1", (*_cookie(template.params, name), DISABLED))


def _cookie(params: tuple[str, ...], value: str) -> tuple[str, ...]:
    words = list(params)
    for index, word in enumerate(words[:-1]):
        if word == "cookie":
            words[index + 1] = value
    return tuple(words)


def without_servers(config: Config) -> Config:
    """``config`` with every backend's server lines left out (the part a reload needs)."""
    return replace(
        config,
        sections=tuple(
            replace(s, body=tuple(line for line in s.body if not isinstance(line, Server)))
            if isinstance(s, Backend)
            else s
            for s in config.sections
        ),
    )


def runtime_plan(running: Config, placed: Config) -> Plan | str:
    """The runtime API commands that turn ``running`` into ``placed``, or why it takes a
    reload (anything but filled and emptied slots differs)."""
    if without_servers(running) != without_servers(placed):
        return "the change is structural (not only servers of existing backends)"
    old = {s.name: s for s in running.sections if isinstance(s, Backend)}
    commands: list[str] = []
    filled = emptied = 0
    for section in placed.sections:
        if not isinstance(section, Backend):
            continue
        before = [line for line in old[section.name].body if isinstance(line, Server)]
        after = [line for line in section.body if isinstance(line, Server)]
        if [s.name for s in before] != [s.name for s in after]:
            return f"backend {section.name!r} needs other slots than it runs with"
        for was, now in zip(before, after, strict=True):
            if _options(was) != _options(now):
                return f"server {section.name}/{now.name} changed its options"
            target = f"{section.name}/{now.name}"
            if not (NAME.fullmatch(section.name) and NAME.fullmatch(now.name)):
                return f"server {target[:80]!r} has a name the runtime API cannot take"
            if is_free(now):
                if not is_free(was):
                    commands.append(f"set server {target} state maint")
                    emptied += 1
                continue
            if not is_free(was) and was.address == now.address:
                continue
            address = split_address(now.address)
            if address is None:
                return f"server {target} has an address the runtime API cannot set"
            if not is_free(was):
                commands.append(f"set server {target} state maint")
                emptied += 1
            ip, port = address
            commands.append(f"set server {target} addr {ip} port {port}")
            if "check" in now.params:
                commands.append(f"enable health {target}")
            commands.append(f"set server {target} state ready")
            filled += 1
    return Plan(tuple(commands), filled, emptied)


def _options(server: Server) -> tuple[str, ...]:
    return tuple(word for word in server.params if word != DISABLED)


def split_address(address: str) -> tuple[str, int] | None:
    """``10.0.0.1:80`` or ``[fd00::1]:80`` -> (ip, port); None unless an IP address (parsed
    by ``ipaddress``, written back in its own form) and a port from 1 to 65535."""
    host, sep, port = address.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ip = ip_address(host)
    return (ip.compressed, int(port)) if ip is not None else None
