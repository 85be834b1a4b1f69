"""Number records of report.json: a value with its unit and either `measured` or `source`.

`measured` names what on this host produced the number (a benchmark level, a quality suite, a
computation on those, stating its rule); `source` cites where a published or configured number
comes from. `unsourced` lists any record that has neither, for the tests.
"""

from __future__ import annotations

from typing import Any

RULES = "report rule (aimachine/report/data/assessment.yaml, docs/report.md)"


def rec(
    value: float | int | None,
    unit: str = "",
    *,
    digits: int = 1,
    measured: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    if value is not None and not (measured or source):
        raise ValueError(f"a number without measurement or source: {value!r}")
    out: dict[str, Any] = {"value": value, "unit": unit, "digits": digits}
    if measured:
        out["measured"] = measured
    if source:
        out["source"] = source
    return out


def is_rec(obj: Any) -> bool:
    return isinstance(obj, dict) and "value" in obj and "digits" in obj


def value(r: dict[str, Any] | None) -> Any:
    return None if r is None else r.get("value")


def unsourced(obj: Any, path: str = "") -> list[str]:
    """Paths of records in obj that carry a number but neither `measured` nor `source`."""
    out = []
    if is_rec(obj):
        if obj["value"] is not None and not (obj.get("measured") or obj.get("source")):
            out.append(path)
        return out
    if isinstance(obj, dict):
        for key, child in obj.items():
            out += unsourced(child, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, child in enumerate(obj):
            out += unsourced(child, f"{path}[{i}]")
    return out


def records(obj: Any) -> list[dict[str, Any]]:
    if is_rec(obj):
        return [obj]
    if isinstance(obj, dict):
        return [r for child in obj.values() for r in records(child)]
    if isinstance(obj, list):
        return [r for child in obj for r in records(child)]
    return []
