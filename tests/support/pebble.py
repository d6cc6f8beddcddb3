"""pebble (Let's Encrypt's ACME test server, Debian package ``pebble``) and
``pebble-challtestsrv`` (its DNS) on loopback, for the ACME tests.

The DNS answers every name with ``address`` (127.0.0.1, or an HAProxy container's address on
the engine's bridge), so pebble validates HTTP-01 against the HAProxy under test on
``http_port``. pebble's own HTTPS uses a certificate the test makes (``ca``); the roots it
signs with are new at every start (``roots``). ``reject`` is the share of requests pebble
refuses with ``badNonce`` (``PEBBLE_WFE_NONCEREJECT``); ``validity`` its certificates'
lifetime in seconds. ``restart`` keeps the ports.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.net import Relay, wait_bound
from tests.support.required import require
from tests.support.tls_certs import self_signed


def require_pebble() -> None:
    for tool in ("pebble", "pebble-challtestsrv"):
        if shutil.which(tool) is None:
            require("pebble", f"no {tool} on PATH; scripts/bootstrap installs Debian's pebble")
    try:
        import acme  # noqa: F401
    except ImportError:
        require("acme", "not installed; it is in the 'acme' extra")


class Pebble:
    def __init__(
        self,
        folder: Path,
        *,
        http_port: int,
        address: str = "127.0.0.1",
        reject: int = 0,
        validity: int | None = None,
    ) -> None:
        require_pebble()
        self.folder = folder
        self.address = address
        self.http_port = http_port
        self.reject = reject
        self.validity = validity
        self.dns_port = self.acme_port = self.mgmt_port = 0  # known once started
        cert, key = self_signed("localhost")
        self.ca = folder / "pebble-cert.pem"
        self.ca.write_bytes(cert)
        (folder / "pebble-key.pem").write_bytes(key)
        self._front = Relay()
        self._dns: subprocess.Popen[bytes] | None = None
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://localhost:{self._front.port}/dir"

    def start(self) -> Pebble:
        config: dict[str, object] = {
            "listenAddress": "127.0.0.1:0",
            "managementListenAddress": "127.0.0.1:0",
            "certificate": str(self.ca),
            "privateKey": str(self.folder / "pebble-key.pem"),
            "httpPort": self.http_port,
            "tlsPort": 0,  # no test answers TLS-ALPN-01: pebble's dial to port 0 fails
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity is not None:
            config["certificateValidityPeriod"] = self.validity
        (self.folder / "pebble.json").write_text(json.dumps({"pebble": config}))
        if self._dns is None:
            self._dns = subprocess.Popen(
                [
                    "pebble-challtestsrv",
                    *("-defaultIPv4", self.address, "-defaultIPv6", ""),
                    *("-dns01", "127.0.0.1:0", "-http01", "", "-https01", ""),
                    *("-tlsalpn01", "", "-management", "127.0.0.1:0"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # Its one UDP socket is the DNS; pebble asks over UDP (Go's resolver goes to TCP,
            # whose port differs, only for a truncated answer: one address never is).
            (self.dns_port,) = wait_bound(self._dns, "udp", 1, "pebble-challtestsrv")
        env = dict(
            os.environ,
            PEBBLE_VA_NOSLEEP="1",
            PEBBLE_WFE_NONCEREJECT=str(self.reject),
            PEBBLE_AUTHZREUSE="0",
        )
        self._server = subprocess.Popen(
            [
                "pebble",
                *("-config", str(self.folder / "pebble.json")),
                *("-dnsserver", f"127.0.0.1:{self.dns_port}"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ports = wait_bound(self._server, "tcp", 2, "pebble")
        # Two HTTPS listeners: the ACME directory answers /dir, management /roots/0.
        (self.acme_port,) = [port for port in ports if self._answers(port, "/dir")]
        (self.mgmt_port,) = ports - {self.acme_port}
        self._front.target = self.acme_port
        return self

    def restart(self, *, reject: int) -> None:
        self._stop_server()
        self.reject = reject
        self.start()

    def roots(self) -> str:
        """The PEM of the root pebble signs with now."""
        with self._get(self.mgmt_port, "/roots/0") as answer:
            return str(answer.read().decode())

    def _answers(self, port: int, path: str) -> bool:
        try:
            with self._get(port, path) as answer:
                return bool(answer.status == 200)
        except urllib.error.HTTPError:
            return False

    def _get(self, port: int, path: str) -> Any:
        context = ssl.create_default_context(cafile=str(self.ca))
        url = f"https://localhost:{port}{path}"
        return urllib.request.urlopen(url, context=context, timeout=10)

    def _stop_server(self) -> None:
        self._front.target = None
        if self._server is not None:
            self._server.terminate()
            self._server.wait(timeout=10)
            self._server = None

    def stop(self) -> None:
        self._stop_server()
        self._front.close()
        if self._dns is not None:
            self._dns.terminate()
            self._dns.wait(timeout=10)
            self._dns = None
