"""Cost: electricity per million output tokens from measured (or configured) power, and break-even.

    energy per 1M tokens (kWh) = power (W) x (1,000,000 / tokens per second) s / 3,600,000
    electricity per 1M tokens   = energy x price per kWh
    break-even (1M tokens)      = hardware price / (API price per 1M - electricity per 1M)
    break-even (months)         = hardware price / (monthly tokens x (API price - electricity)
                                  - idle power x 730 h x price per kWh)

Power is the GPUs' mean NVML power draw during the benchmark level (the card only, not the
whole machine), or, without NVML (CPU mode), the configured load watts.
"""

from __future__ import annotations

from typing import Any

HOURS_PER_MONTH = 730.0  # 8,760 h / 12


def _level_cost(level: dict[str, Any], watts: float, price: float) -> dict[str, Any] | None:
    tps = level.get("output_tokens_per_s")
    if not tps:
        return None
    seconds = 1e6 / tps
    kwh = watts * seconds / 3.6e6
    return {
        "level": level["name"],
        "output_tokens_per_s": tps,
        "power_w": watts,
        "seconds_per_million": seconds,
        "kwh_per_million": kwh,
        "electricity_per_million": kwh * price,
        "arithmetic": (
            f"{watts:.1f} W x (1e6 / {tps:.2f} tok/s = {seconds:,.0f} s) / 3.6e6 = {kwh:.4f} kWh; "
            f"x {price:g}/kWh = {kwh * price:.4f}"
        ),
    }


def cost_section(meta: dict[str, Any], perf: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    currency = str(config.get("currency") or "USD")
    price = config.get("electricity_price_per_kwh")
    levels = [lv for lv in perf.get("levels") or [] if lv.get("output_tokens_per_s")]
    if not levels:
        return {"available": False, "currency": currency, "reason": "no benchmark levels to cost"}
    if price is None:
        return {"available": False, "currency": currency, "reason": "no electricity price configured"}
    price = float(price)
    measured = all(lv.get("gpu_power_w_mean") is not None for lv in levels)
    if measured:
        power = {
            "source": "measured: mean GPU power (NVML) during each level; the card only",
            "measured": True,
        }
    elif config.get("cpu_load_watts") is not None:
        power = {
            "source": f"configured: {float(config['cpu_load_watts']):g} W under load (no NVML on this host)",
            "measured": False,
            "watts": float(config["cpu_load_watts"]),
        }
    else:
        return {
            "available": False,
            "currency": currency,
            "reason": "no GPU power telemetry and no configured load watts (cost.cpu_load_watts)",
        }

    def watts(level: dict[str, Any]) -> float:
        return float(level["gpu_power_w_mean"]) if measured else float(power["watts"])

    per_level = [c for c in (_level_cost(lv, watts(lv), price) for lv in levels) if c]
    single_level = next((lv for lv in levels if lv.get("concurrency") == 1), None)
    single = _level_cost(single_level, watts(single_level), price) if single_level else None
    peak = max(per_level, key=lambda c: c["output_tokens_per_s"])
    basis = single or peak
    hardware = config.get("hardware_price")
    idle_w = float(config.get("idle_watts") or 0.0)
    monthly = config.get("monthly_output_tokens_millions")
    idle_month = idle_w * HOURS_PER_MONTH / 1000.0 * price
    rows = []
    for api in config.get("api_prices") or []:
        api_price = float(api["price_per_million"])
        margin = api_price - basis["electricity_per_million"]
        row: dict[str, Any] = {
            "name": api["name"],
            "price_per_million": api_price,
            "source": api.get("source", "configured"),
            "saving_per_million": margin,
        }
        if hardware is None:
            row["note"] = "no hardware price configured"
        elif margin <= 0:
            row["note"] = "electricity alone costs more than this API: no break-even"
        else:
            row["break_even_million_tokens"] = float(hardware) / margin
            row["arithmetic"] = (
                f"{float(hardware):g} / ({api_price:g} - {basis['electricity_per_million']:.4f}) = "
                f"{row['break_even_million_tokens']:,.1f} M tokens"
            )
            if monthly:
                per_month = float(monthly) * margin - idle_month
                if per_month > 0:
                    row["break_even_months"] = float(hardware) / per_month
                    row["arithmetic"] += (
                        f"; at {float(monthly):g} M tokens a month: {float(hardware):g} / "
                        f"({float(monthly):g} x {margin:.4f} - idle {idle_month:.2f}) = "
                        f"{row['break_even_months']:.1f} months"
                    )
                else:
                    row["note"] = "at the configured monthly volume the savings do not cover idle power"
        rows.append(row)
    return {
        "available": True,
        "currency": currency,
        "electricity_price_per_kwh": price,
        "electricity_price_source": config.get("electricity_price_source", "configured"),
        "hardware_price": hardware,
        "hardware_price_source": config.get("hardware_price_source", "configured"),
        "idle_watts": idle_w,
        "idle_cost_per_month": idle_month,
        "monthly_output_tokens_millions": monthly,
        "power": power,
        "per_level": per_level,
        "single_stream": single,
        "peak": peak,
        "basis": basis["level"],
        "break_even": rows,
        "mode": meta.get("mode"),
    }


def value_section(quality: dict[str, Any], cost: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    """Quality per money (the origin document's quality-vs-cost table), beside the break-even.

    quality per unit of money = HumanEval pass@1 (%) / price of 1M output tokens; for this host the
    price is the electricity of 1M output tokens (hardware is in the break-even, not here).
    """
    from aimachine.report.records import rec  # noqa: PLC0415 - keeps cost.py importable alone

    rows: list[dict[str, Any]] = []
    he = (quality.get("suites") or {}).get("humaneval")
    cur = cost.get("currency", "USD")
    if he and he.get("pass_at_1") is not None and cost.get("available"):
        score = 100.0 * float(he["pass_at_1"])
        for label, level in (("1 stream", cost.get("single_stream")), ("peak throughput", cost.get("peak"))):
            if not level:
                continue
            price = float(level["electricity_per_million"])
            rows.append(
                {
                    "name": f"this host, {label} (level {level['level']})",
                    "quality": rec(
                        score, "%", measured=f"quality/summary.json humaneval, {he['problems']} problems"
                    ),
                    "price": rec(
                        price,
                        cur,
                        digits=4,
                        measured=f"cost section, level {level['level']} (electricity only)",
                    ),
                    "per_money": rec(
                        score / price if price > 0 else None,
                        f"points per {cur}",
                        digits=0,
                        measured="computed: quality / electricity per 1M output tokens",
                    ),
                }
            )
    for api in refs.get("api_models") or []:
        price = float(api["output_price_per_million"])
        rows.append(
            {
                "name": f"{api['name']} (API)",
                "quality": rec(api["humaneval"], "%", source=api["humaneval_source"]),
                "price": rec(price, api.get("currency", "USD"), digits=2, source=api["price_source"]),
                "per_money": rec(
                    float(api["humaneval"]) / price,
                    f"points per {api.get('currency', 'USD')}",
                    digits=1,
                    source=f"computed from {api['humaneval_source']} and {api['price_source']}",
                ),
            }
        )
    reason = None
    if not rows or not any(r["name"].startswith("this host") for r in rows):
        reason = "this host's row needs a HumanEval run and the cost section (an electricity price and power)"
    return {"rows": rows, "reason": reason, "currency": cur}
