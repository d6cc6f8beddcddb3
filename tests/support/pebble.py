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
import urllib.request
from pathlib import Path

from tests.support.net import free_port, wait_listening
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
        address: str = "127.0.0.1",
        http_port: int | None = None,
        reject: int = 0,
        validity: int | None = None,
    ) -> None:
        require_pebble()
        self.folder = folder
        self.address = address
        self.http_port = http_port or free_port()
        self.reject = reject
        self.validity = validity
        self.dns_port, self.acme_port, self.mgmt_port = free_port(), free_port(), free_port()
        cert, key = self_signed("localhost")
        self.ca = folder / "pebble-cert.pem"
        self.ca.write_bytes(cert)
        (folder / "pebble-key.pem").write_bytes(key)
        self._dns: subprocess.Popen[bytes] | None = None
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://localhost:{self.acme_port}/dir"

    def start(self) -> Pebble:
        config: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(self.ca),
            "privateKey": str(self.folder / "pebble-key.pem"),
            "httpPort": self.http_port,
            "tlsPort": free_port(),
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
                    *("-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", ""),
                    *("-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
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
        wait_listening(self.acme_port, self._server, 15, "pebble")
        return self

    def restart(self, *, reject: int) -> None:
        self._stop_server()
        self.reject = reject
        self.start()

    def roots(self) -> str:
        """The PEM of the root pebble signs with now."""
        context = ssl.create_default_context(cafile=str(self.ca))
        url = f"https://localhost:{self.mgmt_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            return str(answer.read().decode())

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.terminate()
            self._server.wait(timeout=10)
            self._server = None

    def stop(self) -> None:
        self._stop_server()
        if self._dns is not None:
            self._dns.terminate()
            self._dns.wait(timeout=10)
            self._dns = None
