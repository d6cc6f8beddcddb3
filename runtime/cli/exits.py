"""The exit codes of every command line (``lambda-registry`` and ``cosmonaut``), in one table.

* 0 ``OK``: done; diagnostics, if any, went to stderr.
* 1 ``FAILED``: the command ran and the answer is "no": ``haproxy -c`` refused the config,
  lint found problems, ``fmt --check`` would reformat, Cosmonaut did not apply (or rolled
  back).
* 2 ``BAD_INPUT``: bad usage or input, any diagnostic under ``--strict``, a refused
  ``state clear``, or a store error; nothing was changed.
* 3 ``INTERNAL``: a bug or a failed self-check (the round trip); nothing was written.
* 4 ``UNAVAILABLE``: Cosmonaut: Docker, the registry or the HAProxy container could not be
  reached.
* 130 ``INTERRUPTED``: Ctrl-C.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    INTERNAL = 3
    UNAVAILABLE = 4
    INTERRUPTED = 130
