"""The route kind table: every mode a service may have is routed, once."""

from __future__ import annotations

from typing import get_args

from compiler.routing import ROUTE_KINDS
from compiler.validators import ConfigModeName


def test_every_config_mode_has_exactly_one_route_kind() -> None:
    modes = [kind.mode for kind in ROUTE_KINDS]
    assert sorted(modes) == sorted(get_args(ConfigModeName))
