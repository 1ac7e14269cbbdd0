"""Where provider calls may go: the SSRF guard.

A connection's provider settings name the URLs viltbridge calls (Zoom's API, a BigBlueButton server, ...). Whoever
may edit a connection could otherwise point them at this server's own network (a database admin page, the cloud's
metadata service at 169.254.169.254) and read the answers back through error messages. So provider URLs must be
https and reach public addresses only, unless

- the host is in `VILTBRIDGE_PROVIDER_HOST_ALLOW_LIST` (host names, or CIDRs its addresses fall in): an intranet
  BigBlueButton, say; http:// is then allowed too;
- `VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK=1`: loopback, private and link-local addresses and http:// are allowed, for
  the local simulators and test rigs. Cloud metadata addresses stay refused even then (no simulator lives there).

The check runs twice: when a connection's settings are saved (`check_settings_urls`, a clear error naming the
setting) and when each connection is opened (`GuardedNetworkBackend`): the host is resolved, every address checked,
and the socket connected to a checked address, so a DNS answer that changes between the two (rebinding) or a row
saved before the guard existed cannot reach an internal address.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import logging
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore2
import httpx2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

from viltbridge.config import Settings, get_settings
from viltbridge.core.errors import InvalidInput

__all__ = [
    "AddressRefused", "GuardedNetworkBackend", "UrlPolicy", "check_settings_urls", "current_policy",
    "guard_provider_urls", "guarded_transport", "url_problem",
]

log = logging.getLogger("viltbridge.providers.url_guard")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata services (AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba): credentials live there.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))

# Settings that are URLs for people's browsers, never fetched by this server: no SSRF there, and an intranet
# meeting room is a legitimate choice. Every other URL-valued setting is checked (a new provider's URL settings
# are guarded without anyone remembering to list them).
BROWSER_ONLY_SETTINGS = frozenset({"room_url_template", "registration_url", "analytics_callback_url", "base_url"})

SAVE_TIME_RESOLVE_SECONDS = 1.0
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="url-guard-dns")

ALLOW_LIST_ENV = "VILTBRIDGE_PROVIDER_HOST_ALLOW_LIST"
LOOPBACK_ENV = "VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK"


class AddressRefused(Exception):
    """A provider call was about to reach an address the policy refuses; the message says which and what to do."""


@dataclass(frozen=True)
class UrlPolicy:
    allow_loopback: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IpNetwork, ...] = field(default=())

    @classmethod
    def parse(cls, allow_loopback: bool, allow_list: str) -> UrlPolicy:
        hosts: set[str] = set()
        networks: list[IpNetwork] = []
        for entry in (item.strip() for item in allow_list.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(allow_loopback=allow_loopback, allowed_hosts=frozenset(hosts), allowed_networks=tuple(networks))

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls.parse(settings.provider_allow_loopback, settings.provider_host_allow_list)

    def host_listed(self, host: str) -> bool:
        host = host.lower().rstrip(".").strip("[]")
        if host in self.allowed_hosts:
            return True
        address = _literal(host)
        return address is not None and self._network_listed(address)

    def _network_listed(self, address: IpAddress) -> bool:
        return any(address in network for network in self.allowed_networks)

    def address_problem(self, host: str, address: IpAddress) -> str | None:
        """Why `host` may not be reached at `address`, or None if it may."""
        address = _unmapped(address)
        if self.host_listed(host) or self._network_listed(address):
            return None
        subject = f"{address} is" if _literal(host) is not None else f"{host} resolves to {address},"
        if address in METADATA_ADDRESSES:
            return (f"{subject} a cloud metadata address, which provider calls may never reach. If this really is a "
                    f"provider's server, add it to {ALLOW_LIST_ENV}.")
        if address.is_global:
            return None
        if self.allow_loopback:
            return None
        return (f"{subject} a loopback, private or link-local address, which provider calls may not reach. Use "
                f"the provider's public URL; for a provider server inside your network add its host or network to "
                f"{ALLOW_LIST_ENV}; for a local simulator set {LOOPBACK_ENV}=1.")

    def scheme_problem(self, scheme: str, host: str) -> str | None:
        if scheme == "https":
            return None
        if scheme == "http" and (self.allow_loopback or self.host_listed(host)):
            return None
        return (f"it must start with https:// (http:// is allowed only for hosts in {ALLOW_LIST_ENV}, or with "
                f"{LOOPBACK_ENV}=1 for local simulators).")


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _unmapped(address: IpAddress) -> IpAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_policy: UrlPolicy | None = None


def guard_provider_urls(policy: UrlPolicy | None) -> UrlPolicy | None:
    """Set this process's policy (the app and the worker do, from their settings); None: from the environment.
    Returns the previous one, to put back."""
    global _policy
    previous, _policy = _policy, policy
    return previous


def current_policy() -> UrlPolicy:
    return _policy if _policy is not None else UrlPolicy.from_settings(get_settings())


def _addresses(infos: Iterable[tuple[Any, ...]]) -> list[IpAddress]:
    found: list[IpAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # drop an IPv6 zone id
        if address not in found:
            found.append(address)
    return found


def url_problem(url: str, policy: UrlPolicy, *, resolve: bool = True) -> str | None:
    """Why `url` may not be called, or None. Resolves the host (unless `resolve` is False); a name that does not
    resolve now is not refused here: the call itself is checked again when it connects."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if not host:
        return "it has no host; write a full URL such as https://api.example.com/"
    problem = policy.scheme_problem(parts.scheme.lower(), host)
    if problem is not None or not resolve:
        return problem
    literal = _literal(host)
    if literal is not None:
        return policy.address_problem(host, literal)
    try:
        # Saves run on the web tier's event loop thread (the console, through run_sync): a slow resolver may hold
        # it at most this long. An unanswered name is checked again when a call connects.
        infos = _RESOLVER.submit(socket.getaddrinfo, host, parts.port or 443, type=socket.SOCK_STREAM).result(
            timeout=SAVE_TIME_RESOLVE_SECONDS)
    except (OSError, UnicodeError, concurrent.futures.TimeoutError):
        return None
    for address in _addresses(infos):
        problem = policy.address_problem(host, address)
        if problem is not None:
            return problem
    return None


def check_settings_urls(provider: str, settings: Mapping[str, Any], policy: UrlPolicy | None = None) -> None:
    """InvalidInput naming the first provider setting whose URL this server may not call."""
    policy = policy or current_policy()
    for key, value in sorted(settings.items()):
        if key in BROWSER_ONLY_SETTINGS or not isinstance(value, str):
            continue
        if not value.strip().lower().startswith(("http://", "https://", "//")) and not key.endswith("_url"):
            continue
        problem = url_problem(value, policy)
        if problem is not None:
            raise InvalidInput(f"{provider} provider setting {key} ({value.strip()}) is refused: {problem}",
                               fields={key: f"refused: {problem}"})


class GuardedNetworkBackend(AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the process's policy allows (checked after
    resolution, and the socket connected to the checked address itself)."""

    def __init__(self, inner: AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> AsyncNetworkStream:
        policy = current_policy()
        literal = _literal(host)
        try:
            addresses = [literal] if literal is not None else _addresses(
                await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            raise httpcore2.ConnectError(f"could not resolve {host}: {exc}") from exc
        for address in addresses:
            problem = policy.address_problem(host, address)
            if problem is not None:
                log.warning("provider call to %s:%s refused: %s", host, port, problem)
                raise AddressRefused(problem)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout,
                                                     local_address=local_address, socket_options=socket_options)
            except httpcore2.ConnectError as exc:
                last = exc
        raise last or httpcore2.ConnectError(f"{host} has no address")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None) -> AsyncNetworkStream:
        raise AddressRefused("provider calls do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport() -> httpx2.AsyncHTTPTransport:
    """httpx's own transport, with the guarded network backend under its connection pool."""
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    # httpx offers no network-backend argument; its pool (httpcore) does. Same TLS context and limits as httpx's.
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=httpx2.create_ssl_context(trust_env=False), max_connections=100, max_keepalive_connections=20,
        keepalive_expiry=5.0, network_backend=GuardedNetworkBackend())
    return transport
