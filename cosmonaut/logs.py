"""One JSON object per line: ``{"time", "level", "event", ...fields}``.

Built on the standard ``logging`` module (logger ``cosmonaut``), so an embedding program can
route the records elsewhere; ``configure()`` installs the JSON-lines handler the CLI uses.
A URL's password never reaches a line: whatever carries it (a field, an error message, a
traceback), ``redacted`` masks it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

LOGGER = logging.getLogger("cosmonaut")
_FIELDS = "cosmonaut_fields"
# scheme://user:password@ : the password runs to the last "@" before the host's end.
_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:]*):[^\s/?#]*@")


def redacted(text: str) -> str:
    """``text`` with the password of every URL in it masked: ``https://user:***@host/``."""
    return _PASSWORD.sub(r"\1:***@", text)


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        document.update(getattr(record, _FIELDS, {}))
        if record.exc_info and record.levelno >= logging.ERROR:
            document["traceback"] = self.formatException(record.exc_info)
        return redacted(json.dumps(document, default=str, ensure_ascii=False))


def configure(stream: IO[str] | None = None, level: str = "info") -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False


def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    LOGGER.log(level, event, extra={_FIELDS: fields})


def info(event: str, **fields: Any) -> None:
    log(event, logging.INFO, **fields)


def warning(event: str, **fields: Any) -> None:
    log(event, logging.WARNING, **fields)


def error(event: str, **fields: Any) -> None:
    log(event, logging.ERROR, **fields)


def debug(event: str, **fields: Any) -> None:
    log(event, logging.DEBUG, **fields)
