"""The POST that delivers a webhook: the WebhookTransport port on the standard library's http.client.

The receiver's name is resolved here, every address it resolves to is checked (domain/webhooks.py
``address_allowed``: deployed, public addresses only; locally, loopback too), and the connection goes to the
address that was checked, so a name that resolves elsewhere a moment later (DNS rebinding) reaches nothing new.
No redirect is followed (http.client never does; a 3xx is a failed attempt), and connecting and answering each
get ``TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from chalicelib.domain.webhooks import TIMEOUT_SECONDS, Attempt, address_allowed

Resolver = Callable[[str, int], list[str]]
MAX_ANSWER_BYTES = 65_536


def resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


class _PinnedConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedTlsConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        plain = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(plain, server_hostname=self.host)  # type: ignore[attr-defined]


class HttpWebhookTransport:
    def __init__(
        self, *, local: Callable[[], bool], resolver: Resolver = resolve, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        """``local``: whether loopback receivers are allowed (asked at each delivery: the stage is read lazily)."""
        self.local = local
        self.resolver = resolver
        self.timeout = timeout

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        started = time.monotonic()

        def attempt(status: int | None, error: str | None = None) -> Attempt:
            return Attempt(status, int((time.monotonic() - started) * 1000), error)

        parts = urlsplit(url)
        host, tls = parts.hostname or "", parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        try:
            addresses = self.resolver(host, port)
        except OSError:
            return attempt(None, f"{host} does not resolve")
        local = self.local()
        refused = [a for a in addresses if not address_allowed(ipaddress.ip_address(a), local=local)]
        if refused or not addresses:
            return attempt(None, f"refused: {host} resolves to {', '.join(refused) or 'nothing'}, not a public address")
        kind = _PinnedTlsConnection if tls else _PinnedConnection
        connection = kind(host, port, addresses[0], self.timeout)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", target, body, headers)
            response = connection.getresponse()
            response.read(MAX_ANSWER_BYTES)
            return attempt(response.status)
        except TimeoutError:
            return attempt(None, f"no answer within {self.timeout:g} s")
        except (OSError, http.client.HTTPException) as problem:
            return attempt(None, f"{type(problem).__name__}: {problem}"[:300])
        finally:
            connection.close()
