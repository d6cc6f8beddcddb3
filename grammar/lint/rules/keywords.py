"""Rules that read the keyword table (HAP010-HAP017)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from grammar.lint.keywords import KEYWORDS, check_section, check_words
from grammar.lint.model import LintContext, Problem, rule

# --- keywords ----------------------------------------------------------------------------

_KEYWORD_CODES = {
    "unknown": "HAP010",
    "wrong-section": "HAP011",
    "ignored": "HAP012",
    "removed": "HAP013",
    "too-new": "HAP014",
    "arity": "HAP015",
    "anonymous-defaults": "HAP016",
    "deprecated": "HAP017",
}


@dataclass(slots=True)
class _KeywordFindings:
    """The keyword checker runs once per file; each keyword rule reads its own share."""

    by_code: dict[str, list[Problem]]


_CACHE_ATTR = "_keyword_findings"
_NAMED_DEFAULTS_RULES = frozenset({"tcp-request", "tcp-response"})
_SUBKEYWORDS = frozenset(name for name, spec in KEYWORDS.items() if spec.subkeywords)


def _keyword_findings(ctx: LintContext) -> _KeywordFindings:
    cached: _KeywordFindings | None = getattr(ctx, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    by_code: dict[str, list[Problem]] = {code: [] for code in _KEYWORD_CODES.values()}
    target = ctx.target
    # The table's answer depends on the section kind, the keyword (and option name), the
    # argument count, the prefix and whether a defaults section is named: cache on those.
    seen: dict[tuple[str, str, str, int, bool, bool], list[tuple[str, str, int]]] = {}
    guarded = bool(ctx.guarded_blocks)
    for info in ctx.sections:
        section_problem = check_section(info.kind, target)
        if section_problem is not None and not ctx.version_guarded(info.section):
            by_code["HAP014"].append(Problem(info.src, section_problem.message))
        named = info.name is not None
        kind = info.kind
        for stmt in info.statements:
            if guarded and ctx.version_guarded(stmt.node):
                continue
            prefixed = stmt.prefix is not None
            words = stmt.words[1:] if prefixed else stmt.words
            keyword = stmt.keyword
            option = words[1] if keyword in _SUBKEYWORDS and len(words) > 1 else ""
            cache_key = (kind, keyword, option, len(words), prefixed, named)
            found = seen.get(cache_key)
            if found is None:
                found = [
                    (_KEYWORD_CODES[problem.kind], problem.message, problem.index)
                    for problem in check_words(
                        kind, words, target=target, named_defaults=named, prefixed=prefixed
                    )
                ]
                if kind == "defaults" and not named and keyword in _NAMED_DEFAULTS_RULES:
                    found.append(
                        (
                            "HAP016",
                            f"'{keyword}' is not allowed in an anonymous 'defaults' section "
                            "(give it a name)",
                            0,
                        )
                    )
                seen[cache_key] = found
            if found:
                offset = stmt.offset
                for code, message, index in found:
                    by_code[code].append(Problem(stmt.src, message, index + offset))
    result = _KeywordFindings(by_code)
    setattr(ctx, _CACHE_ATTR, result)
    return result


@rule("HAP010", "unknown-keyword", "warning", "a keyword the table does not know")
def unknown_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP010"]


@rule("HAP011", "keyword-wrong-section", "error", "a keyword not allowed in this section kind")
def keyword_wrong_section(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP011"]


@rule("HAP012", "keyword-ignored", "warning", "a keyword HAProxy ignores in this section kind")
def keyword_ignored(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP012"]


@rule("HAP013", "removed-keyword", "error", "a keyword removed from HAProxy")
def removed_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP013"]


@rule("HAP014", "too-new-keyword", "error", "a keyword or section newer than the target")
def too_new_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP014"]


@rule("HAP015", "argument-count", "error", "too few or too many arguments")
def argument_count(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP015"]


@rule("HAP016", "rule-in-anonymous-defaults", "error", "rules in a defaults section without name")
def rule_in_anonymous_defaults(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP016"]


@rule("HAP017", "deprecated-keyword", "warning", "a keyword removed after the target version")
def deprecated_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP017"]
