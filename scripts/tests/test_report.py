"""The verification report, rendered from recorded real results (scripts/tests/data/report/README.md).

Every number the report shows must be the number in its inputs (or arithmetic on them that the
test redoes by hand); gates, cost, the previous-run diff and the quantization section are
checked against the same recorded runs.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from aimachine.report import cli
from aimachine.report.build import Inputs, binomial_stderr, build_report
from aimachine.report.clients import FILES
from aimachine.report.gates import GateError, evaluate_gates

DATA = Path(__file__).parent / "data" / "report"
# Issue #19's sections, in the origin document's order (and the appliance's own).
SECTIONS = (
    "Executive summary",
    "Gates",
    "Grade and verdict",
    "Code quality: HumanEval and MBPP",
    "HumanEval: this host, same-size peers, the catalog and the frontier",
    "SWE-bench Verified (published only)",
    "Quantization impact",
    "Practical scenarios",
    "Throughput and latency",
    "Capacity: concurrency within the SLO and developers served",
    "Served models",
    "Cost",
    "Quality per money",
    "Use-case suitability",
    "Known weaknesses and mitigations",
    "Recommended hybrid workflow",
    "Improvement strategies",
    "Recommendations by persona",
    "Changes since the previous run",
    "Trend over this host's runs",
    "Client configuration",
    "References",
)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _meta() -> dict:
    return _json(DATA / "meta.json")


def _inputs(run: str, meta: dict | None = None, quality: str | None = None) -> Inputs:
    return Inputs(
        meta=meta or _meta(),
        bench=_json(DATA / run / "bench" / "bench.json"),
        quality=_json(DATA / (quality or run) / "quality" / "summary.json"),
    )


def test_numbers_are_those_of_the_inputs():
    inputs = _inputs("run1")
    report = build_report(inputs)
    bench, quality = inputs.bench, inputs.quality
    m = report["metrics"]
    c1 = next(lv for lv in bench["levels"] if lv["concurrency"] == 1)["summary"]
    assert m["single_stream_tokens_per_s"] == c1["decode_tokens_per_s_per_stream"]
    assert m["ttft_p50_ms"] == c1["ttft_ms"]["p50"]
    assert m["ttft_p99_ms"] == c1["ttft_ms"]["p99"]
    assert m["tpot_p50_ms"] == c1["tpot_ms"]["p50"]
    assert m["peak_output_tokens_per_s"] == max(lv["summary"]["output_throughput"] for lv in bench["levels"])
    total = sum(lv["summary"]["completed"] + lv["summary"]["errors"] for lv in bench["levels"])
    assert m["bench_requests"] == total == 12
    assert m["error_rate"] == sum(lv["summary"]["errors"] for lv in bench["levels"]) / total
    for suite in ("humaneval", "mbpp"):
        assert m[f"{suite}_pass_at_1"] == quality["suites"][suite]["pass@1"]
        assert m[f"{suite}_problems"] == quality["suites"][suite]["problems"]
    assert m["scenarios_percent"] == quality["scenarios"]["percent"]
    # Per-criterion points, scenario by scenario.
    for item, recorded in zip(report["scenarios"]["items"], quality["scenarios"]["items"], strict=True):
        assert item["points"] == recorded["points"]
        assert [c["points"] for c in item["criteria"]] == [c["points"] for c in recorded["criteria"]]
    # Per-level rows of the throughput table.
    for row, level in zip(report["performance"]["levels"], bench["levels"], strict=True):
        assert row["output_tokens_per_s"] == level["summary"]["output_throughput"]
        assert row["e2el_p50_ms"] == level["summary"]["e2el_ms"]["p50"]


def test_markdown_shows_the_numbers_and_every_section(tmp_path):
    report = cli.render(
        tmp_path, _meta(), DATA / "run1" / "bench", DATA / "run1" / "quality", config={}, history=[]
    )
    text = (tmp_path / "report.md").read_text()
    m = report["metrics"]
    assert f"{m['single_stream_tokens_per_s']:,.1f} tok/s" in text
    assert f"{m['peak_output_tokens_per_s']:,.1f} tok/s" in text
    assert f"{m['ttft_p99_ms']:,.1f} ms" in text
    for heading in SECTIONS:
        assert f"## {heading}" in text, heading
    # The CPU / test-model case is labelled before anything else.
    first_lines = "\n".join(text.splitlines()[:4])
    assert "CPU MODE" in first_lines and "TEST MODEL" in first_lines
    assert "No record of a higher-precision run" in text
    for name in ("quality.png", "throughput.png", "latency.png", "capacity.png"):
        assert (tmp_path / name).stat().st_size > 1000
        # every plot is shown where it belongs, in both renderings
        assert f"]({name})" in text, name
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(report["plots"]) and 'src="quality.png"' not in html
    assert '<td class="r">' in html and '<section class="summary">' in html
    # the header, then the one-page summary, the details, the footer last
    assert (
        html.index("<h1>")
        < html.index('<section class="summary">')
        < html.index("Written by aimachine-report")
    )
    assert json.loads((tmp_path / "report.json").read_text())["metrics"] == json.loads(json.dumps(m))


def test_quality_with_passing_answers_and_standard_error():
    """The harness's canonical run (real, every answer the reference): pass@1 1.0, SE 0."""
    report = build_report(_inputs("run1", quality="canonical"))
    canonical = _json(DATA / "canonical" / "quality" / "summary.json")
    for suite in ("humaneval", "mbpp"):
        s = report["quality"]["suites"][suite]
        assert s["pass_at_1"] == canonical["suites"][suite]["pass@1"] == 1.0
        assert s["stderr"] == 0.0
        assert s["subset"]
    assert report["metrics"]["scenarios_percent"] == canonical["scenarios"]["percent"] == 100.0


def test_standard_error_formula():
    # REFERENCES.md: p = 0.85 over 164 problems is about 2.8 points.
    assert round(100 * binomial_stderr(0.85, 164), 1) == 2.8
    assert binomial_stderr(0.5, 4) == 0.25


def test_published_scores_travel_with_the_metadata():
    meta = _meta()
    meta["model"]["published_scores"] = [
        {
            "benchmark": "HumanEval",
            "score": 84.8,
            "model": "Qwen2.5-7B-Instruct (BF16)",
            "source": "https://qwenlm.github.io/blog/qwen2.5-llm/",
        }
    ]
    report = build_report(_inputs("run1", meta))
    row = next(r for r in report["summary"] if r["metric"] == "HumanEval pass@1")
    names = {r["name"]: r for r in row["references"]}
    assert names["Qwen2.5-7B-Instruct (BF16) (published)"]["value"]["value"] == 84.8
    gpt = names["GPT-4o"]["value"]
    assert gpt["value"] == 90.2 and gpt["source"].startswith("origin document")


def test_gates_pass_warn_fail_and_not_measured():
    report = build_report(_inputs("run1"))
    m = report["metrics"]
    gates = evaluate_gates(
        [
            {"metric": "error_rate", "max": 0.0, "severity": "fail"},
            {
                "metric": "single_stream_tokens_per_s",
                "min": m["single_stream_tokens_per_s"] * 2,
                "severity": "warn",
            },
            {"metric": "humaneval_pass_at_1", "min": 0.5, "severity": "fail"},
            {"metric": "ttft_p99_ms", "level": "c2", "max": 1e9},
            {"metric": "roofline_percent", "min": 50, "severity": "fail"},
        ],
        m,
    )
    statuses = [r["status"] for r in gates["results"]]
    assert statuses == ["pass", "warn", "fail", "pass", "not measured"]
    assert not gates["passed"]
    assert gates["failed"] == ["humaneval_pass_at_1: measured 0, required >= 0.5 (fail): fail"]
    assert gates["results"][3]["measured"] == m["per_level"]["c2"]["ttft_p99_ms"]
    assert f"{m['single_stream_tokens_per_s']:.4g}" in gates["warned"][0]


@pytest.mark.parametrize(
    "gate",
    [
        {"metric": "nope", "min": 1},
        {"metric": "error_rate"},
        {"metric": "error_rate", "min": 1, "max": 2},
        {"metric": "error_rate", "max": "x"},
        {"metric": "error_rate", "max": 1, "severity": "maybe"},
        {"metric": "humaneval_pass_at_1", "level": "c1", "min": 1},
    ],
)
def test_malformed_gates_are_refused(gate):
    with pytest.raises(GateError):
        evaluate_gates([gate], {})


def test_cost_arithmetic_with_configured_cpu_power():
    config = {
        "cost": {
            "currency": "EUR",
            "electricity_price_per_kwh": 0.30,
            "cpu_load_watts": 65,
            "idle_watts": 10,
            "hardware_price": 450,
            "monthly_output_tokens_millions": 1.5,
            "api_prices": [
                {"name": "GPT-4 (origin document)", "price_per_million": 30.0, "source": "origin document"}
            ],
        }
    }
    inputs = _inputs("run1")
    cost = build_report(inputs, config)["cost"]
    c1 = next(lv for lv in inputs.bench["levels"] if lv["concurrency"] == 1)["summary"]["output_throughput"]
    kwh = 65 * (1e6 / c1) / 3.6e6
    assert cost["single_stream"]["kwh_per_million"] == pytest.approx(kwh)
    assert cost["single_stream"]["electricity_per_million"] == pytest.approx(kwh * 0.30)
    be = cost["break_even"][0]
    assert be["break_even_million_tokens"] == pytest.approx(450 / (30.0 - kwh * 0.30))
    idle = 10 * 730 / 1000 * 0.30
    if 1.5 * (30.0 - kwh * 0.30) - idle > 0:
        assert be["break_even_months"] == pytest.approx(450 / (1.5 * (30.0 - kwh * 0.30) - idle))
    else:
        assert "idle" in be["note"]
    assert "configured" in cost["power"]["source"] and not cost["power"]["measured"]


def test_cost_uses_measured_gpu_power_when_telemetry_has_it():
    """The recorded H200 NVML block (scripts/tests/data/bench/nvml-h200-sampler.json), its one
    window attached to level c1 of the recorded CPU bench: only the arithmetic is under test."""
    telemetry = _json(Path(__file__).parent / "data" / "bench" / "nvml-h200-sampler.json")
    inputs = _inputs("run1")
    bench = copy.deepcopy(inputs.bench)
    bench["telemetry"] = telemetry | {
        "per_level": {"c1": telemetry["per_level"]["busy"], "c2": telemetry["per_level"]["busy"]}
    }
    report = build_report(
        Inputs(inputs.meta, bench, inputs.quality), {"cost": {"electricity_price_per_kwh": 0.25}}
    )
    watts = telemetry["per_level"]["busy"]["0"]["power_w"]["mean"]
    single = report["cost"]["single_stream"]
    assert report["cost"]["power"]["measured"]
    assert single["power_w"] == watts
    tps = next(lv for lv in bench["levels"] if lv["concurrency"] == 1)["summary"]["output_throughput"]
    assert single["electricity_per_million"] == pytest.approx(watts * 1e6 / tps / 3.6e6 * 0.25)


def test_changes_since_previous_run_and_trend(tmp_path):
    first = cli.render(
        tmp_path / "a",
        _meta(),
        DATA / "run1" / "bench",
        DATA / "run1" / "quality",
        config={},
        history=[],
        generated_at="2026-11-27T02:00:00+00:00",
    )
    second = cli.render(
        tmp_path / "b",
        _meta(),
        DATA / "run2" / "bench",
        DATA / "run2" / "quality",
        config={"regression_tolerance_percent": 10},
        history=[first],
        generated_at="2026-11-27T03:00:00+00:00",
    )
    changes = second["changes"]
    assert changes["previous"]["generated_at"] == first["generated_at"]
    assert changes["previous"]["same_deployment"]
    rows = {r["metric"]: r for r in changes["rows"]}
    for key in ("single_stream_tokens_per_s", "peak_output_tokens_per_s", "ttft_p99_ms"):
        before, now = first["metrics"][key], second["metrics"][key]
        assert rows[key]["previous"] == before and rows[key]["current"] == now
        worse = (before - now) if key != "ttft_p99_ms" else (now - before)
        assert rows[key]["regression"] == (worse > abs(before) * 0.10)
    assert changes["regressions"] == [r["metric"] for r in changes["rows"] if r["regression"]]
    assert [p["generated_at"] for p in second["trend"]] == [first["generated_at"], second["generated_at"]]
    assert (tmp_path / "b" / "trend.png").stat().st_size > 1000
    text = (tmp_path / "b" / "report.md").read_text()
    assert "Previous run: 2026-11-27T02:00:00+00:00" in text


def test_a_regression_beyond_tolerance_is_marked():
    """The same recorded run as its own predecessor, with the predecessor's speed set 2x higher."""
    first = build_report(_inputs("run1"), generated_at="2026-11-27T02:00:00+00:00")
    first["metrics"]["single_stream_tokens_per_s"] *= 2
    second = build_report(_inputs("run1"), history=[first], generated_at="2026-11-27T03:00:00+00:00")
    rows = {r["metric"]: r for r in second["changes"]["rows"]}
    assert rows["single_stream_tokens_per_s"]["regression"]
    assert rows["single_stream_tokens_per_s"]["delta_percent"] == pytest.approx(-50.0)
    assert not rows["scenarios_percent"]["regression"]


def test_quantization_impact_against_a_higher_precision_record():
    """Two real quality runs of the harness under two declared precisions of one base model."""
    high_meta = _meta()
    high_meta["model"] |= {"quantization": "bf16", "base_model": "Example-7B"}
    low_meta = _meta()
    low_meta["model"] |= {"quantization": "awq", "base_model": "Example-7B"}
    record = build_report(
        _inputs("run1", high_meta, quality="canonical"), generated_at="2026-11-26T00:00:00+00:00"
    )
    report = build_report(_inputs("run1", low_meta), history=[record])
    qz = report["quantization"]
    assert qz["status"] == "record" and qz["record"]["precision"] == "bf16"
    row = next(r for r in qz["rows"] if r["suite"] == "humaneval")
    assert (
        row["difference"]
        == report["metrics"]["humaneval_pass_at_1"] - record["metrics"]["humaneval_pass_at_1"]
    )
    assert row["stderr_of_difference"] == math.sqrt(
        report["metrics"]["humaneval_stderr"] ** 2 + record["metrics"]["humaneval_stderr"] ** 2
    )
    # A lower-precision record is not a quantization baseline.
    assert (
        build_report(_inputs("run1", high_meta), history=[build_report(_inputs("run1", low_meta))])[
            "quantization"
        ]["status"]
        == "no record"
    )


def test_client_configs_reference_the_key_and_never_contain_it(tmp_path):
    meta = _meta()
    key = "k" * 48
    key_file = tmp_path / "api_key"
    key_file.write_text(key + "\n")
    meta["clients"]["key_file"] = str(key_file)
    report = cli.render(
        tmp_path / "out", meta, DATA / "run1" / "bench", DATA / "run1" / "quality", config={}, history=[]
    )
    files = sorted(p.name for p in (tmp_path / "out" / "clients").iterdir())
    assert files == sorted(FILES)  # aimachine.report.clients' files (tests: test_clients.py)
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and path.suffix != ".png":
            assert key not in path.read_text()
    env = (tmp_path / "out" / "clients" / "openai-env.sh").read_text()
    assert f"export OPENAI_BASE_URL={meta['clients']['base_url']}" in env
    assert str(key_file) in env
    assert (
        "${{ secrets.AIMACHINE_API_KEY }}"
        in (tmp_path / "out" / "clients" / "continue-config.yaml").read_text()
    )
    assert report["clients"]["model"] == meta["clients"]["model"]


def test_render_cli(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"gates": [{"metric": "humaneval_pass_at_1", "min": 0.9, "severity": "warn"}]})
    )
    rc = cli.render_main(
        [
            "--meta",
            str(DATA / "meta.json"),
            "--bench",
            str(DATA / "run1" / "bench"),
            "--quality",
            str(DATA / "run1" / "quality"),
            "--config",
            str(config),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0
    assert "gate: humaneval_pass_at_1: measured 0, required >= 0.9 (warn): warn" in capsys.readouterr().err
    config.write_text(json.dumps({"gates": [{"metric": "nope", "min": 1}]}))
    assert (
        cli.render_main(
            ["--meta", str(DATA / "meta.json"), "--config", str(config), "--output", str(tmp_path / "x")]
        )
        == 2
    )


def test_a_test_sized_model_is_labelled_from_its_measured_weights():
    meta = _meta()
    meta["model"]["test_model"] = False
    meta["mode"] = "gpu"
    label = build_report(_inputs("run1", meta))["label"]
    weights = _json(DATA / "run1" / "bench" / "bench.json")["roofline"]["model_bytes"]["weights_bytes"]
    assert label["test_model"] and label["weights_bytes"] == weights
    assert label["banner"].startswith(f"TEST MODEL ({weights / 1e6:.1f} MB of weights)")
