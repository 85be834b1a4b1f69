"""Capacity: the largest concurrency that meets the service-level objective, and developers served.

Rule (docs/report.md, "Capacity"):

1. A benchmark level *sustains* the SLO when at least `min_fraction` (99 %) of its requests meet
   every limit (vLLM's goodput: TTFT <= limit and TPOT <= limit per request; a failed request
   misses), which is the same as the p99 of each metric being within its limit. The fraction is
   the benchmark's own per-level `goodput` when it was measured with these limits, else it is
   counted from the per-request records in bench.json, else (neither) read from the level's p99s.
2. The box sustains C concurrent streams when every closed-loop level up to C sustains the SLO;
   when the highest measured level does, C is a lower bound.
3. Developers served: with N developers each sending `requests_per_hour` at their busiest hour and
   each request taking W seconds (the mean end-to-end latency measured at level C), the requests
   in flight are Poisson with mean N x rate x W (Little's law for the mean); N is the largest
   number for which the 99th percentile of that Poisson stays within C.
"""

from __future__ import annotations

import math
from typing import Any

from aimachine.report.records import rec

CHAT_SLO = {"ttft_ms": 2000.0, "tpot_ms": 50.0}
CHAT_SLO_SOURCE = (
    "report default (llm_verify_capacity.chat_slo): a chat answer starts within 2 s and streams at "
    "least 20 tokens/s (TPOT 50 ms) for 99 % of requests"
)
AUTOCOMPLETE_SLO = {"ttft_ms": 300.0}
AUTOCOMPLETE_SLO_SOURCE = (
    "report default (llm_verify_capacity.autocomplete_slo): a completion must start within 300 ms of a "
    "keystroke pause for 99 % of requests to feel inline; an assumption, not a published figure"
)
MIN_FRACTION = 0.99
# Busiest-hour load of one developer; both assumptions, stated with their basis.
PER_DEVELOPER = {
    "chat": {
        "requests_per_hour": 20.0,
        "source": (
            "assumption (llm_verify_capacity.per_developer.chat): 20 chat requests in a developer's busiest "
            "hour; the origin document's 'daily coding ~50K tokens' is about 80 requests of the benchmark's "
            "shape a day, about 10 an hour over 8 hours, doubled for the busiest hour"
        ),
    },
    "autocomplete": {
        "requests_per_hour": 720.0,
        "source": (
            "assumption (llm_verify_capacity.per_developer.autocomplete): one completion request every 5 s "
            "while typing, as prvn.sh/hosting-your-own-coding-llm assumes for peak coding hours"
        ),
    },
}
SLO_NAMES = {"ttft_ms": "ttft", "tpot_ms": "tpot", "e2el_ms": "e2el"}


def _bench_goodput(level: dict[str, Any]) -> dict[str, Any] | None:
    """The benchmark's own goodput of a level: contract 4 (`level.goodput`) or the summary's."""
    good = level.get("goodput") or (level.get("summary") or {}).get("goodput")
    if not good:
        return None
    slo = good.get("slo") or good.get("slo_ms") or {}
    limits = {}
    for key, limit in slo.items():
        name = key if key.endswith("_ms") else f"{key}_ms"
        limits[name] = float(limit)
    return {"slo": limits, "fraction": good.get("fraction")}


def _meets(request: dict[str, Any], slo: dict[str, float]) -> bool:
    if not request.get("ok"):
        return False
    for key, limit in slo.items():
        measured = request.get(key)
        # TPOT is undefined for a one-token answer: nothing to miss.
        if measured is None and key == "tpot_ms":
            continue
        if measured is None or float(measured) > limit:
            return False
    return True


def poisson_p99_mean(capacity: int, quantile: float = 0.99) -> float:
    """The largest Poisson mean whose `quantile` is at most `capacity` (bisection on the CDF)."""
    if capacity <= 0:
        return 0.0

    def cdf(mean: float) -> float:
        term = math.exp(-mean)
        total = term
        for k in range(1, capacity + 1):
            term *= mean / k
            total += term
        return total

    lo, hi = 0.0, float(capacity)
    for _ in range(80):
        mid = (lo + hi) / 2
        if cdf(mid) >= quantile:
            lo = mid
        else:
            hi = mid
    return lo


def level_fraction(
    bench: dict[str, Any], level: dict[str, Any], slo: dict[str, float]
) -> tuple[float | None, str, int | None, int | None]:
    """(fraction meeting the SLO, basis, requests meeting, requests) for one level."""
    own = _bench_goodput(level)
    if own and own["slo"] == slo and own["fraction"] is not None:
        return float(own["fraction"]), "the benchmark's goodput at these limits", None, None
    requests = [
        r for r in bench.get("requests") or [] if r.get("level") == level["name"] and not r.get("warmup")
    ]
    if requests:
        good = sum(1 for r in requests if _meets(r, slo))
        return good / len(requests), "counted from bench.json's per-request records", good, len(requests)
    return None, "the level's p99 figures (no per-request records)", None, None


def _p99(level: dict[str, Any], key: str) -> float | None:
    value = ((level.get("summary") or {}).get(key) or {}).get("p99")
    return None if value is None else float(value)


def capacity_section(
    bench: dict[str, Any] | None,
    config: dict[str, Any],
    role: str = "chat",
    where: str = "bench",
) -> dict[str, Any]:
    """The capacity of one model's benchmark run against its role's SLO."""
    cfg = config or {}
    key = "autocomplete_slo" if role == "autocomplete" else "chat_slo"
    default, default_source = (
        (AUTOCOMPLETE_SLO, AUTOCOMPLETE_SLO_SOURCE) if role == "autocomplete" else (CHAT_SLO, CHAT_SLO_SOURCE)
    )

    def norm(d: dict[str, Any]) -> dict[str, float]:
        return {(k if k.endswith("_ms") else f"{k}_ms"): float(v) for k, v in d.items()}

    slo = norm(cfg.get(key) or default)
    slo_source = cfg.get(f"{key}_source") or (
        default_source if slo == norm(default) else f"configured: llm_verify_capacity.{key}"
    )
    min_fraction = float(cfg.get("min_fraction", MIN_FRACTION))
    own = (cfg.get("per_developer") or {}).get(role)
    load = dict(PER_DEVELOPER.get(role, PER_DEVELOPER["chat"]))
    if own:
        load = {
            "requests_per_hour": own.get("requests_per_hour", load["requests_per_hour"]),
            "source": own.get("source") or f"configured: llm_verify_capacity.per_developer.{role}",
        }
    section: dict[str, Any] = {
        "role": role,
        "slo": {k: rec(v, "ms", digits=0, source=slo_source) for k, v in slo.items()},
        "slo_source": slo_source,
        "min_fraction": rec(100 * min_fraction, "%", digits=0, source=slo_source),
        "goodput_arg": " ".join(f"{SLO_NAMES[k]}:{v:g}" for k, v in slo.items()),
    }
    levels = [lv for lv in (bench or {}).get("levels") or [] if lv.get("concurrency")]
    if not levels:
        section.update(available=False, reason="no closed-loop benchmark levels in this run")
        return section
    rows = []
    for level in sorted(levels, key=lambda lv: int(lv["concurrency"])):
        fraction, basis, good, total = level_fraction(bench or {}, level, slo)
        p99s = {k: _p99(level, k) for k in slo}
        if fraction is not None:
            sustains = fraction >= min_fraction
        else:
            sustains = all(v is not None and v <= slo[k] for k, v in p99s.items())
        what = f"{where} level {level['name']}"
        rows.append(
            {
                "level": level["name"],
                "concurrency": int(level["concurrency"]),
                "fraction": rec(
                    None if fraction is None else 100 * fraction, "%", measured=f"{what}: {basis}"
                ),
                "meeting": good,
                "requests": total,
                "basis": basis,
                "p99": {
                    k: rec(v, "ms", measured=f"{what} {k.removesuffix('_ms')} p99") for k, v in p99s.items()
                },
                "e2el_mean_ms": rec(
                    ((level.get("summary") or {}).get("e2el_ms") or {}).get("mean"),
                    "ms",
                    measured=f"{what} mean end-to-end latency",
                ),
                "sustains": sustains,
            }
        )
    sustained = 0
    for row in rows:
        if not row["sustains"]:
            break
        sustained = row["concurrency"]
    at = next((r for r in rows if r["concurrency"] == sustained), None)
    lower_bound = bool(rows) and rows[-1]["sustains"]
    rule = (
        f"largest concurrency whose level and every lower level have at least {100 * min_fraction:g} % of "
        "requests within every limit"
    )
    section.update(
        available=True,
        levels=rows,
        sustained_concurrency=rec(sustained, "streams", digits=0, measured=f"{where}: {rule}"),
        lower_bound=lower_bound,
        rule=rule,
    )
    rate = float(load["requests_per_hour"])
    section["per_developer"] = {
        "requests_per_hour": rec(rate, "requests/h", digits=0, source=load["source"]),
        "source": load["source"],
    }
    if at is None or at["e2el_mean_ms"]["value"] is None:
        section["developers"] = rec(None)
        section["developers_reason"] = (
            "no level meets the SLO" if at is None else "no end-to-end latency at the sustained level"
        )
        return section
    w = float(at["e2el_mean_ms"]["value"]) / 1000.0
    mean = poisson_p99_mean(sustained)
    per_dev = rate / 3600.0 * w
    developers = math.floor(mean / per_dev) if per_dev > 0 else None
    section["poisson_mean"] = rec(
        mean,
        "requests in flight",
        digits=2,
        measured=f"computed: largest Poisson mean with p99 <= {sustained}",
    )
    section["mean_latency_s"] = rec(
        w, "s", digits=2, measured=f"{where} level {at['level']} mean end-to-end latency"
    )
    section["in_flight_per_developer"] = rec(
        per_dev,
        "requests in flight",
        digits=4,
        measured=f"computed: {rate:g} requests/h / 3600 x {w:.3f} s mean latency at {at['level']}",
    )
    section["developers"] = rec(
        developers,
        "developers",
        digits=0,
        measured=(
            f"computed: floor({mean:.2f} / {per_dev:.4f}); the benchmark's request shape at level "
            f"{at['level']}"
        ),
    )
    section["at_level"] = at["level"]
    return section


def main(argv: list[str] | None = None) -> int:
    """Print the capacity of a recorded bench.json (the table docs/report.md shows)."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m aimachine.report.capacity", description=main.__doc__)
    parser.add_argument("bench", type=Path, help="an aimachine-bench bench.json")
    parser.add_argument("--role", choices=("chat", "autocomplete"), default="chat")
    args = parser.parse_args(argv)
    bench = json.loads(args.bench.read_text(encoding="utf-8"))
    cap = capacity_section(bench, {}, role=args.role)
    if not cap.get("available"):
        print(cap.get("reason"))
        return 1
    limits = ", ".join(f"{k.removesuffix('_ms')} p99 <= {v['value']:g} ms" for k, v in cap["slo"].items())
    print(f"SLO: {limits}; a level sustains it with >= {cap['min_fraction']['value']:g} % of requests within")
    print("| level | within SLO | TTFT p99 ms | TPOT p99 ms | mean E2E ms | sustains | counted from |")
    print("|---|---:|---:|---:|---:|---|---|")
    for row in cap["levels"]:
        p99 = row["p99"]
        tpot = (p99.get("tpot_ms") or {}).get("value")
        print(
            f"| {row['level']} | {row['fraction']['value']:.1f} % | {p99['ttft_ms']['value']:,.1f} | "
            f"{'-' if tpot is None else f'{tpot:.1f}'} | {row['e2el_mean_ms']['value']:,.1f} | "
            f"{'yes' if row['sustains'] else 'no'} | {row['basis']} |"
        )
    bound = "at least " if cap["lower_bound"] else ""
    print(f"sustained: {bound}{cap['sustained_concurrency']['value']} streams")
    dev = cap.get("developers") or {}
    if dev.get("value") is not None:
        print(
            f"developers: {dev['value']:,} ({cap['per_developer']['requests_per_hour']['value']:g} "
            "requests/h each, "
            f"mean latency {cap['mean_latency_s']['value']:.2f} s at {cap['at_level']}, Poisson mean "
            f"{cap['poisson_mean']['value']:.2f} within {cap['sustained_concurrency']['value']} at p99)"
        )
    else:
        print(f"developers: not computed ({cap.get('developers_reason')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
