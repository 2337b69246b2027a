"""Guarding every URL the server itself fetches or posts to (QUALITY I7: webhooks, market
sources) against server-side request forgery.

:func:`resolve` parses the URL (http or https only, at most 2000 characters, a host), resolves
its host and refuses it unless every address is a public unicast one: loopback, private,
link-local, multicast, reserved, unspecified, shared (100.64/10) and other non-global
addresses are refused, also when they hide inside an IPv6 address (IPv4-mapped, 6to4,
NAT64). Hosts named in ``Settings.outbound_allowed_hosts`` skip the address check (a
local test receiver, an in-cluster service) but are still resolved and pinned.

The request must then go to an address that was checked, not to whatever the name
resolves to a moment later (DNS rebinding): :meth:`Target.pinned` gives the URL with the
host replaced by the address, the ``Host`` header and, for https, the ``sni_hostname``
extension so that TLS still verifies the certificate of the real name. Send it with
``follow_redirects=False`` and ``trust_env=False`` (no proxy from the environment).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import httpx

from mercato.kit.errors import ValidationFailed

MAX_URL_LENGTH = 2000
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_RESOLVE_TIMEOUT = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class UrlNotAllowed(ValidationFailed):
    code, title = "url_not_allowed", "The server may not send requests to this URL"


def refusal(address: IPAddress) -> str | None:
    """Why the server must not connect to ``address``, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            reason = refusal(address.ipv4_mapped)
            return None if reason is None else f"{reason} (IPv4-mapped)"
        embedded = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (reason := refusal(embedded)) is not None:
            return f"{reason} (inside {address})"
        if address in _NAT64_LOCAL:
            return "a local NAT64 address"
        if address.teredo is not None:
            return "a Teredo tunnel address"
    for attribute, what in (("is_loopback", "a loopback"), ("is_unspecified", "an unspecified"),
                            ("is_link_local", "a link-local"), ("is_multicast", "a multicast"),
                            ("is_private", "a private"), ("is_reserved", "a reserved")):
        if getattr(address, attribute):
            return f"{what} address"
    if not address.is_global:
        return "not a public address"
    return None


def parse(url: str) -> httpx.URL:
    """The URL, if it is one the server may use at all (scheme, length, host)."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UrlNotAllowed(f"This is not a valid URL: {exc}.") from exc
    if parsed.scheme not in SCHEMES:
        raise UrlNotAllowed("Only http and https URLs may be used.")
    if not parsed.raw_host:
        raise UrlNotAllowed("The URL has no host.")
    return parsed


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normal(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class Target:
    """A URL whose host resolved to ``addresses``, each of them checked."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host, without brackets
    port: int
    addresses: tuple[str, ...]

    def pinned(self, address: str | None = None) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
        """(url, headers, extensions) of a request that connects to ``address`` (default: the
        first one) while presenting the original host name to the server."""
        chosen = address or self.addresses[0]
        if chosen not in self.addresses:
            raise ValueError(f"{chosen} was not checked for {self.host}")
        extensions = {"sni_hostname": self.host} if self.url.scheme == "https" else {}
        return self.url.copy_with(host=chosen), {"Host": self.url.netloc.decode("ascii")}, extensions

    async def send(self, client: httpx.AsyncClient, method: str, *, headers: dict[str, str],
                   **request: Any) -> httpx.Response:
        """Send to the checked addresses in turn (the next only when connecting failed), never
        following a redirect. The response is streamed: the caller reads and closes it."""
        last: Exception | None = None
        for address in self.addresses:
            url, host_header, extensions = self.pinned(address)
            built = client.build_request(method, url, headers={**headers, **host_header}, extensions=extensions,
                                         **request)
            try:
                return await client.send(built, stream=True, follow_redirects=False)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last


async def _addresses(host: str, port: int, timeout: float) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise UrlNotAllowed(f"The host {host!r} does not resolve.") from exc
    out: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in out:
            out.append(address)
    if not out:
        raise UrlNotAllowed(f"The host {host!r} does not resolve.")
    return out


async def resolve(url: str, *, allowed_hosts: Collection[str] = (),
                  timeout: float = DEFAULT_RESOLVE_TIMEOUT) -> Target:
    """Check ``url`` and resolve its host; raise :class:`UrlNotAllowed` when it is refused."""
    parsed = parse(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    addresses = await _addresses(host, port, timeout)
    if _normal(host) not in {_normal(allowed) for allowed in allowed_hosts}:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                # The address itself is not echoed: that would turn this check into an internal DNS oracle.
                raise UrlNotAllowed(f"The host {host!r} resolves to {reason}; the server does not send requests "
                                    "there.")
    return Target(url=parsed, host=host, port=port, addresses=tuple(str(a) for a in addresses))
