"""Address filters of the front door (stdlib ipaddress only; no netaddr on the controller).

- ``llm_frontdoor_bad_networks``: the entries of a list that are not an IP network or address.
- ``llm_frontdoor_networks``: the valid entries of one family (4 or 6), normalised ("10.0.0.0/8").
- ``llm_frontdoor_broad_networks``: the valid entries that reach beyond the LAN by more than one
  site: a public IPv4 network shorter than /16 (over 65,536 addresses) or a public IPv6 network
  shorter than /48; 0.0.0.0/0 and ::/0 among them. Networks inside the loopback, private,
  shared (CGNAT) and link-local ranges are never broad: they cannot reach the internet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def _parse(entry: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        # strict=False accepts host bits ("192.168.1.7/24" means its network).
        return ipaddress.ip_network(str(entry).strip(), strict=False)
    except ValueError:
        return None


# Ranges that are not on the internet: a network inside one of them admits only local clients.
_LOCAL = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
]
# The shortest public prefix admitted without the explicit switch: one site's block.
_MIN_PUBLIC_PREFIX = {4: 16, 6: 48}


def llm_frontdoor_broad_networks(entries: Iterable[object]) -> list[str]:
    broad = []
    for e in entries:
        net = _parse(e)
        if net is None:
            continue
        if any(net.version == local.version and net.subnet_of(local) for local in _LOCAL):
            continue
        if net.prefixlen < _MIN_PUBLIC_PREFIX[net.version]:
            broad.append(f"{e} ({net.num_addresses:,} addresses)")
    return broad


def llm_frontdoor_bad_networks(entries: Iterable[object]) -> list[str]:
    return [str(e) for e in entries if _parse(e) is None]


def llm_frontdoor_networks(entries: Iterable[object], family: int) -> list[str]:
    nets = [n for n in (_parse(e) for e in entries) if n is not None and n.version == int(family)]
    return [str(n) for n in nets]


class FilterModule:
    def filters(self) -> dict:
        return {
            "llm_frontdoor_bad_networks": llm_frontdoor_bad_networks,
            "llm_frontdoor_networks": llm_frontdoor_networks,
            "llm_frontdoor_broad_networks": llm_frontdoor_broad_networks,
        }
