"""The ACME protocol for one name, through certbot's ``acme`` package.

``AcmeClient.order(name)`` creates an order, tells the CA that each HTTP-01 challenge is
ready (HAProxy answers it: nothing is written anywhere), polls until the order is valid and
returns the certificate with a fresh key. Every failure is an ``AcmeError`` that says what
the CA said, and when the CA said to come back (``Retry-After``), if it did.

This module is imported only when ACME is on (``--acme-directory``): Cosmonaut without ACME
never needs the ``acme`` extra.
"""

from __future__ import annotations

import datetime
import email.utils
from typing import Any, cast

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import b64, jwa, jwk
from josepy import errors as jose_errors

from compiler.errors import LocatedError
from cosmonaut.acme.vault import Issued

USER_AGENT = "cosmonaut/0.1 (acme)"
ORDER_SECONDS = 90  # how long one order may take, validation and finalisation included


class AcmeError(LocatedError):
    """An order failed; ``retry_after`` is the CA's ``Retry-After`` in seconds, if it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, file="acme")
        self.retry_after = retry_after


def new_account_key() -> str:
    """A new account key: ECDSA P-256, PEM (PKCS #8)."""

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def thumbprint(account_key_pem: str) -> str:
    """The key's JWK thumbprint (RFC 7638), base64url: what HTTP-01 answers end with."""

    return str(b64.b64encode(_jwk(account_key_pem).thumbprint()).decode("ascii"))


def _jwk(account_key_pem: str) -> Any:

    key = serialization.load_pem_private_key(account_key_pem.encode("ascii"), password=None)
    return jwk.JWKEC(key=key)


class AcmeClient:
    """One ACME account at ``directory``; registered (or found again) on first use."""

    def __init__(
        self,
        directory: str,
        account_key_pem: str,
        *,
        email: str | None,
        verify: bool | str = True,
        holder: str = "",
    ) -> None:
        self.directory_url = directory
        self.email = email
        self.verify = verify  # a CA bundle path, or True for the system's
        self.holder = holder
        self._key = account_key_pem
        self._client: Any = None
        self._network: Any = None

    def order(self, name: str) -> Issued:

        try:
            client = self._registered()
            return self._order(client, name)
        except AcmeError:
            raise
        except messages.Error as error:
            raise AcmeError(
                f"the CA refused: {error.typ.rsplit(':', 1)[-1]}: {error.detail or error}",
                retry_after=self._retry_after(),
            ) from None
        except errors.ValidationError as error:
            raise AcmeError(f"the CA could not validate {name}: {_problems(error)}") from None
        except errors.TimeoutError:
            raise AcmeError(
                f"the order for {name} was not ready within {ORDER_SECONDS} s"
            ) from None
        except (errors.Error, OSError) as error:
            raise AcmeError(f"cannot reach the CA at {self.directory_url}: {error}") from None
        except (requests.RequestException, jose_errors.Error) as error:
            raise AcmeError(f"cannot talk to the CA at {self.directory_url}: {error}") from None

    def _registered(self) -> Any:
        if self._client is not None:
            return self._client

        verify = cast(bool, self.verify)  # typed bool; requests takes a CA bundle path too
        network = _Network(_jwk(self._key), alg=jwa.ES256, verify_ssl=verify, user_agent=USER_AGENT)
        self._network = network
        directory = client.ClientV2.get_directory(self.directory_url, network)
        acme = client.ClientV2(directory, network)
        registration = messages.NewRegistration.from_data(
            email=self.email, terms_of_service_agreed=True
        )
        try:
            acme.new_account(registration)
        except errors.ConflictError as existing:  # this key has an account: use it
            network.account = messages.RegistrationResource(
                uri=existing.location, body=messages.Registration()
            )
        self._client = acme
        return acme

    def _order(self, acme: Any, name: str) -> Issued:

        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        order = acme.new_order(crypto_util.make_csr(key_pem, [name]))
        for authorization in order.authorizations:
            if authorization.body.status.name == "valid":
                continue  # the CA reuses an earlier validation
            http01 = [
                c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)
            ]
            if not http01:
                raise AcmeError(f"the CA offers no HTTP-01 challenge for {name}")
            acme.answer_challenge(http01[0], http01[0].response(self._network.key))
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_SECONDS)
        done = acme.poll_and_finalize(order, deadline)
        chain: str = done.fullchain_pem
        leaf = x509.load_pem_x509_certificate(chain.encode("ascii"))
        return Issued(
            name=name,
            fullchain=chain,
            key=key_pem.decode("ascii"),
            not_before=leaf.not_valid_before_utc.timestamp(),
            not_after=leaf.not_valid_after_utc.timestamp(),
            issued_by=self.holder,
        )

    def _retry_after(self) -> float | None:
        """The last answer's ``Retry-After`` (seconds, or an HTTP date), in seconds from now."""
        header = getattr(self._network, "retry_after", None)
        if not header:
            return None
        if header.strip().isdigit():
            return float(header.strip())
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


class _Network(client.ClientNetwork):
    """The library's network, remembering the last answer's ``Retry-After``."""

    retry_after: str | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = super()._send_request(method, url, *args, **kwargs)
        self.retry_after = response.headers.get("Retry-After")
        return response


def _problems(error: Any) -> str:
    """What the CA said about each failed authorization."""
    details = []
    for authorization in getattr(error, "failed_authzrs", ()):
        for challenge in authorization.body.challenges:
            if challenge.error is not None:
                details.append(str(challenge.error.detail or challenge.error))
    return "; ".join(details) or str(error)
