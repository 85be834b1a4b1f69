"""Judgements from measurements by stated rules (data/assessment.yaml): grade and verdict, the
use-case suitability matrix, known weaknesses, the hybrid workflow and the personas."""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

import yaml

from aimachine.report.records import RULES, rec, value


def rules() -> dict[str, Any]:
    text = resources.files("aimachine.report").joinpath("data/assessment.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _criteria_share(scenarios: dict[str, Any], ids: list[str]) -> tuple[float, float] | None:
    points = maximum = 0.0
    for item in scenarios.get("items") or []:
        for c in item.get("criteria") or []:
            if c.get("id") in ids:
                points += float(c.get("points") or 0.0)
                maximum += float(c.get("max_points") or 0.0)
    return (points, maximum) if maximum > 0 else None


def _api_price(cost: dict[str, Any]) -> tuple[dict[str, Any] | None, float | None]:
    apis = cost.get("break_even") or []
    return (apis[0], float(apis[0]["price_per_million"])) if apis else (None, None)


def grade(quality: dict[str, Any], scenarios: dict[str, Any], cost: dict[str, Any]) -> dict[str, Any]:
    """Category scores 0-10 from measurements, their weighted mean, the letter and the verdict."""
    r = rules()
    rows = []
    for cat in r["categories"]:
        parts: list[tuple[float, float | None, str]] = []  # (fraction, SE, what)
        for suite in cat.get("suites") or []:
            s = (quality.get("suites") or {}).get(suite)
            if s and s.get("pass_at_1") is not None:
                parts.append((float(s["pass_at_1"]), s.get("stderr"), f"{s['label']} pass@1"))
        if cat.get("criteria") and scenarios.get("available"):
            share = _criteria_share(scenarios, cat["criteria"])
            if share:
                parts.append((share[0] / share[1], None, f"scenario criteria {', '.join(cat['criteria'])}"))
        if cat["id"] == "cost_efficiency" and cost.get("available"):
            api, price = _api_price(cost)
            local = (cost.get("single_stream") or cost.get("peak") or {}).get("electricity_per_million")
            if price and local is not None:
                parts.append(
                    (max(0.0, min(1.0, 1.0 - float(local) / price)), None, f"electricity vs {api['name']}")
                )
        if not parts:
            rows.append({"id": cat["id"], "label": cat["label"], "measured": False, "weight": cat["weight"]})
            continue
        score = 10.0 * sum(p[0] for p in parts) / len(parts)
        ses = [p[1] for p in parts if p[1] is not None]
        se = 10.0 * math.sqrt(sum(s * s for s in ses)) / len(parts) if ses else None
        what = "; ".join(p[2] for p in parts)
        rows.append(
            {
                "id": cat["id"],
                "label": cat["label"],
                "measured": True,
                "weight": cat["weight"],
                "score": rec(score, "/ 10", measured=f"computed: 10 x mean of {what}"),
                "stderr": rec(se, "", measured=f"computed: from the binomial SE of {what}")
                if se is not None
                else None,
                "basis": what,
            }
        )
    measured = [row for row in rows if row["measured"]]
    total_weight = sum(row["weight"] for row in measured)
    section: dict[str, Any] = {"categories": rows, "not_graded": r["not_graded"], "rule": RULES}
    for row in rows:
        row["weight_rec"] = rec(100 * row["weight"], "%", digits=0, source=RULES)
        if row["measured"]:
            row["effective_weight"] = rec(
                100 * row["weight"] / total_weight,
                "%",
                digits=0,
                measured="rule weight rescaled to the measured categories",
            )
    if not measured:
        section.update(available=False, reason="nothing was measured that the grade is made of")
        return section
    overall = sum(value(row["score"]) * row["weight"] for row in measured) / total_weight
    se_terms = [
        (value(row["stderr"]) or 0.0) * row["weight"] / total_weight for row in measured if row.get("stderr")
    ]
    overall_se = math.sqrt(sum(t * t for t in se_terms)) if se_terms else None
    letter = next(x for x in r["letters"] if overall >= x["min"])
    section.update(
        available=True,
        overall=rec(overall, "/ 10", measured="computed: weighted mean of the category scores"),
        overall_stderr=rec(overall_se, "", measured="computed: propagated from the categories' SE")
        if overall_se is not None
        else None,
        letter=letter["letter"],
        verdict=letter["verdict"],
        letter_min=rec(letter["min"], "/ 10", source=RULES),
        partial=len(measured) < len(rows),
    )
    return section


def _band(score: float, bands: list[dict[str, Any]]) -> dict[str, Any]:
    return next(b for b in bands if score >= b["min"])


def suitability(
    quality: dict[str, Any], scenarios: dict[str, Any], model_results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Each use case: the mean of its measured components, its band, and whether the band is certain."""
    r = rules()
    bands = r["bands"]
    items = {i["id"]: i for i in scenarios.get("items") or []} if scenarios.get("available") else {}
    rows = []
    for uc in r["use_cases"]:
        parts: list[tuple[float, float | None, str]] = []  # percent, SE percent, what
        for suite in uc.get("suites") or []:
            s = (quality.get("suites") or {}).get(suite)
            if s and s.get("pass_at_1") is not None:
                se = None if s.get("stderr") is None else 100 * float(s["stderr"])
                parts.append(
                    (100 * float(s["pass_at_1"]), se, f"{s['label']} pass@1 ({s['problems']} problems)")
                )
        for sid in uc.get("scenarios") or []:
            item = items.get(sid)
            if item and item.get("percent") is not None:
                parts.append(
                    (float(item["percent"]), item.get("stderr_percent"), f"scenario {item['title']}")
                )
        for role in uc.get("model_suites") or {}:
            res = model_results.get(role)
            if res and res.get("score_percent") is not None:
                parts.append((float(res["score_percent"]), res.get("stderr_percent"), f"{res['label']}"))
        row: dict[str, Any] = {"use_case": uc["name"]}
        if not parts:
            row.update(
                measured=False,
                band="not measured",
                why=uc.get("unmeasured") or "not run in this mode or no such model deployed",
            )
            rows.append(row)
            continue
        score = sum(p[0] for p in parts) / len(parts)
        ses = [p[1] for p in parts if p[1] is not None]
        se = math.sqrt(sum(s * s for s in ses)) / len(parts) if ses else None
        band = _band(score, bands)
        upper = next((b["min"] for b in reversed(bands) if b["min"] > band["min"]), 101)
        if se is None:
            certainty = "one sample: SE not measured"
        elif score - 2 * se >= band["min"] and score + 2 * se < upper:
            certainty = "confident (score ± 2 SE inside the band)"
        else:
            certainty = "borderline (score ± 2 SE crosses a band limit)"
        what = "; ".join(p[2] for p in parts)
        row.update(
            measured=True,
            score=rec(score, "%", measured=f"computed: mean of {what}"),
            stderr=rec(se, "pts", measured=f"computed: from the SE of {what}") if se is not None else None,
            band=band["band"],
            recommendation=band["recommendation"],
            certainty=certainty,
            basis=what,
            partial_se=se is not None and len(ses) < len(parts),
        )
        rows.append(row)
    return {
        "rows": rows,
        "bands": [{**b, "min_rec": rec(b["min"], "%", digits=0, source=RULES)} for b in bands],
        "rule": RULES,
    }


def weaknesses(suit: dict[str, Any], scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """The use cases in the lowest band or not measured, with what lost points and the mitigation."""
    r = rules()
    lowest = r["bands"][-1]["band"]
    items = {i["title"]: i for i in scenarios.get("items") or []} if scenarios.get("available") else {}
    out = []
    for row in suit["rows"]:
        if row["band"] not in (lowest, "not measured"):
            continue
        lost = []
        for part in (row.get("basis") or "").split("; "):
            title = part.removeprefix("scenario ")
            item = items.get(title)
            if item:
                for c in item.get("criteria") or []:
                    if float(c.get("points") or 0) < float(c.get("max_points") or 0):
                        lost.append(
                            {
                                "criterion": c.get("description"),
                                "points": rec(
                                    c.get("points"), "", digits=1, measured=f"scenario {item['id']}"
                                ),
                                "max_points": rec(
                                    c.get("max_points"), "", digits=1, source="scenario rubric"
                                ),
                                "evidence": c.get("evidence"),
                            }
                        )
        m = r["mitigations"].get(row["use_case"], {})
        out.append(
            {
                "use_case": row["use_case"],
                "score": row.get("score"),
                "band": row["band"],
                "why": row.get("why"),
                "lost": lost[:4],
                "mitigation": m.get("mitigation"),
                "alternative": m.get("alternative"),
                "source": "origin document, 'Known Weaknesses' (mitigations, condensed)",
            }
        )
    return out


def hybrid(suit: dict[str, Any], cost: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Local for the use cases in the upper bands, the first configured API for the rest; the cost split."""
    r = rules()
    lowest = r["bands"][-1]["band"]
    local = [row["use_case"] for row in suit["rows"] if row["measured"] and row["band"] != lowest]
    cloud = [row["use_case"] for row in suit["rows"] if not row["measured"] or row["band"] == lowest]
    section: dict[str, Any] = {"local": local, "cloud": cloud}
    api, price = _api_price(cost) if cost.get("available") else (None, None)
    monthly = cost.get("monthly_output_tokens_millions")
    basis = cost.get("single_stream") or cost.get("peak") if cost.get("available") else None
    if api is None or not monthly or basis is None:
        section["cost"] = None
        section["reason"] = "needs the cost section: an electricity price, a benchmark and an API price"
        return section
    share = float(config.get("cloud_share", r["cloud_share"]))
    share_source = config.get("cloud_share_source") or (
        "configured: llm_verify_cost.cloud_share" if "cloud_share" in config else r["cloud_share_source"]
    )
    cur = cost["currency"]
    electricity = float(basis["electricity_per_million"])
    volume = float(monthly)
    local_cost = volume * (1 - share) * electricity
    cloud_cost = volume * share * price
    all_cloud = volume * price
    section["cost"] = {
        "api": api["name"],
        "cloud_share": rec(100 * share, "%", digits=0, source=share_source),
        "monthly_volume": rec(
            volume, "M tokens", digits=1, source="configured: llm_verify_cost.monthly_output_tokens_millions"
        ),
        "api_price": rec(price, cur, digits=2, source=api.get("source") or "configured"),
        "electricity_per_million": rec(
            electricity, cur, digits=4, measured=f"cost section, level {basis['level']}"
        ),
        "local": rec(
            local_cost, cur, digits=2, measured="computed: volume x (1 - share) x electricity per 1M"
        ),
        "cloud": rec(cloud_cost, cur, digits=2, measured="computed: volume x share x API price per 1M"),
        "hybrid": rec(local_cost + cloud_cost, cur, digits=2, measured="computed: local + cloud"),
        "all_cloud": rec(all_cloud, cur, digits=2, measured="computed: volume x API price per 1M"),
        "saving": rec(
            100 * (1 - (local_cost + cloud_cost) / all_cloud) if all_cloud else None,
            "%",
            measured="computed: 1 - hybrid / all-cloud",
        ),
    }
    return section


def personas(
    capacity: dict[str, Any], grade_section: dict[str, Any], cost: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each persona against the measured capacity (developers served) and the break-even at its volume."""
    r = rules()
    served = value(capacity.get("developers")) if capacity.get("available") else None
    letter = grade_section.get("letter")
    good_letters = {x["letter"] for x in r["letters"] if x["min"] >= 7.0}
    out = []
    api, price = _api_price(cost) if cost.get("available") else (None, None)
    basis = (cost.get("single_stream") or cost.get("peak")) if cost.get("available") else None
    for p in r["personas"]:
        devs = int(p["developers"])
        row: dict[str, Any] = {
            "persona": p["name"],
            "developers": rec(devs, "", digits=0, source=RULES),
        }
        if served is None:
            row["fits"] = None
            row["capacity_note"] = (
                capacity.get("developers_reason") or capacity.get("reason") or "capacity not measured"
            )
        else:
            row["fits"] = served >= devs
        row["served"] = capacity.get("developers") if capacity.get("available") else rec(None)
        hardware = cost.get("hardware_price")
        monthly = cost.get("monthly_output_tokens_millions")
        if api and basis and hardware is not None and monthly:
            margin = price - float(basis["electricity_per_million"])
            idle = float(cost.get("idle_cost_per_month") or 0.0)
            per_month = devs * float(monthly) * margin - idle
            months = float(hardware) / per_month if per_month > 0 else None
            row["break_even_months"] = rec(
                months,
                "months",
                measured=(
                    f"computed: hardware / ({devs} x {float(monthly):g} M tokens x ({price:g} - "
                    f"{float(basis['electricity_per_million']):.4f}) - idle {idle:.2f}) against {api['name']}"
                ),
            )
        else:
            row["break_even_months"] = rec(None)
        quality_ok = letter in good_letters if letter else None
        if row["fits"] is None or quality_ok is None:
            row["recommendation"] = "not decided: capacity or grade not measured"
        elif row["fits"] and quality_ok:
            row["recommendation"] = "recommended"
        elif row["fits"]:
            row["recommendation"] = (
                "capacity fits; quality below B: use with review, hybrid for the weak use cases"
            )
        else:
            row["recommendation"] = "more developers than the measured capacity: add a GPU or a second host"
        out.append(row)
    return out
