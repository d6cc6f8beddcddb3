"""Rules about ACLs: undefined, unused, conflicting flags (HAP030-HAP032)."""

from __future__ import annotations

from collections.abc import Iterator

from grammar.lint.findings import Problem
from grammar.lint.model import LintContext
from grammar.lint.registry import rule
from grammar.lint.statements import Stmt, tokens

# HAProxy's pre-defined ACLs (configuration manual, 7.4); usable everywhere without `acl`.
PREDEFINED_ACLS: frozenset[str] = frozenset(
    {
        "FALSE", "HTTP", "HTTP_1.0", "HTTP_1.1", "HTTP_2.0", "HTTP_3.0", "HTTP_CONTENT",
        "HTTP_URL_ABS", "HTTP_URL_SLASH", "HTTP_URL_STAR", "LOCALHOST", "METH_CONNECT",
        "METH_DELETE", "METH_GET", "METH_HEAD", "METH_OPTIONS", "METH_POST", "METH_PUT",
        "METH_TRACE", "RDP_COOKIE", "REQ_CONTENT", "TRUE", "WAIT_END",
    }
)  # fmt: skip


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


@rule("HAP030", "undefined-acl", "error", "a condition names an ACL not defined before it")
def undefined_acl(ctx: LintContext) -> Iterator[Problem]:
    for info, table in ctx.acl_tables:
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
    for info, table in ctx.acl_tables:
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
    for _, table in ctx.acl_tables:
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
