"""Rules about ACLs: undefined, unused, conflicting flags (HAP030-HAP032)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from compiler.ast import AclRef, Condition
from grammar.lint.model import (
    PREDEFINED_ACLS,
    LintContext,
    Problem,
    SectionInfo,
    Stmt,
    rule,
    split_condition,
    tokens,
)

# --- ACLs --------------------------------------------------------------------------------

_ACL_SECTIONS = frozenset({"frontend", "backend", "listen", "defaults", "fcgi-app"})


def _acl_flags(args: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """An ACL's criterion and its flags (``-i``, ``-m beg``, ...), values left out."""
    criterion = args[0] if args else ""
    flags: list[str] = []
    index = 1
    while index < len(args) and args[index].startswith("-"):
        flag = args[index]
        if flag == "--":
            break
        flags.append(flag)
        if flag in ("-m", "-f", "-M") and index + 1 < len(args):
            flags.append(args[index + 1])
            index += 1
        index += 1
    return criterion, tuple(flags)


@dataclass(slots=True)
class _AclUse:
    stmt: Stmt
    ref: AclRef
    index: int


def _condition_refs(condition: Condition, start: int) -> Iterator[tuple[AclRef, int]]:
    """The named ACLs of a condition with a best-effort word index (for the column)."""
    for alternative in condition.alternatives:
        for term in alternative.terms:
            if isinstance(term, AclRef):
                yield term, start


@dataclass(slots=True)
class _AclTable:
    definitions: dict[str, list[Stmt]]
    uses: list[_AclUse]
    order: dict[int, int]


def _acl_tables(ctx: LintContext) -> list[tuple[SectionInfo, _AclTable]]:
    cached: list[tuple[SectionInfo, _AclTable]] | None = getattr(ctx, "_acl_cache", None)
    if cached is not None:
        return cached
    tables: list[tuple[SectionInfo, _AclTable]] = []
    for info in ctx.sections:
        if info.kind not in _ACL_SECTIONS:
            continue
        definitions: dict[str, list[Stmt]] = {}
        uses: list[_AclUse] = []
        order: dict[int, int] = {}
        for position, stmt in enumerate(info.statements):
            if stmt.keyword == "acl" and not stmt.prefix and stmt.args:
                definitions.setdefault(stmt.args[0], []).append(stmt)
                order.setdefault(id(stmt.node), position)
                continue
            condition, start = split_condition(stmt)
            if condition is None:
                continue
            order[id(stmt.node)] = position
            for ref, index in _condition_refs(condition, start):
                uses.append(_AclUse(stmt, ref, _word_index(stmt, ref.name, index)))
        tables.append((info, _AclTable(definitions, uses, order)))
    ctx._acl_cache = tables  # type: ignore[attr-defined]
    return tables


def _word_index(stmt: Stmt, name: str, start: int) -> int:
    for index in range(max(start, 0), len(stmt.words)):
        if stmt.words[index].lstrip("!") == name:
            return index
    return max(start, 0)


@rule("HAP030", "undefined-acl", "error", "a condition names an ACL not defined before it")
def undefined_acl(ctx: LintContext) -> Iterator[Problem]:
    for info, table in _acl_tables(ctx):
        for use in table.uses:
            name = use.ref.name
            if name in PREDEFINED_ACLS:
                continue
            definitions = table.definitions.get(name)
            if not definitions:
                yield Problem(
                    use.stmt.src, f"ACL '{name}' is not defined in {info.label}", use.index
                )
                continue
            position = table.order[id(use.stmt.node)]
            if all(table.order[id(d.node)] > position for d in definitions):
                line = definitions[0].src.line if definitions[0].src else 0
                yield Problem(
                    use.stmt.src,
                    f"ACL '{name}' is used before its definition at line {line}",
                    use.index,
                )


@rule("HAP031", "unused-acl", "warning", "an ACL no condition uses")
def unused_acl(ctx: LintContext) -> Iterator[Problem]:
    for info, table in _acl_tables(ctx):
        if not table.definitions:
            continue
        used = {use.ref.name for use in table.uses}
        unused = [name for name in table.definitions if name not in used]
        if not unused:
            continue
        # ACLs can also be read by the acl() sample fetch (3.x) or other expressions.
        mentioned = tokens(
            word for stmt in info.statements if stmt.keyword != "acl" for word in stmt.words
        )
        for name in unused:
            if name in mentioned:
                continue
            first = table.definitions[name][0]
            yield Problem(first.src, f"ACL '{name}' is never used in {info.label}", 1)


@rule("HAP032", "acl-conflicting-flags", "warning", "one ACL name, one criterion, other flags")
def acl_conflicting_flags(ctx: LintContext) -> Iterator[Problem]:
    for _, table in _acl_tables(ctx):
        for name, definitions in table.definitions.items():
            if len(definitions) < 2:
                continue
            seen: dict[str, tuple[tuple[str, ...], Stmt]] = {}
            for stmt in definitions:
                criterion, flags = _acl_flags(stmt.args[1:])
                first = seen.get(criterion)
                if first is None:
                    seen[criterion] = (flags, stmt)
                elif first[0] != flags and not ctx.exclusive(first[1].node, stmt.node):
                    line = first[1].src.line if first[1].src else 0
                    old = " ".join(first[0]) or "no flags"
                    new = " ".join(flags) or "no flags"
                    yield Problem(
                        stmt.src,
                        f"ACL '{name}' uses '{criterion}' with {new} here but {old} at line {line}",
                        2,
                    )
