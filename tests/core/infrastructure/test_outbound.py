"""The one outbound guard (core/infrastructure/outbound.py): which URLs may be targets of webhooks,
escalation webhooks and Slack, whatever form the address takes."""

from __future__ import annotations

import re

import pytest

from core.infrastructure.outbound import UnresolvedTarget, UnsafeTarget, resolve_target

NON_PUBLIC = "non-public"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/hook", NON_PUBLIC),
        ("http://localhost/hook", NON_PUBLIC),
        ("http://10.1.2.3/hook", NON_PUBLIC),
        ("http://192.168.0.10/hook", NON_PUBLIC),
        ("http://169.254.169.254/latest/meta-data/", NON_PUBLIC),
        ("http://100.64.0.1/hook", NON_PUBLIC),  # carrier-grade NAT
        ("http://0.0.0.0/hook", NON_PUBLIC),
        ("http://2130706433/hook", NON_PUBLIC),  # 127.0.0.1 as a number
        ("http://0x7f.1/hook", NON_PUBLIC),  # and in hex
        ("http://224.0.0.1/hook", NON_PUBLIC),  # multicast, which is_global lets through
        # 192.0.0.0/24: is_global calls .9 and .10 global
        ("http://192.0.0.9/hook", NON_PUBLIC),
        ("http://192.0.0.10/hook", NON_PUBLIC),
        ("http://192.0.0.170/hook", NON_PUBLIC),
        ("http://[::1]/hook", NON_PUBLIC),
        ("http://[fe80::1]/hook", NON_PUBLIC),
        ("http://[fd00::1]/hook", NON_PUBLIC),
        ("http://[ff0e::1]/hook", NON_PUBLIC),  # global multicast
        ("http://[fec0::1]/hook", NON_PUBLIC),  # site-local, which is_global calls global
        # IPv4-compatible IPv6, which is_global calls global
        ("http://[::127.0.0.1]/hook", NON_PUBLIC),
        ("http://[::a9fe:a9fe]/hook", NON_PUBLIC),  # 169.254.169.254
        ("http://[::8.8.8.8]/hook", NON_PUBLIC),  # deprecated, even of a public address
        # IPv4-mapped and -translated: never a real IPv6 destination
        ("http://[::ffff:127.0.0.1]/hook", NON_PUBLIC),
        ("http://[::ffff:8.8.8.8]/hook", NON_PUBLIC),
        ("http://[::ffff:0:a00:1]/hook", NON_PUBLIC),
        # NAT64: the well-known prefix is judged by the IPv4 address it carries; the
        # local-use one reaches whatever the site maps it to
        ("http://[64:ff9b::a9fe:a9fe]/hook", NON_PUBLIC),
        ("http://[64:ff9b::7f00:1]/hook", NON_PUBLIC),
        ("http://[64:ff9b:1::a9fe:a9fe]/hook", NON_PUBLIC),
        ("http://[64:ff9b:1::808:808]/hook", NON_PUBLIC),
        # 6to4 carrying a private address, and Teredo
        ("http://[2002:a00:1::]/hook", NON_PUBLIC),  # 10.0.0.1
        ("http://[2002:7f00:1::]/hook", NON_PUBLIC),  # 127.0.0.1
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", NON_PUBLIC),
        ("file:///etc/passwd", "must be http(s)"),
        ("gopher://example.com/", "must be http(s)"),
        ("http:///no-host", "must be http(s)"),
        ("http://example.com:99999/", "invalid port"),
        ("http://[::1/hook", "the URL is invalid"),
        ("http://[not-an-address]/hook", "the URL is invalid"),
        ("http://does-not-exist.invalid/hook", "does not resolve"),
    ],
)
async def test_the_guard_refuses_what_is_not_public(url: str, reason: str) -> None:
    with pytest.raises(UnsafeTarget, match=re.escape(reason)) as refused:
        await resolve_target(url, allow_private=False)
    if reason == NON_PUBLIC:  # and says how an operator allows it
        assert "WEBHOOK_ALLOW_PRIVATE_TARGETS=true" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://93.184.215.14/hook", "93.184.215.14"),
        ("https://8.8.8.8/x", "8.8.8.8"),
        ("http://[2606:4700:4700::1111]:8443/hook", "2606:4700:4700::1111"),
        ("http://[64:ff9b::808:808]/hook", "64:ff9b::808:808"),  # NAT64 of 8.8.8.8
        ("http://[2002:808:808::]/hook", "2002:808:808::"),  # 6to4 of 8.8.8.8
    ],
)
async def test_the_guard_passes_public_addresses(url: str, address: str) -> None:
    assert [str(a) for a in await resolve_target(url, allow_private=False)] == [address]


async def test_allowing_private_targets_allows_only_addresses() -> None:
    assert "127.0.0.1" in [str(a) for a in await resolve_target("http://localhost:1/", True)]
    assert [str(a) for a in await resolve_target("http://[::127.0.0.1]/", True)] == ["::7f00:1"]
    # The operator's setting never allows other schemes or hosts without an address.
    with pytest.raises(UnsafeTarget, match="must be http"):
        await resolve_target("file:///etc/passwd", allow_private=True)
    with pytest.raises(UnresolvedTarget, match="does not resolve"):
        await resolve_target("http://does-not-exist.invalid/", allow_private=True)
