"""Words the command line and discovery share, kept free of the Docker SDK (``cosmonaut
status`` runs without it)."""

from __future__ import annotations

from typing import Literal, get_args

# How a container is reached: its address on a network HAProxy shares, or a published port.
AddressMode = Literal["container", "published"]
ADDRESS_MODES: tuple[AddressMode, ...] = get_args(AddressMode)
# ``--host-id auto``: the host's id derived from the engine's host name.
AUTO_HOST_ID = "auto"
