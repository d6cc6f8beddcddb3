"""The semantic model of one config, built once per file and read by every lint rule.

``LintContext`` indexes what several rules need: the statements of every section with their
words (``grammar.lint.statements.Stmt``), the proxies and the ``defaults`` section each
inherits from, the branch of ``.if`` blocks every line sits in, the backends and the routes to
them, the ACLs of each section and where conditions use them, and what the keyword table says
about every line. What is derived is computed on first use and kept (``cached_property``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from compiler.ast import (
    AclRef,
    Blank,
    Comment,
    Condition,
    Config,
    DefaultBackend,
    Directive,
    Line,
    Section,
    Server,
    Source,
    UseBackend,
    section_header_words,
)
from compiler.errors import ParseError
from grammar.lint.findings import Problem
from grammar.lint.keywords import DEFAULT_TARGET, KEYWORDS, ProblemKind, check_section, check_words
from grammar.lint.statements import CONDITIONAL_KEYWORDS, Stmt, split_condition, to_stmt
from grammar.sections import PROXY_KINDS, Version

# Built once: `isinstance(x, A | B)` in a loop makes the union object on every pass.
_LAYOUT = (Comment, Blank)

__all__ = ["AclTable", "AclUse", "LintContext", "Proxy", "Route", "SectionInfo"]


@dataclass(slots=True)
class SectionInfo:
    section: Section
    kind: str
    name: str | None
    from_name: str | None
    statements: list[Stmt]
    index: int
    servers: list[tuple[Stmt, Server]] = field(default_factory=list)
    keywords: set[str] = field(default_factory=set)

    @property
    def src(self) -> Source | None:
        return self.section.src

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'" if self.name is not None else self.kind


@dataclass(slots=True)
class Proxy:
    """A defaults, frontend, backend or listen section, with the defaults it inherits from."""

    info: SectionInfo
    defaults: Proxy | None
    settings: dict[str, Stmt] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def name(self) -> str | None:
        return self.info.name

    @property
    def frontend(self) -> bool:
        return self.kind in ("frontend", "listen")

    @property
    def backend(self) -> bool:
        return self.kind in ("backend", "listen")

    def lookup(self, key: str) -> Stmt | None:
        """The statement that sets ``key`` here or in the defaults chain (see ``_setting_key``)."""
        proxy: Proxy | None = self
        seen = 0
        while proxy is not None and seen < 64:
            found = proxy.settings.get(key)
            if found is not None:
                return found
            proxy = proxy.defaults
            seen += 1
        return None

    def mode(self) -> str:
        found = self.lookup("mode")
        return found.args[0] if found is not None and found.args else "tcp"


_SETTING_KEYWORDS = frozenset({"mode", "cookie", "default_backend", "balance"})


def _setting_key(stmt: Stmt) -> str | None:
    """The key under which a statement overrides its defaults (``timeout client``, ...)."""
    if stmt.prefix:
        return None
    keyword = stmt.keyword
    if keyword in _SETTING_KEYWORDS:
        return keyword
    if keyword == "timeout" and stmt.args:
        return f"timeout {stmt.args[0]}"
    return None


Branch = tuple[tuple[int, int], ...]


class LintContext:
    """Everything rules read about one file, computed once."""

    def __init__(
        self,
        config: Config,
        *,
        file: str = "<input>",
        text: str | None = None,
        target: Version = DEFAULT_TARGET,
        parse_error: ParseError | None = None,
    ) -> None:
        self.config = config
        self.parse_error = parse_error  # why the text could not be parsed (config is empty)
        # Whether a file a config names exists (``crt``): given by the caller that knows the
        # config's folder; None means unknown, and such rules stay silent.
        self.path_exists: Callable[[str], bool] | None = None
        self.file = file
        self.text = text
        self.target = target
        self.preamble: list[Stmt] = []
        self.directives: list[Directive] = []
        self.sections: list[SectionInfo] = []
        self.branches: dict[int, Branch] = {}
        self.conditional_problems: list[Problem] = []
        self.guarded_blocks: set[int] = set()
        self._walk()
        self.proxies: list[Proxy] = []
        self.proxy_of: dict[int, Proxy] = {}
        self.named_defaults: dict[str, Proxy] = {}
        self._link_proxies()

    # --- building ------------------------------------------------------------------------

    def _walk(self) -> None:
        """Index statements and track ``.if`` blocks (balance problems go to a list)."""
        stack: list[tuple[int, int, bool, Directive]] = []  # (block id, branch, seen else, .if)
        counter = 0
        branch: Branch = ()
        branches = self.branches

        def lines(body: Sequence[Line], into: list[Stmt]) -> None:
            nonlocal counter, branch
            append_stmt = into.append
            for line in body:
                if isinstance(line, _LAYOUT):
                    continue
                if isinstance(line, Directive):
                    self.directives.append(line)
                    if branch:
                        branches[id(line)] = branch
                    name = line.name
                    if name == ".if":
                        counter += 1
                        stack.append((counter, 0, False, line))
                        if _VERSION_TEST.search(" ".join(line.args)):
                            self.guarded_blocks.add(counter)
                    elif name in (".elif", ".else"):
                        if not stack:
                            self.conditional_problems.append(
                                Problem(line.src, f"'{name}' without a matching '.if'")
                            )
                            continue
                        block, number, seen_else, opening = stack[-1]
                        if _VERSION_TEST.search(" ".join(line.args)):
                            self.guarded_blocks.add(block)
                        if seen_else:
                            self.conditional_problems.append(
                                Problem(line.src, f"'{name}' after '.else' is not permitted")
                            )
                        stack[-1] = (block, number + 1, seen_else or name == ".else", opening)
                    elif name == ".endif":
                        if not stack:
                            self.conditional_problems.append(
                                Problem(line.src, "'.endif' without a matching '.if'")
                            )
                            continue
                        stack.pop()
                    branch = tuple((entry[0], entry[1]) for entry in stack)
                    continue
                if branch:
                    branches[id(line)] = branch
                append_stmt(to_stmt(line))

        def index_section(info: SectionInfo) -> None:
            servers = info.servers
            keywords = info.keywords
            for stmt in info.statements:
                keywords.add(stmt.keyword)
                if type(stmt.node) is Server:
                    servers.append((stmt, stmt.node))

        lines(self.config.preamble, self.preamble)
        for index, section in enumerate(self.config.sections):
            if branch:
                branches[id(section)] = branch
            kind = section.keyword
            name, from_name = _header_name(section)
            info = SectionInfo(section, kind, name, from_name, [], index)
            self.sections.append(info)
            lines(section.body, info.statements)
            index_section(info)
        for _, _, _, opening in stack:
            self.conditional_problems.append(
                Problem(opening.src, "'.if' block is never closed with '.endif'")
            )

    def _link_proxies(self) -> None:
        current: Proxy | None = None
        for info in self.sections:
            if info.kind not in PROXY_KINDS:
                continue
            parent = current
            if info.from_name is not None:
                parent = self.named_defaults.get(info.from_name)
            elif info.kind == "defaults":
                parent = None
            proxy = Proxy(info, parent)
            for stmt in info.statements:
                key = _setting_key(stmt)
                if key is not None:
                    proxy.settings[key] = stmt
            self.proxies.append(proxy)
            self.proxy_of[id(info.section)] = proxy
            if info.kind == "defaults":
                current = proxy
                if info.name is not None:
                    self.named_defaults[info.name] = proxy

    # --- derived, on first use ---------------------------------------------------------

    @cached_property
    def backends(self) -> dict[str, Proxy]:
        """Proxies with the backend capability, by name (the first one of a duplicate)."""
        found: dict[str, Proxy] = {}
        for proxy in self.proxies:
            if proxy.backend and proxy.name is not None:
                found.setdefault(proxy.name, proxy)
        return found

    @cached_property
    def routes(self) -> list[Route]:
        """Every use_backend and default_backend statement of every proxy."""
        routes: list[Route] = []
        for proxy in self.proxies:
            for stmt in proxy.info.statements:
                node = stmt.node
                if isinstance(node, UseBackend):
                    routes.append(Route(proxy, stmt, node.backend, node.condition is not None))
                elif isinstance(node, DefaultBackend):
                    routes.append(Route(proxy, stmt, node.backend, False))
                elif stmt.keyword in ("use_backend", "default_backend") and stmt.args:
                    routes.append(Route(proxy, stmt, stmt.args[0], True))
        return routes

    @cached_property
    def acl_tables(self) -> list[tuple[SectionInfo, AclTable]]:
        """The ACLs defined in each section that may hold them, and where conditions use them."""
        tables: list[tuple[SectionInfo, AclTable]] = []
        for info in self.sections:
            if info.kind not in _ACL_SECTIONS:
                continue
            definitions: dict[str, list[Stmt]] = {}
            uses: list[AclUse] = []
            order: dict[int, int] = {}
            for position, stmt in enumerate(info.statements):
                if stmt.keyword == "acl" and not stmt.prefix and stmt.args:
                    definitions.setdefault(stmt.args[0], []).append(stmt)
                    order.setdefault(id(stmt.node), position)
                    continue
                if stmt.keyword not in CONDITIONAL_KEYWORDS and not isinstance(
                    stmt.node, UseBackend
                ):
                    continue  # split_condition's own first test, without the call
                condition, start = split_condition(stmt)
                if condition is None:
                    continue
                order[id(stmt.node)] = position
                for ref, index in _condition_refs(condition, start):
                    uses.append(AclUse(stmt, ref, _word_index(stmt, ref.name, index)))
            tables.append((info, AclTable(definitions, uses, order)))
        return tables

    @cached_property
    def keyword_problems(self) -> dict[ProblemKind, list[Problem]]:
        """What the keyword table says about every section and line, by kind of problem.

        Lines in a version-guarded ``.if`` block are not judged (see ``version_guarded``).
        """
        found: dict[ProblemKind, list[Problem]] = {}
        target = self.target
        # The table's answer depends on the section kind, the keyword (and option name), the
        # argument count, the prefix and whether a defaults section is named: cache on those.
        seen: dict[tuple[str, str, str, int, bool, bool], list[tuple[ProblemKind, str, int]]]
        seen = {}
        guarded = bool(self.guarded_blocks)
        for info in self.sections:
            section_problem = check_section(info.kind, target)
            if section_problem is not None and not self.version_guarded(info.section):
                problem = Problem(info.src, section_problem.message)
                found.setdefault(section_problem.kind, []).append(problem)
            named = info.name is not None
            kind = info.kind
            for stmt in info.statements:
                if guarded and self.version_guarded(stmt.node):
                    continue
                prefixed = stmt.prefix is not None
                words = stmt.words[1:] if prefixed else stmt.words
                keyword = stmt.keyword
                option = words[1] if keyword in _SUBKEYWORDS and len(words) > 1 else ""
                cache_key = (kind, keyword, option, len(words), prefixed, named)
                answers = seen.get(cache_key)
                if answers is None:
                    answers = [
                        (problem.kind, problem.message, problem.index)
                        for problem in check_words(
                            kind, words, target=target, named_defaults=named, prefixed=prefixed
                        )
                    ]
                    seen[cache_key] = answers
                for problem_kind, message, index in answers:
                    problem = Problem(stmt.src, message, index + stmt.offset)
                    found.setdefault(problem_kind, []).append(problem)
        return found

    # --- queries -------------------------------------------------------------------------

    def branch(self, node: object) -> Branch:
        return self.branches.get(id(node), ())

    def version_guarded(self, node: object) -> bool:
        """Whether a line sits in an ``.if`` block that tests the version or a feature.

        What such a block holds is meant for other HAProxy versions or builds, so whether
        the target version knows its keywords says nothing.
        """
        guarded = self.guarded_blocks
        return bool(guarded) and any(block in guarded for block, _ in self.branch(node))

    def exclusive(self, first: object, second: object) -> bool:
        """Whether two lines sit in different branches of one ``.if`` block."""
        left = dict(self.branch(first))
        if not left:
            return False
        return any(left.get(block, number) != number for block, number in self.branch(second))

    def statements(self) -> Iterator[tuple[SectionInfo, Stmt]]:
        for info in self.sections:
            for stmt in info.statements:
                yield info, stmt


_SUBKEYWORDS = frozenset(name for name, spec in KEYWORDS.items() if spec.subkeywords)
_VERSION_TEST = re.compile(r"version_|feature\(|ssllib|openssl_version|enabled\(")


def _header_name(section: Section) -> tuple[str | None, str | None]:
    """A section's name and the ``from <defaults>`` it names, if any."""
    words = section_header_words(section)[1:]
    from_name = None
    if len(words) >= 2 and words[-2] == "from":
        from_name = words[-1]
        words = words[:-2]
    elif section.keyword == "defaults" and len(words) >= 2 and words[0] == "from":
        return None, words[1]
    return (words[0] if words else None), from_name


@dataclass(frozen=True, slots=True)
class Route:
    """A use_backend or default_backend statement of a proxy."""

    proxy: Proxy
    stmt: Stmt
    backend: str
    conditional: bool


_ACL_SECTIONS = frozenset({"frontend", "backend", "listen", "defaults", "fcgi-app"})


@dataclass(slots=True)
class AclUse:
    """A named ACL in a condition, and the index of its word (for the column)."""

    stmt: Stmt
    ref: AclRef
    index: int


@dataclass(slots=True)
class AclTable:
    """A section's ACL definitions by name, their uses, and each statement's position."""

    definitions: dict[str, list[Stmt]]
    uses: list[AclUse]
    order: dict[int, int]


def _condition_refs(condition: Condition, start: int) -> Iterator[tuple[AclRef, int]]:
    """The named ACLs of a condition with a best-effort word index (for the column)."""
    for alternative in condition.alternatives:
        for term in alternative.terms:
            if isinstance(term, AclRef):
                yield term, start


def _word_index(stmt: Stmt, name: str, start: int) -> int:
    for index in range(max(start, 0), len(stmt.words)):
        if stmt.words[index].lstrip("!") == name:
            return index
    return max(start, 0)
