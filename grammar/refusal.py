"""A ``haproxy -c`` refusal -> the services it names, and a bundle without them (pure).

HAProxy says where a config is wrong in a few shapes (2.6 and 2.8 alike):

* ``parsing [<file>:<line>] : <message>`` and ``[<file>:<line>] : 'server b/s' : ...``: a
  line of the config, or of a map file when ``<file>`` is one of the bundle's maps;
* ``... at line <n> of file '<map>'``: a line of a map file (a converter loading it);
* ``Proxy '<name>': ...``, ``backend '<name>'``, ``in proxy '<name>'``, ``userlist '<name>':``:
  a section by name, after parsing.

A generated config gives each service its own ``backend`` (named after it), maybe its own
``userlist`` (which its backend reads with ``http_auth``), and frontend lines that route to it
(``use_backend <name>`` and the ACLs only those name; with map routing, map entries whose
value is its name). So a line inside a backend blames that service; a line of a userlist, the
service whose backend reads it; a frontend line, the service it routes to. Anything else (the
global or defaults section, a rule shared by every service) blames nobody, and the caller
keeps today's answer: nothing is applied.

``prune`` removes services from a parsed bundle: their backends, the userlists only they read,
the frontend lines that route to them only, and their map entries (a changed map gets a new
content-named file name, and the config reads it under that name).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from compiler.ast import (
    Acl,
    AclRef,
    Backend,
    Config,
    DefaultBackend,
    Frontend,
    GenericSection,
    Line,
    MapFile,
    Section,
    Statement,
    UseBackend,
)
from compiler.printer import CONFIG_NAME, map_file
from compiler.statements import STATEMENT_SPELLERS
from grammar.maps import parse_map
from grammar.parser import parse

__all__ = ["Attribution", "Blame", "attribute", "attribute_files", "prune"]

_ALERT = re.compile(r"^\[ALERT\]\s*\(\d+\)\s*:\s*(?:config\s*:\s*)?(?P<text>.*\S)\s*$")
# The location HAProxy puts first: "parsing [f:12] : ", "parsing [f:12]: ", "[f:12] : ".
_LOCATION = re.compile(r"^(?:parsing\s+)?\[(?P<file>[^\[\]]*):(?P<line>\d+)\]\s*:?\s*")
_MAP_LINE = re.compile(r"at line (?P<line>\d+) of file '(?P<file>[^']+)'")
_NAMED = re.compile(r"\b(?:[Pp]roxy|backend|frontend|userlist)\s+'(?P<name>[^']+)'")
_QUOTED = re.compile(r"'([^']+)'")
# Summary lines that follow the errors themselves: they blame nothing, and hide nothing.
_SUMMARIES = (
    "Error(s) found in configuration file",
    "Fatal errors found in configuration",
    "Failed to initialize server(s) addr",
)


@dataclass(frozen=True, slots=True)
class Blame:
    """A service a refusal names: haproxy's message, and the line it named as written."""

    service: str
    message: str
    statement: str | None = None

    def __str__(self) -> str:
        where = f"`{self.statement}`: " if self.statement else ""
        return f"{where}{self.message}"


@dataclass(frozen=True, slots=True)
class Attribution:
    blamed: tuple[Blame, ...]
    unattributed: tuple[str, ...]  # haproxy's error lines that name no service

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(sorted({blame.service for blame in self.blamed}))

    def reasons(self, service: str) -> tuple[Blame, ...]:
        return tuple(blame for blame in self.blamed if blame.service == service)


def attribute_files(output: str, files: Mapping[str, str]) -> Attribution:
    """``attribute`` for a bundle given as files by name, the config first (as printed)."""
    names = list(files)
    config = parse(files[names[0]], file=names[0] or CONFIG_NAME)
    return attribute(output, config, [parse_map(files[name], name) for name in names[1:]])


def attribute(output: str, config: Config, maps: Sequence[MapFile] = ()) -> Attribution:
    """The services ``haproxy -c``'s ``output`` names in ``config`` (parsed from the text
    haproxy read, so that its nodes carry their line numbers) and its ``maps``."""
    index = _Index(config, maps)
    blamed: list[Blame] = []
    unattributed: list[str] = []
    for raw in output.splitlines():
        alert = _ALERT.match(raw.strip())
        if alert is None:
            continue
        text = alert.group("text")
        if any(summary in text for summary in _SUMMARIES):
            continue
        found = index.blame(text)
        if found:
            blamed.extend(found)
        else:
            unattributed.append(text)
    return Attribution(tuple(dict.fromkeys(blamed)), tuple(unattributed))


class _Index:
    """Lines by number, and which service each section or frontend line belongs to."""

    def __init__(self, config: Config, maps: Sequence[MapFile]) -> None:
        self.backends = {s.name for s in config.sections if isinstance(s, Backend)}
        self.lines: dict[int, tuple[Section, Line | None]] = {}
        self.userlists: dict[str, set[str]] = {}  # userlist -> the backends that read it
        self.frontends: set[str] = set()
        # ACL name -> the static use_backend targets whose condition names it, per frontend.
        self.routes: dict[tuple[str, str], set[str]] = {}
        for section in config.sections:
            if section.src is not None:
                self.lines[section.src.line] = (section, None)
            for line in section.body:
                if line.src is not None:
                    self.lines[line.src.line] = (section, line)
            if isinstance(section, Backend):
                for name in _userlists_read(section.body):
                    self.userlists.setdefault(name, set()).add(section.name)
            if isinstance(section, Frontend):
                self.frontends.add(section.name)
                for line in section.body:
                    if isinstance(line, UseBackend) and line.condition is not None:
                        for acl in _acl_names(line):
                            self.routes.setdefault((section.name, acl), set()).add(line.backend)
        self.maps = {m.name: m for m in maps}

    def blame(self, text: str) -> list[Blame]:
        location = _LOCATION.match(text)
        message = text[location.end() :] if location else text
        on_map = _MAP_LINE.search(text)
        if on_map is not None:
            found = self._map_line(on_map.group("file"), int(on_map.group("line")), message)
            if found:
                return found
        if location is not None:
            file, number = location.group("file"), int(location.group("line"))
            found = self._map_line(file, number, message)
            if not found and posixpath.basename(file) not in self.maps:
                found = self._config_line(number, message)
            if found:
                return found
        return self._named(text, message)

    def _map_line(self, file: str, number: int, message: str) -> list[Blame]:
        found = self.maps.get(posixpath.basename(file))
        if found is None:
            return []
        for entry in found.entries:
            if entry.src is not None and entry.src.line == number:
                statement = f"{found.name}:{number}: {entry.key} {entry.value}"
                return [Blame(entry.value, message, statement)]
        return []

    def _config_line(self, number: int, message: str) -> list[Blame]:
        at = self.lines.get(number)
        if at is None:
            return []
        section, line = at
        node = line if line is not None else section
        statement = node.src.text.strip() if node.src is not None else None
        return [Blame(name, message, statement) for name in self._owners(section, line)]

    def _owners(self, section: Section, line: Line | None) -> list[str]:
        if isinstance(section, Backend):
            return [section.name]
        if isinstance(section, GenericSection) and section.kind == "userlist":
            return sorted(self.userlists.get(_first(section.header_args), ()))
        if isinstance(section, Frontend) and line is not None:
            if isinstance(line, UseBackend | DefaultBackend):
                return [line.backend] if _static(line.backend) else []
            if isinstance(line, Acl):
                targets = self.routes.get((section.name, line.name), set())
                return sorted(t for t in targets if _static(t))
        return []

    def _named(self, text: str, message: str) -> list[Blame]:
        for match in _NAMED.finditer(text):
            name = match.group("name")
            if name in self.backends:
                return [Blame(name, message)]
            if name in self.userlists:
                return [Blame(b, message) for b in sorted(self.userlists[name])]
            if name in self.frontends:
                # "Proxy 'http': unable to find required use_backend: 'x'": the rule naming x.
                named = {q for q in _QUOTED.findall(message) if q != name}
                targets = {t for (f, _), ts in self.routes.items() if f == name for t in ts}
                return [Blame(t, message) for t in sorted(named & targets)]
        return []


def prune(
    config: Config, maps: Sequence[MapFile], services: Collection[str]
) -> tuple[Config, tuple[MapFile, ...]]:
    """``config`` and ``maps`` without ``services``: their backends, the userlists only they
    read, the routing lines that lead to them alone, and their map entries. A map that
    changes gets a new content-named file name, and the config reads it by that name (a name
    names one content: the running config may still read the old file)."""
    gone = set(services)
    renamed: dict[str, str] = {}
    kept_maps: list[MapFile] = []
    for old in maps:
        entries = tuple(e for e in old.entries if e.value not in gone)
        if len(entries) == len(old.entries):
            kept_maps.append(old)
            continue
        new = map_file(old.name.split(".", 1)[0], entries)
        renamed[old.name] = new.name
        kept_maps.append(new)
    kept_backends = [s for s in config.sections if isinstance(s, Backend) and s.name not in gone]
    read = {name for backend in kept_backends for name in _userlists_read(backend.body)}
    dropped_userlists = {
        name
        for s in config.sections
        if isinstance(s, Backend) and s.name in gone
        for name in _userlists_read(s.body)
    } - read
    sections: list[Section] = []
    for section in config.sections:
        if isinstance(section, Backend) and section.name in gone:
            continue
        if (
            isinstance(section, GenericSection)
            and section.kind == "userlist"
            and _first(section.header_args) in dropped_userlists
        ):
            continue
        if isinstance(section, Frontend):
            section = replace(section, body=_routes_without(section.body, gone))
        if renamed:
            section = replace(section, body=tuple(_renamed(line, renamed) for line in section.body))
        sections.append(section)
    return replace(config, sections=tuple(sections)), tuple(kept_maps)


def _routes_without(body: Sequence[Line], gone: set[str]) -> tuple[Line, ...]:
    """A frontend's lines without the rules routing to ``gone`` and the ACLs only they name."""
    candidates = {
        name
        for line in body
        if isinstance(line, UseBackend) and line.backend in gone
        for name in _acl_names(line)
    }
    kept = [line for line in body if not _is_route(line, gone)]
    still_named = {
        word.lstrip("!") for line in kept if not isinstance(line, Acl) for word in _words(line)[1:]
    }
    return tuple(
        line
        for line in kept
        if not (isinstance(line, Acl) and line.name in candidates - still_named)
    )


def _is_route(line: Line, gone: set[str]) -> bool:
    return isinstance(line, UseBackend | DefaultBackend) and line.backend in gone


def _renamed(line: Line, renamed: Mapping[str, str]) -> Line:
    """``line`` reading each renamed map by its new name (``map(host.<old>.map)``)."""
    if not isinstance(line, Statement) or not any(o in a for a in line.args for o in renamed):
        return line
    args = []
    for arg in line.args:
        for old, new in renamed.items():
            arg = arg.replace(f"({old})", f"({new})").replace(f"({old},", f"({new},")
        args.append(arg)
    return replace(line, args=tuple(args))


def _userlists_read(body: Iterable[Line]) -> set[str]:
    """The userlists a section reads through ``http_auth(<userlist>)`` ACLs and conditions."""
    found: set[str] = set()
    for line in body:
        for word in _words(line):
            for match in re.finditer(r"http_auth(?:_group)?\(([^),]+)", word):
                found.add(match.group(1))
    return found


def _acl_names(line: UseBackend) -> set[str]:
    if line.condition is None:
        return set()
    return {
        term.name
        for alternative in line.condition.alternatives
        for term in alternative.terms
        if isinstance(term, AclRef)
    }


def _words(line: Line) -> tuple[str, ...]:
    """A statement's words (keyword first); none for comments, blanks and directives."""
    spell = STATEMENT_SPELLERS.get(type(line))
    return spell(line) if spell is not None else ()


def _static(backend: str) -> bool:
    """A backend named as is (not ``%[var(...)]``, which a map lookup fills)."""
    return "%[" not in backend


def _first(words: tuple[str, ...]) -> str:
    return words[0] if words else ""
