"""Filters of the front door (stdlib only; no netaddr on the controller).

Addresses:

- ``llm_frontdoor_bad_networks``: the entries of a list that are not an IP network or address.
- ``llm_frontdoor_networks``: the valid entries of one family (4 or 6), normalised ("10.0.0.0/8").
- ``llm_frontdoor_broad_networks``: the valid entries that reach beyond the LAN by more than one
  site: a public IPv4 network shorter than /16 (over 65,536 addresses) or a public IPv6 network
  shorter than /48; 0.0.0.0/0 and ::/0 among them. Networks inside the loopback, private,
  shared (CGNAT) and link-local ranges are never broad: they cannot reach the internet.

Upstreams (one per served model; routing by the request's ``model`` field):

- ``llm_frontdoor_upstream_errors``: what is wrong with ``llm_frontdoor_upstreams``, one line each.
- ``llm_frontdoor_routes``: the upstreams as the templates use them (index, name, host, port, the
  /v1 paths each serves, its body limit in bytes and how that limit was reached).
- ``llm_frontdoor_model_cards``: the /v1/models entries of the routed models.
- ``llm_frontdoor_size_bytes``: an nginx size ("8m", "512k", "1048576") in bytes.

The body limit of a model with a known context is ``max_model_len x bytes_per_token + overhead``:
a prompt that cannot fit the context is refused at the door, with a 413 naming the model and
its limit, before it reaches the engine (issue #18: one 7 MB prompt held the CPU engine for
minutes). docs/security.md gives the arithmetic behind the default of 32 bytes per token.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any


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


# The /v1 paths a served model can take (vLLM 0.33.0's routes that carry a `model` field), and
# what each role serves when its entry does not list `paths`.
PATHS = (
    "chat/completions",
    "completions",
    "responses",
    "messages",
    "messages/count_tokens",
    "embeddings",
    "rerank",
    "score",
)
ROLE_PATHS = {
    "chat": ("chat/completions", "completions", "responses", "messages", "messages/count_tokens"),
    "autocomplete": ("completions", "chat/completions"),
    "embed": ("embeddings",),
    "rerank": ("rerank", "score"),
}
_KEYS = {"name", "host", "port", "role", "paths", "max_model_len", "max_body_size"}
# Served names go into nginx strings, JSON and URLs: no quotes, spaces, `$`, braces or `;`. The
# appliance's own names have no '/' (contract 1), but vLLM's default name is the repository id
# ("Qwen/Qwen2.5-7B-Instruct-AWQ") and the CPU engine's is the model's path.
_NAME = re.compile(r"^[A-Za-z0-9._:/@+-]{1,200}$")
_SIZE = re.compile(r"^([0-9]+)([kKmM]?)$")
_LOOPBACK = re.compile(r"^127\.[0-9]+\.[0-9]+\.[0-9]+$")
# Smallest body limit accepted: a request with no room for a prompt is a mistake.
MIN_BODY_BYTES = 1024


def llm_frontdoor_size_bytes(size: object) -> int:
    match = _SIZE.match(str(size).strip())
    if not match:
        raise ValueError(f"not an nginx size: {size!r}")
    number, unit = int(match.group(1)), match.group(2).lower()
    return number * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def llm_frontdoor_upstream_errors(upstreams: object, frontdoor_port: object = None) -> list[str]:
    """One line per problem in ``llm_frontdoor_upstreams``; empty when it is good."""
    if not isinstance(upstreams, list):
        return [f"llm_frontdoor_upstreams must be a list, got {type(upstreams).__name__}"]
    errors: list[str] = []
    names: list[str] = []
    ports: list[int] = []
    for number, entry in enumerate(upstreams):
        where = f"llm_frontdoor_upstreams[{number}]"
        if not isinstance(entry, Mapping):
            errors.append(f"{where} must be a mapping with name and port, got {entry!r}")
            continue
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            errors.append(f"{where} has unknown keys {unknown} (known: {sorted(_KEYS)})")
        name = str(entry.get("name", ""))
        if not _NAME.match(name):
            errors.append(
                f"{where}.name must be the served model name: letters, digits and ._:/@+- (got {name!r})"
            )
        names.append(name)
        port = _int(entry.get("port"))
        if port is None or not 1 <= port <= 65535:
            errors.append(f"{where}.port must be 1-65535 (got {entry.get('port')!r})")
        else:
            ports.append(port)
        host = str(entry.get("host", "127.0.0.1"))
        if not (_LOOPBACK.match(host) or host == "::1"):
            errors.append(f"{where}.host must be a loopback address (got {host!r})")
        role = entry.get("role", "chat")
        if role not in ROLE_PATHS:
            errors.append(f"{where}.role must be one of {', '.join(ROLE_PATHS)} (got {role!r})")
        paths = entry.get("paths")
        if paths is not None and (
            not isinstance(paths, list) or not paths or [p for p in paths if p not in PATHS]
        ):
            errors.append(f"{where}.paths must be a non-empty list of {', '.join(PATHS)} (got {paths!r})")
        if entry.get("max_model_len") not in (None, "", 0, "0"):
            tokens = _int(entry.get("max_model_len"))
            if tokens is None or tokens < 1:
                errors.append(
                    f"{where}.max_model_len must be a positive number of tokens "
                    f"(got {entry.get('max_model_len')!r})"
                )
        if entry.get("max_body_size") not in (None, ""):
            try:
                if llm_frontdoor_size_bytes(entry["max_body_size"]) < MIN_BODY_BYTES:
                    errors.append(f"{where}.max_body_size must be at least {MIN_BODY_BYTES} bytes")
            except ValueError:
                errors.append(
                    f"{where}.max_body_size must be an nginx size like '1m' (got {entry['max_body_size']!r})"
                )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        errors.append(f"llm_frontdoor_upstreams: each name once (repeated: {', '.join(duplicates)})")
    reused = sorted({p for p in ports if ports.count(p) > 1})
    if reused:
        errors.append(f"llm_frontdoor_upstreams: each port once (repeated: {', '.join(map(str, reused))})")
    if frontdoor_port is not None and _int(frontdoor_port) in ports:
        errors.append(
            f"llm_frontdoor_upstreams: port {frontdoor_port} is the front door's own (llm_frontdoor_port)"
        )
    return errors


def llm_frontdoor_routes(
    upstreams: list[Mapping[str, Any]],
    fallback: Mapping[str, Any],
    default_body_size: object,
    bytes_per_token: object = 32,
    overhead_bytes: object = 65536,
) -> list[dict[str, Any]]:
    """The upstreams as the templates use them. No ``upstreams``: one unnamed entry from
    ``fallback`` (today's single engine: host, port), which takes every /v1 path, unrouted."""
    per_token, overhead = int(bytes_per_token), int(overhead_bytes)
    default = llm_frontdoor_size_bytes(default_body_size)
    if not upstreams:
        # The single engine: its body limit from its context when that is known.
        tokens = _int(fallback.get("max_model_len")) or None
        limit, note = default, "llm_frontdoor_client_max_body_size"
        if tokens:
            limit = tokens * per_token + overhead
            note = f"{tokens} tokens of context x {per_token} bytes + {overhead} bytes"
        return [
            {
                "index": 0,
                "name": "",
                "host": str(fallback.get("host", "127.0.0.1")),
                "port": int(fallback["port"]),
                "paths": list(PATHS),
                "max_model_len": tokens,
                "limit": limit,
                "limit_note": note,
            }
        ]
    routes = []
    for index, entry in enumerate(upstreams):
        tokens = _int(entry.get("max_model_len")) or None
        if entry.get("max_body_size") not in (None, ""):
            limit, note = llm_frontdoor_size_bytes(entry["max_body_size"]), "its max_body_size"
        elif tokens:
            limit = tokens * per_token + overhead
            note = f"{tokens} tokens of context x {per_token} bytes + {overhead} bytes"
        else:
            limit, note = default, "llm_frontdoor_client_max_body_size"
        routes.append(
            {
                "index": index,
                "name": str(entry["name"]),
                # /metrics/<name>: nginx merges the slashes of a request, so a leading '/' goes.
                "metrics_path": "/metrics/" + str(entry["name"]).lstrip("/"),
                "host": str(entry.get("host", fallback.get("host", "127.0.0.1"))),
                "port": int(entry["port"]),
                "paths": list(entry.get("paths") or ROLE_PATHS[entry.get("role", "chat")]),
                "max_model_len": tokens,
                "limit": limit,
                "limit_note": note,
            }
        )
    return routes


def llm_frontdoor_model_cards(routes: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """/v1/models entries for the routed models, as vLLM lists them (id, object, created, owned_by,
    and max_model_len where it is known)."""
    cards = []
    for route in routes:
        card: dict[str, Any] = {"id": route["name"], "object": "model", "created": 0, "owned_by": "aimachine"}
        if route.get("max_model_len"):
            card["max_model_len"] = route["max_model_len"]
        cards.append(card)
    return cards


class FilterModule:
    def filters(self) -> dict:
        return {
            "llm_frontdoor_bad_networks": llm_frontdoor_bad_networks,
            "llm_frontdoor_networks": llm_frontdoor_networks,
            "llm_frontdoor_broad_networks": llm_frontdoor_broad_networks,
            "llm_frontdoor_size_bytes": llm_frontdoor_size_bytes,
            "llm_frontdoor_upstream_errors": llm_frontdoor_upstream_errors,
            "llm_frontdoor_routes": llm_frontdoor_routes,
            "llm_frontdoor_model_cards": llm_frontdoor_model_cards,
        }
