"""The keyword table as one HAProxy version knows it (the oracles' versions: 2.6 and 2.8)."""

from __future__ import annotations

from grammar.lint.keywords import KeywordSpec
from grammar.sections import SECTION_SPECS, Version


def kinds_of(target: Version) -> list[str]:
    """The section kinds ``target`` knows."""
    return [
        kind for kind, spec in SECTION_SPECS.items() if spec.since is None or spec.since <= target
    ]


def known_in(spec: KeywordSpec, target: Version) -> bool:
    """Whether the table says ``target`` takes the keyword (a build option aside)."""
    return (
        (spec.since is None or spec.since <= target)
        and spec.build_option is None
        and (spec.removed_in is None or spec.removed_in > target)
    )
