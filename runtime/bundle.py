"""A compiled bundle (``haproxy.cfg`` + its map files) at the edges: written to a directory
atomically as a set, and printed to one stream in a form that can be split back.

Writing (``write_bundle``): map file names carry their content's digest, so a new bundle's
maps never replace a file the old config still reads. The maps are written first (each
through a temporary file and a rename), then the config is renamed into place, and only then
are the maps the *old* config referred to and the new one does not removed. A reader, or an
HAProxy reloading at any moment, sees either the old config with all its maps or the new one
with all of its maps. A failure part-way leaves the old bundle whole (new maps written so far
are removed again).

The stream (``format_stream``/``parse_stream``): a single-file bundle is the config text as
it always was. With maps, each file is introduced by a line ``### lambda-registry file:
<name>``, the config first; nothing the compiler prints starts with that line.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping

from compiler.printer import CONFIG_NAME
from runtime.files import InputError, write_atomic

STREAM_MARKER = "### lambda-registry file: "
# The names the compiler gives map files (compiler.printer.map_file): <kind>.<digest>.map
GENERATED_MAP = re.compile(r"[a-z_]+\.[0-9a-f]{12}\.map")
_MAP_REFERENCE = re.compile(r"map(?:_beg|_str)?\(([^),]+)")


def format_stream(files: Mapping[str, str]) -> str:
    """All files as one text: the config alone, or each file after a marker line."""
    if len(files) == 1:
        return next(iter(files.values()))
    return "".join(f"{STREAM_MARKER}{name}\n{text}" for name, text in files.items())


def parse_stream(text: str) -> dict[str, str]:
    """The files of ``format_stream``'s output (a plain config is the file ``haproxy.cfg``)."""
    if not text.startswith(STREAM_MARKER):
        return {CONFIG_NAME: text}
    files: dict[str, str] = {}
    name = ""
    for line in text.splitlines(keepends=True):
        if line.startswith(STREAM_MARKER):
            name = line[len(STREAM_MARKER) :].rstrip("\n")
            files[name] = ""
        else:
            files[name] += line
    return files


def referenced_maps(config_text: str) -> set[str]:
    """Generated map files a config refers to (``map(<name>)``, ``map_beg(<name>)``)."""
    return {
        name
        for name in _MAP_REFERENCE.findall(config_text)
        if GENERATED_MAP.fullmatch(os.path.basename(name))
    }


def write_bundle(config_path: str, files: Mapping[str, str]) -> None:
    """Write the config to ``config_path`` and its maps beside it, atomically as a set.

    ``files`` is the bundle by name, the config first (its own name is ignored).
    """
    directory = os.path.dirname(os.path.abspath(config_path))
    config_text = next(iter(files.values()))
    maps = dict(list(files.items())[1:])
    try:
        with open(config_path, encoding="utf-8", errors="surrogateescape") as handle:
            old = referenced_maps(handle.read())
    except OSError:
        old = set()
    written: list[str] = []
    try:
        for name, text in maps.items():
            if os.path.basename(name) != name or not GENERATED_MAP.fullmatch(name):
                raise InputError(f"refusing to write a map named {name!r}", file=config_path)
            path = os.path.join(directory, name)
            if name not in old:
                written.append(path)
            write_atomic(path, text)
        _sync_directory(directory)
        write_atomic(config_path, config_text)
    except BaseException:
        # The old config is still in place: drop the new maps it does not read.
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    _sync_directory(directory)
    for name in old - maps.keys():
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))


def _sync_directory(directory: str) -> None:
    """Make the renames durable before the next step depends on them."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
