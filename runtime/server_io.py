"""Sockets for ``runtime.server``: the loopback check, TLS contexts, a threading server
that caps its connections (in all and per client address), and socket streams that hold
a request to one deadline."""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import ssl
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from compiler.errors import OptionsError


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (also as an IPv4-mapped address)."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost could resolve to anything
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def tls_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """A server-side context (TLS 1.2 or later) from PEM files, or an ``OptionsError`` that
    names the flag at fault."""
    for path, flag in ((cert, "--tls-cert"), (key, "--tls-key")):
        try:
            Path(path).read_bytes()
        except OSError as error:
            raise OptionsError(
                f"cannot read {path}: {error.strerror or error}", file=flag
            ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as error:
        raise OptionsError(
            f"{cert} and {key} are not a PEM certificate and its private key "
            f"({error.reason or error})",
            file="--tls-cert",
        ) from None
    return context


class LogWriter:
    """One JSON line per record, whole lines even from many threads."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = json.dumps({"time": stamp, **record}, ensure_ascii=True)
        stream = self.stream if self.stream is not None else sys.stderr
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must not take a request down


class CappedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``limit``'s number at once, and at most its
    per-client number from one client address (the rest are closed at once)."""

    daemon_threads = True
    log: LogWriter

    def limit(self, connections: int, per_client: int) -> None:
        self.slots = threading.BoundedSemaphore(connections)
        self.per_client = per_client
        self.clients: dict[str, int] = {}  # open connections by client address
        self.clients_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0])
        with self.clients_lock:
            held = self.clients.get(client, 0)
            refused = "client-limit" if held >= self.per_client else None
            if refused is None and not self.slots.acquire(blocking=False):
                refused = "busy"
            if refused is None:
                self.clients[client] = held + 1
        if refused is not None:
            self.log({"event": "refused", "client": client, "reason": refused})
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(client)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(str(client_address[0]))

    def _release(self, client: str) -> None:
        with self.clients_lock:
            left = self.clients.pop(client, 1) - 1
            if left:
                self.clients[client] = left
        self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A failed TLS handshake, a reset connection: one line, not a traceback.
        error = sys.exc_info()[1]
        self.log(
            {
                "event": "connection-error",
                "client": str(client_address[0]),
                "error": f"{type(error).__name__}: {error}",
            }
        )


def server_class(ipv6: bool) -> type[CappedServer]:
    if not ipv6:
        return CappedServer

    class _Server6(CappedServer):
        address_family = socket.AF_INET6

    return _Server6


class DeadlineReader(io.RawIOBase):
    """A socket's reading side with one deadline for a whole request: each ``recv`` waits at
    most until ``deadline``, so a client that drips bytes is cut off as surely as a silent
    one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = float("inf")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request took longer than the timeout")
        self.sock.settimeout(remaining)
        return self.sock.recv_into(buffer)


class SocketWriter(io.BufferedIOBase):
    """The writing side: ``sendall``, bounded as a whole by the socket's timeout."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.sendall(data)
        return len(data)
