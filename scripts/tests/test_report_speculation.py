"""The report's speculative-decoding decision (aimachine.report.speculation) on recorded inputs.

The baseline is the recorded lent-H200 run (vLLM 0.26.0, 16 GiB cap); the speculative runs are
that recording with its throughput scaled and each level's spec_decode block computed by the
bench's own server-metrics code from vLLM-rendered /metrics text (the provisional ngram pair).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from aimachine.bench.server_metrics import Scrape, level_delta, parse_exposition
from aimachine.report import doc, render, speculation
from aimachine.report.build import Inputs, build_report

DATA = Path(__file__).parent / "data"
OFF = json.loads((DATA / "report/gpu/h200-16gib-vllm-0.26.0/bench.json").read_text(encoding="utf-8"))
PROM = DATA / "bench/vllm-metrics"


def _spec_block() -> dict:
    def scrape(name: str) -> Scrape:
        return Scrape(parse_exposition((PROM / name).read_text(encoding="utf-8")), 0.0)

    before, after = (
        scrape("provisional-vllm-0.33.0-ngram-before.prom"),
        scrape("provisional-vllm-0.33.0-ngram-after.prom"),
    )
    return level_delta(before, after, None)["spec_decode"]


def _on(scale: dict[int, float], spec: bool = True) -> dict:
    doc = copy.deepcopy(OFF)
    for level in doc["levels"]:
        factor = scale.get(level["concurrency"], 1.0)
        level["summary"]["output_throughput"] *= factor
        level["summary"]["tpot_ms"]["p50"] /= factor
        level["server_metrics"]["spec_decode"] = _spec_block() if spec else None
    return doc


def test_counters_come_from_vllms_exposition():
    block = _spec_block()
    assert block["draft_tokens"] == 900 and block["accepted_tokens"] == 450
    assert block["acceptance_rate"] == pytest.approx(0.5)


def test_faster_at_every_level_is_chosen_with_its_worst_level_gain():
    ngram = _on({1: 1.40, 2: 1.35, 4: 1.30, 8: 1.20, 16: 1.10, 32: 1.06, 64: 1.05})
    section = speculation.report_section(meta={}, bench={"off": OFF, "ngram": ngram}, history=[])
    decision = section["decision"]
    assert decision["choice"] == "ngram"
    assert decision["speedup"] == pytest.approx(1.05)
    assert "ngram against off: faster (output throughput +5.0 % to +40.0 %" in section["text"]
    assert "Faster here: ngram, by +5.0 % at its worst level." in section["text"]
    row = next(r for r in section["levels"] if r["method"] == "ngram" and r["concurrency"] == 1)
    assert row["throughput_ratio"] == pytest.approx(1.40)
    assert row["output_tok_s_off"] == pytest.approx(258.983, abs=0.01)
    assert row["acceptance_rate"] == pytest.approx(0.5) and row["mean_acceptance_length"] == pytest.approx(
        2.5
    )
    assert len(section["levels"]) == len(OFF["levels"])
    # The report's records: a value with its measurement, three per level (tok/s both ways, acceptance).
    assert len(section["rows"]) == 3 * len(OFF["levels"])
    first = section["rows"][0]
    assert first["label"] == "ngram and off at 1 streams: output throughput, ngram"
    assert first["unit"] == "tok/s" and first["measured"].startswith("aimachine-bench, bench.json levels c1")


def test_faster_alone_but_slower_at_the_teams_concurrency_keeps_off():
    # The common case: speculation helps one stream and costs throughput when the batch is full.
    suffix = _on({1: 1.50, 2: 1.3, 4: 1.1, 8: 1.0, 16: 0.9, 32: 0.85, 64: 0.8})
    section = speculation.report_section(meta={}, bench={"off": OFF, "suffix": suffix})
    assert section["decision"]["choice"] == "off"
    assert (
        "suffix: no clear difference than off" in section["text"] or "no clear difference" in section["text"]
    )
    assert "off stays" in section["text"]


def test_slower_everywhere_and_the_best_of_two_methods():
    slow = _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 0.9))
    better = _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 1.2))
    good = _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 1.1))
    section = speculation.report_section(bench={"off": OFF, "ngram": good, "suffix": better, "draft": slow})
    assert section["decision"]["choice"] == "suffix"
    assert section["decision"]["verdicts"]["draft"]["verdict"] == "slower"


def test_within_the_noise_margin_is_a_draw():
    close = _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 1.02))
    assert speculation.report_section(bench={"off": OFF, "ngram": close})["decision"]["choice"] == "off"


def test_no_counters_means_it_did_not_speculate_and_is_never_chosen():
    fake = _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 1.5), spec=False)
    section = speculation.report_section(bench={"off": OFF, "ngram": fake})
    assert section["decision"]["choice"] == "off"
    assert "ngram: did not speculate (no spec_decode counters)" in section["text"]


def test_random_weights_never_claim_a_speedup():
    ngram = _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 1.2))
    section = speculation.report_section(
        meta={"model": {"random_weights": True}}, bench={"off": OFF, "ngram": ngram}
    )
    assert section["decision"]["choice"] is None
    assert "random weights" in section["decision"]["reason"]
    assert "Faster here" not in section["text"]


def test_different_workloads_are_not_compared_and_absent_runs_say_so():
    other = _on({})
    other["workload"] = dict(other["workload"], stop="natural")
    section = speculation.report_section(bench={"off": OFF, "ngram": other})
    assert section["decision"]["verdicts"]["ngram"]["verdict"] == "not comparable"
    assert section["decision"]["choice"] == "off"
    # Not measured both ways (a plain bench.json, as report/strategies.py passes): nothing to show.
    assert speculation.report_section(bench={"off": OFF}) == {}
    assert speculation.report_section(bench=OFF) == {}
    assert speculation.report_section() == {}


def test_history_names_an_earlier_other_choice():
    ngram = _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 1.2))
    history = [{"speculation": {"decision": {"choice": "off"}}}]
    text = speculation.report_section(bench={"off": OFF, "ngram": ngram}, history=history)["text"]
    assert text.endswith("The previous report chose off.")


def test_the_report_carries_the_section():
    ngram = _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 1.2))
    report = build_report(Inputs(meta={}, bench=OFF, quality=None, speculation={"off": OFF, "ngram": ngram}))
    spec = report["strategies"]["speculation"]
    assert spec["available"] is True and spec["decision"]["choice"] == "ngram"
    assert (
        build_report(Inputs(meta={}, bench=OFF, quality=None))["strategies"]["speculation"]["available"]
        is False
    )
    # Rendered with every number's provenance (the report's audit stays clean).
    text = render.render_markdown(report)
    assert "**Speculative decoding**: ngram against off: faster" in text
    assert doc.audit(render.render_blocks(report)) == []


def test_the_command_line_decides_from_a_directory(tmp_path, capsys):
    for label, bench in (("off", OFF), ("ngram", _on(dict.fromkeys((1, 2, 4, 8, 16, 32, 64), 0.8)))):
        (tmp_path / label).mkdir()
        (tmp_path / label / "bench.json").write_text(json.dumps(bench), encoding="utf-8")
    assert speculation.main([str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["choice"] == "off" and "ngram against off: slower" in out["text"]
    speculation.main([str(tmp_path), "--random-weights"])
    assert json.loads(capsys.readouterr().out)["choice"] is None
