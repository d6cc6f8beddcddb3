"""Two HTTP clients sending requests back to back to one HAProxy, for the reload-under-load test.

``python tests/support/load_clients.py IP HOST [PAUSE]`` runs them in a process of their own,
so that they do not compete with the test's apply calls for its interpreter lock; each waits
``PAUSE`` seconds (default 0.005) between requests, so that on 2 cores the clients, HAProxy and the
backends leave the engine some CPU (without it, every apply takes twice as long). It prints
``ready`` once both had an answer (or ``not ready: ...`` and exits), answers each ``count``
line on its standard input with each client's requests so far (a JSON line), runs until
that input closes, then prints a JSON summary:

* ``fresh``: one request per connection (``Connection: close``);
* ``kept``: requests over one HTTP/1.1 connection kept alive until the server closes it (the old
  worker does after a reload), then over a new one.

Neither client ever sends a request again: every error is a failure, including a kept-alive
connection closed before the answer to its next request (RFC 9112, 9.3.1, lets a client retry
that, and curl or Go's net/http do; this client does not, so that such a close shows). The
generated config has ``option idle-close-on-response``: at a reload, the old worker answers
the next request on an idle connection, with ``Connection: close``, instead of closing it.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from typing import Any

TIMEOUT = 5.0


class Client:
    def __init__(
        self, ip: str, host: str, *, keep_alive: bool, pause: float, port: int = 80
    ) -> None:
        self.ip = ip
        self.port = port
        self.pause = pause
        self.host = host
        self.keep_alive = keep_alive
        self.requests = 0
        self.failures: list[str] = []
        self.reused = 0  # requests answered on a connection that had answered before
        self.connections = 0
        self.answered = threading.Event()

    def fail(self, what: str) -> None:
        self.requests += 1
        self.failures.append(what)

    def run(self, stop: threading.Event) -> None:
        connection: http.client.HTTPConnection | None = None
        answered = 0  # on the current connection
        headers = {"Host": self.host}
        if not self.keep_alive:
            headers["Connection"] = "close"
        while not stop.wait(self.pause):
            if connection is None:
                connection = http.client.HTTPConnection(self.ip, self.port, timeout=TIMEOUT)
                self.connections += 1
                answered = 0
            try:
                connection.request("GET", "/", headers=headers)
                response = connection.getresponse()
            except Exception as error:
                connection.close()
                connection = None
                where = "a kept-alive connection" if answered else "a new connection"
                self.fail(f"{type(error).__name__} before an answer on {where}: {error}")
                continue
            try:
                response.read()
            except Exception as error:
                connection.close()
                connection = None
                self.fail(f"{type(error).__name__} while reading the answer: {error}")
                continue
            self.requests += 1
            self.reused += 1 if answered else 0
            answered += 1
            if response.status == 200:
                self.answered.set()
            else:
                self.failures.append(f"status {response.status}")
            if response.will_close or not self.keep_alive:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": len(self.failures),
            "failures": sorted(set(self.failures))[:10],
            "reused": self.reused,
            "connections": self.connections,
        }


def main(ip: str, host: str, pause: float = 0.005) -> int:
    clients = {
        "fresh": Client(ip, host, keep_alive=False, pause=pause),
        "kept": Client(ip, host, keep_alive=True, pause=pause),
    }
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,)) for c in clients.values()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    for name, client in clients.items():
        if not client.answered.wait(max(0.0, deadline - time.monotonic())):
            stop.set()
            print(f"not ready: no 200 for the {name} client in 30 s", flush=True)
            return 1
    print("ready", flush=True)
    for line in sys.stdin:  # until the test closes it
        if line.strip() == "count":  # requests so far (answered or failed), per client
            print(json.dumps({name: c.requests for name, c in clients.items()}), flush=True)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    print(json.dumps({name: c.summary() for name, c in clients.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], *map(float, sys.argv[3:4])))
