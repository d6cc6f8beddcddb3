"""``lambda-registry serve``: the registry's HTTP contract on a local address
(``runtime.server``).

The operator's bearer token comes from ``--token-file`` (its first line; refused when its group
or others may access it), else ``$LAMBDA_REGISTRY_TOKEN``; hosts' tokens, each good for its own
hosts' reports only, from ``--host-tokens`` (a private file too; ``runtime.identity``). Without
any token, only a loopback ``--listen`` address is accepted. Every refusal (no token on a
public address, an unreadable TLS file, an address in use) is a user mistake: one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compiler.errors import OptionsError
from runtime.cli.exits import Exit
from runtime.files import TooOpenError, read_private
from runtime.identity import HostCredential, parse_host_tokens

TOKEN_ENV = "LAMBDA_REGISTRY_TOKEN"


def add_serve_command(commands: Any) -> None:
    """Register ``serve`` on the ``lambda-registry`` command line. The limits' defaults are
    ``runtime.server``'s (not imported here: other commands do not need ``http.server``)."""
    serve = commands.add_parser(
        "serve",
        help="serve the registry over HTTP (the Lambda handler's contract)",
        description="Serve the registry's HTTP contract (POST a payload, get a config).",
    )
    serve.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:8080; port 0 picks a free one); "
        "an address other than loopback needs a token",
    )
    serve.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help=f"require 'Authorization: Bearer <token>' with the token in PATH "
        f"(default ${TOKEN_ENV}); the operator's token: any host, and host-less payloads",
    )
    serve.add_argument(
        "--host-tokens",
        type=Path,
        metavar="PATH",
        help="hosts' bearer tokens, one a line: '<token> <host-id> [<host-id> ...]' (globs "
        "like web-* allowed); each may read configs and report only as its hosts",
    )
    serve.add_argument(
        "--tls-cert", type=Path, metavar="PATH", help="serve HTTPS: certificate (PEM)"
    )
    serve.add_argument(
        "--tls-key", type=Path, metavar="PATH", help="serve HTTPS: private key (PEM)"
    )
    serve.add_argument(
        "--max-body",
        type=_whole,
        metavar="BYTES",
        help="larger request bodies get 413, unread (default 6291456, Lambda's own limit)",
    )
    serve.add_argument(
        "--header-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="time a client has for the TLS handshake and a request's line and headers, from "
        "connecting or from the previous answer; idle connections close after it (default 5)",
    )
    serve.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="time an authorised request has to send its body, and to read the answer (default 30)",
    )
    serve.add_argument(
        "--max-connections",
        type=_whole,
        metavar="N",
        help="connections served at once; more are closed at once (default 100)",
    )
    serve.add_argument(
        "--max-client-connections",
        type=_whole,
        metavar="N",
        help="connections served at once from one client address; more are closed at once "
        "(default 10, or half of --max-connections when that is less)",
    )
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    host, _, port_text = str(args.listen).rpartition(":")
    if not port_text.isdigit():
        raise OptionsError(f"{args.listen!r}: expected HOST:PORT", file="--listen")
    for flag in ("max_connections", "max_client_connections"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise OptionsError("must be at least 1", file="--" + flag.replace("_", "-"))
    from runtime.server import RegistryServer

    token = read_token(args.token_file, os.environ)
    host_tokens = read_host_tokens(args.host_tokens) if args.host_tokens else ()
    limits = {
        name: getattr(args, name)
        for name in (
            "max_body",
            "timeout",
            "header_timeout",
            "max_connections",
            "max_client_connections",
        )
        if getattr(args, name) is not None
    }
    server = RegistryServer(
        host.strip("[]") or "0.0.0.0",
        int(port_text),
        token=token,
        host_tokens=host_tokens,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        **limits,
    )
    announced = {
        "event": "listening",
        "url": server.url,
        "auth": "bearer" if token is not None or host_tokens else "none",
        "host_tokens": len(host_tokens),
    }
    print(json.dumps(announced), file=sys.stderr, flush=True)
    # SIGTERM (docker stop, systemd) and SIGINT stop it cleanly, also when SIGINT came in
    # ignored (a background job of a non-interactive shell), as Cosmonaut's daemon does.
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever()
    except _Stopped:
        pass
    finally:
        server.httpd.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return Exit.OK


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


def read_token(path: Path | None, environ: Mapping[str, str]) -> str | None:
    """The token: the first line of ``path`` (a file only its owner may access), else the
    environment variable, else ``None``."""
    if path is None:
        return (environ.get(TOKEN_ENV) or "").strip() or None
    try:
        text = read_private(path)
    except TooOpenError as error:
        raise OptionsError(str(error), file="--token-file") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise OptionsError(f"cannot read {path}: {reason}", file="--token-file") from None
    token = text.splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise OptionsError(f"{path} holds no token", file="--token-file")
    return token


def read_host_tokens(path: Path) -> tuple[HostCredential, ...]:
    """The credentials in ``path`` (a file only its owner may access); errors at its lines."""
    try:
        text = read_private(path)
    except TooOpenError as error:
        raise OptionsError(str(error), file="--host-tokens") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise OptionsError(f"cannot read {path}: {reason}", file="--host-tokens") from None
    credentials = parse_host_tokens(text, file=str(path))
    if not credentials:
        raise OptionsError(f"{path} holds no token", file="--host-tokens")
    return credentials


def _whole(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value
