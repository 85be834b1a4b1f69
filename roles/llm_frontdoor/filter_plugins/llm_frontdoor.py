"""Address filters of the front door (stdlib ipaddress only; no netaddr on the controller).

- ``llm_frontdoor_bad_networks``: the entries of a list that are not an IP network or address.
- ``llm_frontdoor_networks``: the valid entries of one family (4 or 6), normalised ("10.0.0.0/8").
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
        }
