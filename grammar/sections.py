"""The section kinds of an HAProxy configuration, defined once.

The parser starts a section at a line whose first word is one of ``SECTION_KEYWORDS``; the
linter reads ``SECTION_SPECS`` for the version that added a kind and whether its header needs
a name. Kinds with ``since`` are newer than HAProxy 2.6 (the parser still knows them, so that a
config written for a newer version parses).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROXY_KINDS", "SECTION_KEYWORDS", "SECTION_SPECS", "SectionSpec", "Version"]

Version = tuple[int, int]


@dataclass(frozen=True, slots=True)
class SectionSpec:
    """A section kind: the version that added it and whether its header needs a name."""

    since: Version | None = None
    needs_name: bool = True
    removed_in: Version | None = None


SECTION_SPECS: dict[str, SectionSpec] = {
    "global": SectionSpec(needs_name=False),
    "defaults": SectionSpec(needs_name=False),
    "frontend": SectionSpec(),
    "backend": SectionSpec(),
    "listen": SectionSpec(),
    "resolvers": SectionSpec(),
    "peers": SectionSpec(),
    "userlist": SectionSpec(),
    "mailers": SectionSpec(),
    "cache": SectionSpec(),
    "program": SectionSpec(),
    "http-errors": SectionSpec(),
    "ring": SectionSpec(),
    "log-forward": SectionSpec(),
    "fcgi-app": SectionSpec(),
    "crt-store": SectionSpec(since=(3, 0), needs_name=False),
    "traces": SectionSpec(since=(3, 1), needs_name=False),
    "log-profile": SectionSpec(since=(3, 1)),
    "acme": SectionSpec(since=(3, 2)),
    "healthcheck": SectionSpec(since=(3, 3)),
}

SECTION_KEYWORDS: frozenset[str] = frozenset(SECTION_SPECS)

# The proxy sections: the ones that carry traffic settings and inherit from ``defaults``.
PROXY_KINDS: frozenset[str] = frozenset({"defaults", "frontend", "backend", "listen"})
