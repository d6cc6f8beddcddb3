"""The keyword table as HAProxy 2.6 knows it."""

from __future__ import annotations

from grammar.lint.keywords import (
    DEFAULT_TARGET,
    KeywordSpec,
)
from grammar.sections import SECTION_SPECS


def kinds_of_26() -> list[str]:
    return [kind for kind, spec in SECTION_SPECS.items() if spec.since is None]


def known_in_26(spec: KeywordSpec) -> bool:
    return (
        spec.since is None
        and spec.build_option is None
        and (spec.removed_in is None or spec.removed_in > DEFAULT_TARGET)
    )
