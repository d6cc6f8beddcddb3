"""``lambda-registry serve``: the registry's HTTP contract on a local address
(``runtime.server``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from compiler.errors import OptionsError
from runtime.cli.exits import Exit


def add_serve_command(commands: Any) -> None:
    """Register ``serve`` on the ``lambda-registry`` command line."""
    serve = commands.add_parser(
        "serve",
        help="serve the registry over HTTP (the Lambda handler's contract)",
        description="Serve the registry's HTTP contract (POST a payload, get a config).",
    )
    serve.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:8080)",
    )
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    host, _, port_text = str(args.listen).rpartition(":")
    if not port_text.isdigit():
        raise OptionsError(f"{args.listen!r}: expected HOST:PORT", file="--listen")
    from runtime.server import RegistryServer

    server = RegistryServer(host.strip("[]") or "0.0.0.0", int(port_text))
    print(json.dumps({"event": "listening", "url": server.url}), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return Exit.OK
