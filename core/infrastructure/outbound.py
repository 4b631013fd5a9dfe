"""The one guard on outbound HTTP to URLs that users give: webhooks, escalation webhooks, Slack.

Server-side request forgery is refused twice: when a URL is given (a webhook registered, a
run started) and again on every delivery through `post`, which sends to the very address it
has just checked. A DNS answer that changes between the check and the connection therefore
cannot redirect a request to an internal address. Redirects are not followed and no proxy
from the environment is used, since either would send the request somewhere unchecked.

`allow_private` is the operator's `WEBHOOK_ALLOW_PRIVATE_TARGETS`: a deployment whose
receivers are all its own (a test stack, a private network) may allow non-public addresses.
It never allows other schemes or hosts that do not resolve.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_PRIVATE_SETTING = "WEBHOOK_ALLOW_PRIVATE_TARGETS"
EXCERPT_BYTES = 4096
"""How much of a reply's body is read: enough for an error message, never a whole download."""

# `is_global` calls these global, yet each can reach a host the platform must not call.
NEVER_GLOBAL = (
    ipaddress.IPv4Network("192.0.0.0/24"),  # IETF protocol assignments (is_global spares .9, .10)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible: stacks that honour it reach the IPv4 host
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped: never a real IPv6 destination
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use NAT64: what it reaches is site policy
    ipaddress.IPv6Network("2001::/32"),  # Teredo: the embedded client address is obfuscated
    ipaddress.IPv6Network("fec0::/10"),  # site-local, deprecated but still routed internally
)
# Prefixes that carry an IPv4 destination, which decides.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeTarget(ValueError):
    """A URL that points where the platform must not send requests."""


class UnresolvedTarget(UnsafeTarget):
    """The host has no address now; unlike the other refusals, a later try may succeed."""


class DeliveryFailed(Exception):
    """The request left but got no reply; the message never quotes the URL's path or query."""


@dataclass(frozen=True)
class Reply:
    status_code: int
    headers: httpx.Headers
    excerpt: str
    """The start of a failure's body (at most `EXCERPT_BYTES`), for its error message."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


# --------------------------------------------------------------------------- the guard


def non_public(address: IPAddress) -> bool:
    """Anything but a global unicast address, also when an IPv4 one hides in an IPv6 one."""
    if any(address in network for network in NEVER_GLOBAL):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.sixtofour
        if address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return non_public(embedded)
    return not address.is_global or address.is_multicast


def _host_and_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # a bracketed host that is no IPv6 address
        raise UnsafeTarget(f"the URL is invalid: {exc}") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise UnsafeTarget("the URL must be http(s) with a host")
    try:
        return hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget("the URL has an invalid port") from None


async def resolve_target(url: str, allow_private: bool) -> list[IPAddress]:
    """The addresses `url` may be sent to, each checked; raises `UnsafeTarget` otherwise.

    Every address the host resolves to must pass, not just one: the connection could go to
    any of them."""
    hostname, port = _host_and_port(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            hostname, port, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvedTarget(f"host {hostname!r} does not resolve") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not allow_private and non_public(address):
            raise UnsafeTarget(
                f"host {hostname!r} resolves to {address}, a non-public address "
                f"(set {ALLOW_PRIVATE_SETTING}=true to allow it)"
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvedTarget(f"host {hostname!r} does not resolve")
    return addresses


# --------------------------------------------------------------------------- sending


async def post(
    url: str,
    content: bytes,
    headers: Mapping[str, str],
    *,
    allow_private: bool,
    timeout: float,
) -> Reply:
    """POST `content` to a checked address of `url`, trying the next one if it refuses.

    Raises `UnsafeTarget` before sending anything, `DeliveryFailed` when nothing answered
    within `timeout` seconds in all."""
    addresses = await resolve_target(url, allow_private)
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTarget(f"the URL is invalid: {exc}") from None
    headers = {**headers, "Host": target.netloc.decode("ascii")}
    try:
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        ):
            for address in addresses[:-1]:
                try:
                    return await _send(client, target, address, content, headers)
                except httpx.ConnectError:
                    continue
            return await _send(client, target, addresses[-1], content, headers)
    except TimeoutError:
        raise DeliveryFailed(f"no answer within {timeout:g}s") from None
    except httpx.HTTPError as exc:
        # `from None`, and the URL cut out: httpx messages may quote it, token and all.
        detail = str(exc)
        for quoted in [url, *(str(target.copy_with(host=str(a))) for a in addresses)]:
            detail = detail.replace(quoted, redact_url(url))
        name = type(exc).__name__
        raise DeliveryFailed(f"{name}: {detail}" if detail else name) from None


async def _send(
    client: httpx.AsyncClient,
    target: httpx.URL,
    address: IPAddress,
    content: bytes,
    headers: Mapping[str, str],
) -> Reply:
    # Only the socket is pinned: Host (set by the caller), TLS SNI and the certificate check
    # keep the URL's name.
    pinned = target.copy_with(host=str(address))
    async with client.stream(
        "POST",
        pinned,
        content=content,
        headers=headers,
        extensions={"sni_hostname": target.host},
    ) as response:
        body = bytearray()
        # Only a failure's body is worth reading (for its message); a success ends here.
        if not 200 <= response.status_code < 300:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= EXCERPT_BYTES:
                    break
    return Reply(
        response.status_code,
        response.headers,
        bytes(body[:EXCERPT_BYTES]).decode(errors="replace"),
    )


def redact_url(url: str) -> str:
    """scheme://host[:port]/first-segment/... : the path's remaining segments, the query,
    the fragment and any userinfo are where webhook providers put their tokens."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"  # IPv6 literals keep their brackets
    segments = [segment for segment in parts.path.split("/") if segment]
    path = f"/{segments[0]}" if segments else ""
    if len(segments) > 1 or parts.query or parts.fragment:
        path += "/..."
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{path}"
