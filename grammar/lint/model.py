"""What lint rules are made of: findings, the rule registry, and a read-only model of a config.

A rule is a pure function from a ``LintContext`` to ``Problem`` objects; ``rule()`` registers
it under a stable code (``HAP020``), a name, a severity and a one-line summary. The context
is built once per file and indexes what several rules need: the statements of every section
with their words, the proxies and the ``defaults`` section each inherits from, the branch of
``.if`` blocks every line sits in, and the conditions of rule statements.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from compiler.ast import (
    Blank,
    Comment,
    Condition,
    Config,
    Directive,
    Line,
    Section,
    Server,
    Source,
    UseBackend,
    section_header_words,
)
from compiler.errors import ConditionError, Severity
from compiler.statements import CONDITION_KEYWORDS, PREFIXES, parse_condition, statement_words
from grammar.lint.keywords import DEFAULT_TARGET
from grammar.sections import PROXY_KINDS, Version

__all__ = [
    "PREDEFINED_ACLS",
    "RULES",
    "Finding",
    "LintContext",
    "Problem",
    "Proxy",
    "Rule",
    "SectionInfo",
    "Stmt",
    "rule",
    "split_condition",
]

# HAProxy's pre-defined ACLs (configuration manual, 7.4); usable everywhere without `acl`.
PREDEFINED_ACLS: frozenset[str] = frozenset(
    {
        "FALSE", "HTTP", "HTTP_1.0", "HTTP_1.1", "HTTP_2.0", "HTTP_3.0", "HTTP_CONTENT",
        "HTTP_URL_ABS", "HTTP_URL_SLASH", "HTTP_URL_STAR", "LOCALHOST", "METH_CONNECT",
        "METH_DELETE", "METH_GET", "METH_HEAD", "METH_OPTIONS", "METH_POST", "METH_PUT",
        "METH_TRACE", "RDP_COOKIE", "REQ_CONTENT", "TRUE", "WAIT_END",
    }
)  # fmt: skip

# Keywords whose statements may end with `if <cond>` / `unless <cond>`.
CONDITIONAL_KEYWORDS: frozenset[str] = frozenset(
    {
        "use_backend", "use-server", "http-request", "http-response", "http-after-response",
        "tcp-request", "tcp-response", "redirect", "force-persist", "ignore-persist", "stick",
        "monitor", "block", "stats", "errorloc", "quic-initial",
    }
)  # fmt: skip


# ... and those among them whose condition comes right after the keyword.
_CONDITION_FIRST: frozenset[str] = frozenset({"force-persist", "ignore-persist", "block"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnostic: a rule's code and severity, a one-line message, and where."""

    code: str
    severity: Severity
    message: str
    file: str
    line: int
    col: int
    name: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity} {self.code} {self.message}"

    def as_dict(self) -> dict[str, str | int]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "col": self.col,
        }


@dataclass(frozen=True, slots=True)
class Problem:
    """What a rule reports: a message about a line (``src``), pointing at word ``index``."""

    src: Source | None
    message: str
    index: int = 0
    line: int | None = None
    col: int | None = None


Check = Callable[["LintContext"], Iterable[Problem]]


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    check: Check


RULES: dict[str, Rule] = {}


def rule(code: str, name: str, severity: Severity, summary: str) -> Callable[[Check], Check]:
    """Register a rule function under a stable code."""

    def register(check: Check) -> Check:
        if code in RULES:
            raise ValueError(f"rule code {code} registered twice")
        RULES[code] = Rule(code, name, severity, summary, check)
        return check

    return register


# --- the model ---------------------------------------------------------------------------


class Stmt(NamedTuple):
    """A statement with its words: ``words`` as HAProxy reads them (prefix included).

    A tuple, because a config has one per line and tuples are the cheapest to build.
    """

    node: Line
    words: tuple[str, ...]
    keyword: str
    prefix: str | None

    @property
    def args(self) -> tuple[str, ...]:
        """The words after the keyword."""
        return self.words[2:] if self.prefix else self.words[1:]

    @property
    def src(self) -> Source | None:
        return self.node.src

    @property
    def offset(self) -> int:
        """Index of the keyword in ``words`` (1 after a ``no``/``default`` prefix)."""
        return 1 if self.prefix else 0


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
    ) -> None:
        self.config = config
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
            for line in body:
                if isinstance(line, Comment | Blank):
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
                into.append(_stmt(line))

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


_new_stmt = tuple.__new__


def _stmt(line: Line) -> Stmt:
    src = line.src
    # A parsed line's values are its words (the printer relies on the same identity).
    words = src.values if src is not None else statement_words(line)  # type: ignore[arg-type]
    first = words[0]
    if first in PREFIXES and len(words) > 1:
        return _new_stmt(Stmt, (line, words, words[1], first))
    return _new_stmt(Stmt, (line, words, first, None))


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


def split_condition(stmt: Stmt) -> tuple[Condition | None, int]:
    """The ``if``/``unless`` condition ending a rule statement, and the index of its first word.

    The condition starts at the first ``if`` or ``unless`` after the keyword's first argument
    (an action name such as ``deny``), and is parsed with HAProxy's rules
    (``compiler.statements.parse_condition``). Returns ``(None, -1)`` when there is none, or
    when the words after ``if`` do not form a condition.
    """
    node = stmt.node
    if isinstance(node, UseBackend):
        if node.condition is None:
            return None, -1
        return node.condition, 2
    if stmt.keyword not in CONDITIONAL_KEYWORDS:
        return None, -1
    words = stmt.words
    start = stmt.offset + (1 if stmt.keyword in _CONDITION_FIRST else 2)
    for index in range(start, len(words)):
        if words[index] in CONDITION_KEYWORDS:
            try:
                return parse_condition(words[index:]), index
            except ConditionError:
                return None, -1
    return None, -1


def is_dynamic(name: str) -> bool:
    """A name built at run time (a sample expression or an environment variable)."""
    return "%[" in name or "$" in name


_IDENT = re.compile(r"[A-Za-z0-9_.:-]+")
_VERSION_TEST = re.compile(r"version_|feature\(|ssllib|openssl_version|enabled\(")


def tokens(words: Iterable[str]) -> set[str]:
    """Every identifier-like piece of ``words`` (used to find names referred to anywhere)."""
    found: set[str] = set()
    for word in words:
        found.update(_IDENT.findall(word))
        found.update(piece for piece in re.split(r"[,()/\s]", word) if piece)
    return found
