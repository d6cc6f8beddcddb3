"""Rules about the files a config reads: map and ACL pattern files (HAP060-HAP061).

Whether a file exists is not in the text, so these rules take their answers from the edge:
``map_reference_findings`` gets an ``exists`` callable (``lambda-registry lint`` passes one
that looks beside the config), and ``map_file_findings`` the text of a map file given on the
command line. The registered checks find nothing on their own; registering them gives them
their codes, ``--select``/``--ignore`` and a place in ``docs/lint-rules.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from compiler.ast import Config, Global, Source, Statement
from grammar.lint.findings import Finding, Problem
from grammar.lint.model import LintContext
from grammar.lint.registry import RULES, rule
from grammar.maps import map_problems

# map(FILE[,default]), map_beg(FILE), map_str_int(...): the file is the first argument.
_MAP_CONVERTER = re.compile(r"(?<![A-Za-z0-9_.])map(?:_[a-z_]+)?\(([^,)]+)")


@rule("HAP060", "missing-map-file", "error", "a map or ACL pattern file that does not exist")
def missing_map_file(ctx: LintContext) -> Iterator[Problem]:
    return iter(())  # needs the file system: see map_reference_findings


@rule("HAP061", "malformed-map-line", "error", "a map file line HAProxy misreads")
def malformed_map_line(ctx: LintContext) -> Iterator[Problem]:
    return iter(())  # needs the map file: see map_file_findings


@dataclass(frozen=True, slots=True)
class FileReference:
    src: Source | None
    index: int  # the word that names the file
    name: str
    kind: str  # "map" or "pattern"


def file_references(config: Config) -> Iterator[FileReference]:
    """Every map (``map(...)`` converters) and pattern file (``-f FILE`` on ACLs) named."""
    for section in config.sections:
        for line in section.body:
            src = line.src
            words = src.values if src is not None else ()
            if not words:
                continue
            acl = words[0] == "acl"
            in_braces = False
            for index, word in enumerate(words):
                if word == "{":
                    in_braces = True
                elif word == "}":
                    in_braces = False
                for match in _MAP_CONVERTER.finditer(word):
                    yield FileReference(src, index, match.group(1), "map")
                if word == "-f" and (acl or in_braces) and index + 1 < len(words):
                    yield FileReference(src, index + 1, words[index + 1], "pattern")


def base_directory(config: Config) -> str | None:
    """Where HAProxy looks for relative file names: ``None`` for its working directory (the
    default), ``""`` for the config's directory (``default-path config``), or a path."""
    for section in config.sections:
        if not isinstance(section, Global):
            continue
        for line in section.body:
            if isinstance(line, Statement) and line.keyword == "default-path" and line.args:
                if line.args[0] == "config":
                    return ""
                if line.args[0] == "origin" and len(line.args) > 1:
                    return line.args[1]
                return None
    return None


def map_reference_findings(
    config: Config, file: str, exists: Callable[[str], bool]
) -> list[Finding]:
    """HAP060 for every referenced file ``exists`` does not find (it gets the name as
    written)."""
    found: list[Finding] = []
    seen: set[tuple[int, str]] = set()
    rule_ = RULES["HAP060"]
    for ref in file_references(config):
        line = ref.src.line if ref.src is not None else 1
        if (line, ref.name) in seen or exists(ref.name):
            continue
        seen.add((line, ref.name))
        col = ref.src.words[ref.index].col if ref.src is not None else 1
        what = "map file" if ref.kind == "map" else "pattern file"
        message = f"{what} '{ref.name}' does not exist: haproxy refuses to start without it"
        found.append(Finding(rule_.code, rule_.severity, message, file, line, col, rule_.name))
    return found


def map_file_findings(text: str, file: str) -> list[Finding]:
    """HAP061 for each line of a map file that HAProxy would misread."""
    rule_ = RULES["HAP061"]
    return [
        Finding(rule_.code, rule_.severity, p.message, file, p.line, p.col, rule_.name)
        for p in map_problems(text)
    ]
