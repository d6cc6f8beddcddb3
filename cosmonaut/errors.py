"""Cosmonaut's user-facing errors: each is a ``LocatedError`` naming where it happened."""

from __future__ import annotations

from compiler.errors import LocatedError

# What to run when an optional part (the Docker SDK, the ACME client) is missing.
INSTALL_HINT = "pip install 'lambda-registry[cosmonaut]'"


class CosmonautError(LocatedError):
    """Base class of the errors below."""


class UnavailableError(CosmonautError):
    """Docker (or another service Cosmonaut needs) could not be reached or answered an error."""


class UsageError(CosmonautError):
    """A flag or an environment setting is invalid."""


class HaproxyContainerError(CosmonautError):
    """The HAProxy container is missing, not running, or not in master-worker mode."""


class RegistryError(CosmonautError):
    """The registry did not give a config (unreachable, timed out, or refused the payload)."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, timed out, or failed (5xx, 429, its store down):
    worth trying again, as opposed to a payload it refused."""


class ApplyError(CosmonautError):
    """A config could not be applied (refused by the grammar or by ``haproxy -c``, or the
    reload failed). What is running is unchanged, or was restored."""
