"""Gates: the owner's minimum bar, each `warn` or `fail`, checked against the measured metrics."""

from __future__ import annotations

from typing import Any

SEVERITIES = ("warn", "fail")
# Metrics a gate may name; "<metric>" reads the flat metrics, a gate with `level` reads that
# benchmark level's row (e.g. ttft_p99_ms at level c4).
GATE_METRICS = (
    "humaneval_pass_at_1",
    "mbpp_pass_at_1",
    "scenarios_percent",
    "single_stream_tokens_per_s",
    "peak_output_tokens_per_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "error_rate",
    "roofline_percent",
)
LEVEL_METRICS = (
    "output_tokens_per_s",
    "decode_tokens_per_s_per_stream",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "tpot_p99_ms",
    "e2el_p50_ms",
    "e2el_p99_ms",
)


class GateError(ValueError):
    pass


def check_gate(gate: dict[str, Any]) -> None:
    """Refuse a malformed gate with a message that names what is wrong."""
    metric = gate.get("metric")
    level = gate.get("level")
    allowed = LEVEL_METRICS if level else GATE_METRICS
    if metric not in allowed:
        where = f"at a level ({level})" if level else "without a level"
        raise GateError(f"gate {gate!r}: metric must be one of {', '.join(allowed)} {where}")
    if ("min" in gate) == ("max" in gate):
        raise GateError(f"gate {gate!r}: give exactly one of min or max")
    bound = gate.get("min", gate.get("max"))
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        raise GateError(f"gate {gate!r}: the threshold must be a number")
    if gate.get("severity", "fail") not in SEVERITIES:
        raise GateError(f"gate {gate!r}: severity must be warn or fail")


def _measured(gate: dict[str, Any], metrics: dict[str, Any]) -> float | None:
    if gate.get("level"):
        row = (metrics.get("per_level") or {}).get(gate["level"])
        return None if row is None else row.get(gate["metric"])
    return metrics.get(gate["metric"])


def isolation_gate(metrics: dict[str, Any], allow_partial: bool) -> dict[str, Any] | None:
    """The implicit gate on the quality sandbox: less than full isolation fails unless allowed.

    `sandbox_isolation_full` is None when no quality suite ran (nothing executed, nothing to gate).
    """
    full = metrics.get("sandbox_isolation_full")
    if full is None:
        return None
    missing = ", ".join(metrics.get("sandbox_isolation_missing") or []) or "unknown"
    if full:
        status, shown = "pass", "full"
    else:
        status, shown = ("warn" if allow_partial else "fail"), f"partial (missing {missing})"
    allowed = " (allowed: llm_verify_allow_partial_isolation)" if allow_partial and not full else ""
    return {
        "name": "sandbox isolation",
        "metric": "sandbox_isolation_full",
        "level": None,
        "op": "min",
        "threshold": 1.0,
        "severity": "warn" if allow_partial else "fail",
        "measured": 1.0 if full else 0.0,
        "met": bool(full),
        "status": status,
        "message": f"sandbox isolation: {shown}, required full{allowed}: {status}",
    }


def evaluate_gates(
    gates: list[dict[str, Any]], metrics: dict[str, Any], allow_partial_isolation: bool = False
) -> dict[str, Any]:
    """Each gate's measured value, threshold and status; `failed` lists the fail gates not met.

    The sandbox's isolation is always gated (`isolation_gate`), on top of the owner's gates.
    """
    results = []
    isolation = isolation_gate(metrics, allow_partial_isolation)
    if isolation is not None:
        results.append(isolation)
    for gate in gates:
        check_gate(gate)
        severity = gate.get("severity", "fail")
        op = "min" if "min" in gate else "max"
        threshold = float(gate[op])
        value = _measured(gate, metrics)
        name = gate["metric"] + (f" at {gate['level']}" if gate.get("level") else "")
        if value is None:
            status, met = "not measured", None
        else:
            met = value >= threshold if op == "min" else value <= threshold
            status = "pass" if met else severity
        sign = ">=" if op == "min" else "<="
        shown = "not measured" if value is None else f"{value:.4g}"
        results.append(
            {
                "name": name,
                "metric": gate["metric"],
                "level": gate.get("level"),
                "op": op,
                "threshold": threshold,
                "severity": severity,
                "measured": value,
                "met": met,
                "status": status,
                "message": f"{name}: measured {shown}, required {sign} {threshold:g} ({severity}): {status}",
            }
        )
    return {
        "results": results,
        "failed": [r["message"] for r in results if r["status"] == "fail"],
        "warned": [r["message"] for r in results if r["status"] == "warn"],
        "not_measured": [r["message"] for r in results if r["status"] == "not measured"],
        "passed": all(r["status"] != "fail" for r in results),
    }
