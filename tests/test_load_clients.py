"""The load clients of the zero-downtime tests (tests/support/load_clients.py) count every
request they send once, and a request a server closes the connection under is a failure:
they never send it again (which would hide what a user without retries sees)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.load_clients import Client

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Closing:
    """Answers on kept-alive connections, but closes each one under its third request,
    unanswered (what a retiring HAProxy worker without ``idle-close-on-response`` does)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self.unanswered = 0
        self.lock = threading.Lock()

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.talk, args=(connection,), daemon=True).start()

    def talk(self, connection: socket.socket) -> None:
        with connection:
            pending = b""
            answered = 0
            while True:
                while b"\r\n\r\n" not in pending:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    pending += chunk
                request, _, pending = pending.partition(b"\r\n\r\n")
                with self.lock:
                    self.received += 1
                    if answered == 2:
                        self.unanswered += 1
                        return  # closed under the request
                connection.sendall(OK)
                answered += 1
                if b"connection: close" in request.lower():
                    return


@contextmanager
def closing_server() -> Iterator[Closing]:
    server = Closing()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.listener.close()


def test_a_request_closed_under_is_a_failure_and_never_sent_again() -> None:
    with closing_server() as server:
        client = Client("127.0.0.1", "web.example", keep_alive=True, pause=0.001, port=server.port)
        stop = threading.Event()
        runner = threading.Thread(target=client.run, args=(stop,))
        runner.start()
        deadline = time.monotonic() + 10
        while server.unanswered < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        runner.join(timeout=10)
    summary = client.summary()
    assert server.unanswered >= 5
    assert summary["requests"] == server.received  # each request sent once, counted once
    assert summary["failed"] == server.unanswered, summary
    assert all("kept-alive connection" in failure for failure in summary["failures"]), summary
