"""Small real servers, and ports that no other process can take first.

A port is never probed and then given to a program by number: between the probe closing its
socket and the program binding, anything else on the machine may take it. Instead a socket
bound to port 0 is handed over (``listening`` and ``haproxy_serving``: haproxy's
``bind fd@<n>``), or the program binds port 0 itself and the port is read back from the
kernel (``bound_ports``), or a port held here forwards to wherever the program is now
(``Relay``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Literal


def echo_server(label: str) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.label = label  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with its name and the headers it received, as JSON."""

    server_version = "echo"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps(
            {
                "backend": getattr(self.server, "label", "?"),
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if "set-cookie" in self.path:
            self.send_header("Set-Cookie", "SID=app")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- sockets handed over -------------------------------------------------------------------


class ServedHttp:
    """A ``ThreadingHTTPServer`` with ``handler`` on a loopback port it binds (0), in a thread
    of its own, over TLS with ``context``; ``port``, ``url`` and ``stop``."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, context: ssl.SSLContext | None = None
    ) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@contextmanager
def listening(host: str = "127.0.0.1") -> Iterator[socket.socket]:
    """A TCP socket on a port the kernel chose, listening and inheritable, for the test's whole
    ``with``: give the socket itself to the program, never its number."""
    with socket.create_server((host, 0), backlog=128) as sock:
        sock.set_inheritable(True)
        yield sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@contextmanager
def refusing_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port that refuses connections: bound here (so no other process can listen on it
    meanwhile) but not listening."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        yield port_of(sock)


def handed_over(config: str, listeners: tuple[socket.socket, ...]) -> str:
    """``config`` with each listener's ``bind <host>:<port>`` line (as the compiler writes it
    for those render options) bound to the listener's descriptor instead: ``bind fd@<n>``.
    The compiler's options cannot say ``fd@`` (its address has no port, while a redirect to
    HTTPS needs the port), so the config is compiled with the real port and only the bind
    address changes here."""
    for sock in listeners:
        host, port = sock.getsockname()[:2]
        line = re.compile(rf"^(\s*bind ){re.escape(host)}:{port}(?=\s|$)", re.MULTILINE)
        config, found = line.subn(rf"\g<1>fd@{sock.fileno()}", config)
        if found != 1:
            raise AssertionError(f"{found} lines 'bind {host}:{port}' in the config, not one")
    return config


@contextmanager
def haproxy_serving(
    binary: str,
    config: Path,
    *listeners: socket.socket,
    cwd: str | None = None,
    deadline: float = 10,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """haproxy in the foreground on ``config`` (rewritten by ``handed_over``), inheriting
    ``listeners``; yields once it answers HTTP on the first one. The sockets stay the
    caller's: another haproxy may be given them afterwards."""
    config.write_text(handed_over(config.read_text(), listeners))
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            pass_fds=[sock.fileno() for sock in listeners],
        )
        try:
            _wait_answering(port_of(listeners[0]), process, output, deadline, config)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_answering(
    port: int, process: subprocess.Popen[bytes], output: IO[bytes], deadline: float, config: Path
) -> None:
    """Until an HTTP request on ``port`` gets a status line. A handed-over socket accepts
    connections before haproxy runs (the kernel queues them), so connecting proves nothing."""
    end = time.monotonic() + deadline
    while True:
        if process.poll() is not None:
            output.seek(0)
            said = output.read().decode(errors="replace")
            raise AssertionError(
                f"haproxy exited {process.returncode} at start-up:\n{said}\n"
                f"--- {config}:\n{config.read_text()[:4000]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                probe.sendall(b"GET / HTTP/1.0\r\n\r\n")
                answer = b""
                while len(answer) < 5 and (chunk := probe.recv(5 - len(answer))):
                    answer += chunk
                if answer == b"HTTP/":
                    return
        except OSError:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"haproxy did not answer on port {port} within {deadline} s")
        time.sleep(0.05)


# --- ports a program bound itself ----------------------------------------------------------

_STATES = {"tcp": "0A", "udp": "07"}  # LISTEN; an unconnected bound UDP socket


def bound_ports(pid: int, protocol: Literal["tcp", "udp"]) -> set[int]:
    """The ports process ``pid`` listens on (TCP) or is bound to (UDP), IPv4 and IPv6: its
    socket descriptors (``/proc/<pid>/fd``) matched with the kernel's socket tables by inode.
    For programs that take an address and bind port 0 without saying which port they got."""
    inodes = set()
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in (protocol, f"{protocol}6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()
                if fields[3] == _STATES[protocol] and fields[9] in inodes:
                    ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


def wait_bound(
    process: subprocess.Popen[bytes],
    protocol: Literal["tcp", "udp"],
    count: int,
    what: str,
    deadline: float = 15,
) -> set[int]:
    """The ports of ``bound_ports`` once there are ``count`` of them."""
    end = time.monotonic() + deadline
    while True:
        assert process.poll() is None, f"{what} exited {process.returncode} at start-up"
        ports = bound_ports(process.pid, protocol)
        if len(ports) >= count:
            return ports
        if time.monotonic() > end:
            raise AssertionError(f"{what} bound {sorted(ports)} ({protocol}), not {count} ports")
        time.sleep(0.05)


class Relay:
    """A loopback port held here for as long as the relay lives, forwarding each connection
    to ``127.0.0.1:<target>``: a client keeps one address while the server behind it stops,
    or restarts on a port of its own choosing. With no target a connection is closed at once
    (the server is down)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = port_of(self._listener)
        self.target: int | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        target = self.target
        try:
            upstream = None if target is None else socket.create_connection(("127.0.0.1", target))
        except OSError:
            upstream = None
        if upstream is None:
            client.close()
            return
        with client, upstream:
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Bytes from ``source`` to ``sink`` until either end stops; then both stop."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
