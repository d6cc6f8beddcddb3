"""Words <-> statement nodes, in both directions, in one place.

``statement_words`` is what the printer spells; ``build_statement`` is what the parser builds
from a line's words. They are mirror images: ``build_statement(statement_words(s)) == s`` for
every statement the compiler emits, which is what makes the round trip a real check.
A line whose words do not fit a typed node's shape becomes a generic ``Statement``: the
parser never rejects a well-formed line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from compiler.ast import (
    Acl,
    AclRef,
    AllOf,
    AnonymousAcl,
    Balance,
    Bind,
    Condition,
    Cookie,
    DefaultBackend,
    Log,
    Mode,
    Option,
    Prefix,
    Server,
    Statement,
    Term,
    Timeout,
    TypedStatement,
    UseBackend,
)
from compiler.errors import ConditionError

PREFIXES: frozenset[str] = frozenset({"no", "default"})
CONDITION_KEYWORDS: frozenset[str] = frozenset({"if", "unless"})


# --- conditions --------------------------------------------------------------------------


def condition_words(condition: Condition) -> tuple[str, ...]:
    words: list[str] = [condition.kind]
    for index, alternative in enumerate(condition.alternatives):
        if index:
            words.append("||")
        for term in alternative.terms:
            words.extend(_term_words(term))
    return tuple(words)


def _term_words(term: Term) -> tuple[str, ...]:
    if isinstance(term, AclRef):
        return ("!" + term.name,) if term.negated else (term.name,)
    braces = ("{", *term.words, "}")
    return ("!", *braces) if term.negated else braces


def parse_condition(words: Sequence[str]) -> Condition:
    """Parse ``if|unless <terms>`` the way HAProxy's ``parse_acl_cond`` reads it.

    Any number of leading ``!`` toggle negation (``!a``, ``! a``, ``!{``); ``or`` (any case)
    and ``||`` separate alternatives; adjacent terms are ANDed; ``{ ... }`` is an anonymous
    ACL whose braces are words of their own. Raises ``ConditionError`` with the index of the
    offending word for what HAProxy refuses, and for an empty condition, which HAProxy accepts
    but which never matches.
    """
    kind = words[0]
    if kind not in CONDITION_KEYWORDS:
        raise ConditionError(f"expected 'if' or 'unless', found {kind!r}", 0)
    alternatives: list[AllOf] = []
    terms: list[Term] = []
    negated = False
    index = 1
    count = len(words)
    while index < count:
        word = words[index].lstrip("!")
        if (len(words[index]) - len(word)) % 2:
            negated = not negated
        if not word:
            index += 1
            continue
        if word == "||" or word.lower() == "or":
            if not terms:
                raise ConditionError(f"'{word}' must follow an ACL", index)
            alternatives.append(AllOf(tuple(terms)))
            terms = []
            negated = False
        elif word == "{":
            end = _closing_brace(words, index)
            terms.append(AnonymousAcl(tuple(words[index + 1 : end]), negated))
            negated = False
            index = end
        elif word == "}":
            raise ConditionError("'}' without a matching '{'", index)
        else:
            terms.append(AclRef(word, negated))
            negated = False
        index += 1
    if not terms:
        raise ConditionError(f"'{kind}' needs at least one ACL after it", count - 1)
    alternatives.append(AllOf(tuple(terms)))
    return Condition("if" if kind == "if" else "unless", tuple(alternatives))


def _closing_brace(words: Sequence[str], start: int) -> int:
    for index in range(start + 1, len(words)):
        if words[index] == "}":
            if index == start + 1:
                raise ConditionError("an anonymous ACL '{ }' needs a criterion", start)
            return index
    raise ConditionError("'{' without a matching '}'", start)


# --- statements --------------------------------------------------------------------------


def statement_words(node: TypedStatement | Statement) -> tuple[str, ...]:
    """The words (unquoted values) HAProxy should read for ``node``, keyword first."""
    spell = _SPELLERS.get(type(node))
    if spell is None:
        raise TypeError(f"not a statement node: {type(node).__name__}")
    return spell(node)


def _use_backend_words(node: UseBackend) -> tuple[str, ...]:
    if node.condition is None:
        return ("use_backend", node.backend)
    return ("use_backend", node.backend, *condition_words(node.condition))


# One entry per node type (a dict, not a `match`: the printer calls this for every line).
_SPELLERS: dict[type, Callable[[Any], tuple[str, ...]]] = {
    Acl: lambda n: ("acl", n.name, n.criterion, *n.args),
    UseBackend: _use_backend_words,
    DefaultBackend: lambda n: ("default_backend", n.backend),
    Bind: lambda n: ("bind", n.address, *n.params),
    Mode: lambda n: ("mode", n.mode),
    Balance: lambda n: ("balance", n.algorithm, *n.args),
    Option: lambda n: (*_prefix(n.prefix), "option", n.name, *n.args),
    Timeout: lambda n: ("timeout", n.event, n.value),
    Cookie: lambda n: ("cookie", n.name, *n.params),
    Server: lambda n: ("server", n.name, n.address, *n.params),
    Log: lambda n: (*_prefix(n.prefix), "log", *n.args),
    Statement: lambda n: (*_prefix(n.prefix), n.keyword, *n.args),
}


STATEMENT_SPELLERS: Mapping[type, Callable[[Any], tuple[str, ...]]] = _SPELLERS


def _prefix(prefix: Prefix | None) -> tuple[str, ...]:
    return (prefix,) if prefix else ()


Builder = Callable[[tuple[str, ...]], TypedStatement | None]


def _acl(args: tuple[str, ...]) -> TypedStatement | None:
    return Acl(args[0], args[1], args[2:]) if len(args) >= 2 else None


def _use_backend(args: tuple[str, ...]) -> TypedStatement | None:
    if len(args) == 1:
        return UseBackend(args[0])
    if len(args) >= 3 and args[1] in CONDITION_KEYWORDS:
        try:
            return UseBackend(args[0], parse_condition(args[1:]))
        except ConditionError:
            return None
    return None


def _one(factory: Callable[[str], TypedStatement]) -> Builder:
    return lambda args: factory(args[0]) if len(args) == 1 else None


def _head_and_rest(factory: Callable[[str, tuple[str, ...]], TypedStatement]) -> Builder:
    return lambda args: factory(args[0], args[1:]) if args else None


def _timeout(args: tuple[str, ...]) -> TypedStatement | None:
    return Timeout(args[0], args[1]) if len(args) == 2 else None


def _server(args: tuple[str, ...]) -> TypedStatement | None:
    return Server(args[0], args[1], args[2:]) if len(args) >= 2 else None


_BUILDERS: dict[str, Builder] = {
    "acl": _acl,
    "use_backend": _use_backend,
    "default_backend": _one(DefaultBackend),
    "bind": _head_and_rest(Bind),
    "mode": _one(Mode),
    "balance": _head_and_rest(Balance),
    "timeout": _timeout,
    "cookie": _head_and_rest(Cookie),
    "server": _server,
}


def build_statement(words: Sequence[str]) -> TypedStatement | Statement:
    """Recognise a line's words (unquoted, keyword first) as the most specific node."""
    prefix: Prefix | None = None
    start = 0
    if len(words) > 1 and words[0] in PREFIXES:
        prefix = "no" if words[0] == "no" else "default"
        start = 1
    keyword = words[start]
    args = tuple(words[start + 1 :])
    if keyword == "option" and args:
        return Option(args[0], args[1:], prefix)
    if keyword == "log" and args:
        return Log(args, prefix)
    if prefix is None:
        builder = _BUILDERS.get(keyword)
        if builder is not None:
            node = builder(args)
            if node is not None:
                return node
    return Statement(keyword, args, prefix)
