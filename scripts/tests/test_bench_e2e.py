"""aimachine-bench end to end against a real `transformers serve` with the tiny model (live_server)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from aimachine.bench.cli import main
from aimachine.bench.client import replay

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# Eight tokens out, levels of one and two streams, three requests each after one warm-up.
SMALL_SWEEP = ("--output-len", "8", "--concurrency", "1,2", "--num-requests", "3", "--warmup", "1")


def args_for(server, *extra: str) -> list[str]:
    return ["--base-url", server.base_url, "--model", server.model, *extra]


@pytest.mark.e2e
def test_sweep_writes_everything_and_the_numbers_hold_together(
    live_server, tmp_path: Path, monkeypatch, capfd
):
    monkeypatch.setenv("OPENAI_API_KEY", live_server.api_key)
    out = tmp_path / "run"
    code = main(
        args_for(
            live_server,
            "--model-dir",
            str(live_server.model_dir),
            "--input-len",
            "40",
            *SMALL_SWEEP,
            "--goodput",
            "ttft:60000",
            "--bandwidth-gbs",
            "100",
            "--record-streams",
            "--output",
            str(out),
        )
    )
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert "c2" in captured.err and "req" in captured.err  # the progress bar, on stderr
    assert "out tok/s" in captured.out

    doc = json.loads((out / "bench.json").read_text())
    assert doc["schema_version"] == "1.1"
    assert doc["command_line"][-1] == str(out)
    assert live_server.api_key not in (out / "bench.json").read_text()
    assert doc["server"]["model"] == live_server.model
    assert doc["workload"]["ignore_eos_sent"] is False  # transformers serve rejects the field
    assert [lv["name"] for lv in doc["levels"]] == ["c1", "c2"]
    for level in doc["levels"]:
        s = level["summary"]
        assert (s["completed"], s["errors"]) == (3, 0)
        assert s["prompt_tokens_check"] == {"checked": 3, "exact": 3, "mismatches": []}  # server agrees: 40
        assert s["token_count_sources"] == {"usage": 3}
        assert s["output_throughput"] == pytest.approx(s["total_output_tokens"] / s["duration_s"])
        assert s["goodput"]["requests_meeting_slo"] == 3
        assert level["end_s"] > level["start_s"]
    measured = [r for r in doc["requests"] if not r["warmup"]]
    assert len(measured) == 6 and sum(r["warmup"] for r in doc["requests"]) == 1
    for r in measured:
        assert r["prompt_tokens"] == 40
        assert r["output_tokens"] == 8 or r["finish_reason"] == "stop"
        times = r["output_times_s"]
        assert r["ttft_ms"] == pytest.approx(times[0] * 1000, abs=1e-3)
        assert r["e2el_ms"] == pytest.approx(times[-1] * 1000, abs=1e-3)
        if r["output_tokens"] > 1:
            assert r["tpot_ms"] == pytest.approx(
                (times[-1] - times[0]) * 1000 / (r["output_tokens"] - 1), abs=1e-2
            )

    # transformers serve has no /metrics: no server figures, said once, per level None.
    assert doc["server_metrics"]["available"] is False
    assert "404" in doc["server_metrics"]["reason"] and doc["server_metrics"]["errors"] == {}
    assert [lv["server_metrics"] for lv in doc["levels"]] == [None, None]
    for level in doc["levels"]:
        assert level["goodput"] == {
            "slo": {"ttft": 60000.0},
            "requests_per_s": pytest.approx(3 / level["summary"]["duration_s"]),
            "fraction": 1.0,
            "requests_meeting_slo": 3,
            "requests": 3,
        }

    # Telemetry: absent here with the reason; on a GPU machine, samples at >= 5 Hz.
    telemetry = doc["telemetry"]
    if telemetry["available"]:
        assert telemetry["achieved_hz"] >= 5
    else:
        assert "NVML" in telemetry["reason"]

    roof = doc["roofline"]
    assert roof["available"] and roof["bandwidth_source"] == "--bandwidth-gbs"
    c1 = doc["levels"][0]["summary"]
    assert roof["measured_tokens_per_s"] == pytest.approx(c1["decode_tokens_per_s_per_stream"])
    assert roof["bound_tokens_per_s"] == pytest.approx(100e9 / roof["model_bytes"]["decode_step_bytes"])
    assert roof["percent_of_bound"] == pytest.approx(
        100 * roof["measured_tokens_per_s"] / roof["bound_tokens_per_s"]
    )

    rows = list(csv.DictReader((out / "bench.csv").open()))
    assert [row["level"] for row in rows] == ["c1", "c2"]
    assert float(rows[1]["ttft_p99_ms"]) == pytest.approx(
        doc["levels"][1]["summary"]["ttft_ms"]["p99"], rel=1e-5
    )
    for name in ("throughput.png", "latency.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000

    # The recorded raw streams replay to the same numbers the live run measured.
    streams = [json.loads(line) for line in (out / "streams.jsonl").read_text().splitlines()]
    assert len(streams) == 7
    assert "Authorization" not in json.dumps(streams)
    record = next(s for s in streams if s["level"] == "c2" and s["index"] == 1)
    reads = [(t, text.encode("utf-8", "surrogateescape")) for t, text in record["reads"]]
    live = next(r for r in measured if r["level"] == "c2" and r["index"] == 1)
    assert replay(reads, "chat").output_times[0] * 1000 == pytest.approx(live["ttft_ms"], abs=1e-3)


@pytest.mark.e2e
def test_poisson_rate_completions_and_coding_prompts(live_server, tmp_path: Path) -> None:
    out = tmp_path / "rate"
    code = main(
        args_for(
            live_server,
            "--api",
            "completions",
            "--dataset",
            "coding",
            "--stop",
            "natural",
            "--output-len",
            "6",
            "--request-rate",
            "4",
            "--num-requests",
            "4",
            "--warmup",
            "0",
            "--no-progress",
            "--output",
            str(out),
        )
    )
    assert code == 0
    doc = json.loads((out / "bench.json").read_text())
    level = doc["levels"][0]
    assert (level["name"], level["request_rate"]) == ("r4", 4.0)
    assert level["summary"]["completed"] == 4
    offsets = [r["send_offset_s"] for r in doc["requests"]]
    assert offsets == sorted(offsets) and offsets[0] < 0.05
    assert all(r["prompt_source"].startswith("coding:") for r in doc["requests"])
    assert doc["roofline"] == {
        "available": False,
        "reason": "no --model-dir: the bytes a decode step reads come from the weights",
    }


@pytest.mark.e2e
def test_fim_workload_on_completions(live_server, tmp_path: Path) -> None:
    out = tmp_path / "fim"
    prompts = tmp_path / "fim.jsonl"
    code = main(
        args_for(
            live_server,
            "--workload",
            "fim",
            *SMALL_SWEEP,
            "--goodput",
            "ttft:60000",
            "e2el:60000",
            "--save-prompts",
            str(prompts),
            "--fim-stop",
            "\n\n",
            "<|endoftext|>",
            "--no-progress",
            "--record-streams",
            "--output",
            str(out),
        )
    )
    assert code == 0
    doc = json.loads((out / "bench.json").read_text())
    assert doc["workload"]["name"] == "fim" and doc["server"]["api"] == "completions"
    assert doc["workload"]["stop"] == "natural" and doc["workload"]["ignore_eos_sent"] is False
    sent = [json.loads(line) for line in prompts.read_text().splitlines()]
    assert len(sent) == 6
    streams = [json.loads(line) for line in (out / "streams.jsonl").read_text().splitlines()]
    assert all(s["url"].endswith("/v1/completions") for s in streams)
    for s in streams:
        prompt = s["body"]["prompt"]
        assert prompt.startswith("<|fim_prefix|>") and prompt.endswith("<|fim_middle|>")
        assert "<|fim_suffix|>" in prompt and s["body"]["max_tokens"] == 8 and "ignore_eos" not in s["body"]
        assert s["body"]["stop"] == ["\n\n", "<|endoftext|>"]  # accepted: every request succeeded
    for level in doc["levels"]:
        s = level["summary"]
        assert (s["completed"], s["errors"]) == (3, 0)
        assert s["ttft_ms"]["p99"] >= s["ttft_ms"]["p50"] > 0 and s["e2el_ms"]["p99"] >= s["ttft_ms"]["p99"]
        assert level["goodput"]["fraction"] == 1.0 and level["server_metrics"] is None
    measured = [r for r in doc["requests"] if not r["warmup"]]
    # The server counted the whole raw prompt (markers as text: the tiny model has no FIM tokens).
    assert all(r["prompt_source"].startswith("fim:HumanEval/") and r["prompt_tokens"] > 50 for r in measured)


@pytest.mark.e2e
def test_server_side_failures_are_reported_clearly(live_server, tmp_path: Path, capsys) -> None:
    common = [
        "--dataset",
        "coding",
        "--output-len",
        "4",
        "--concurrency",
        "1",
        "--num-requests",
        "1",
        "--no-progress",
    ]
    assert main(args_for(live_server, "--ignore-eos", "yes", *common)) == 1
    err = capsys.readouterr().err
    assert "every warm-up request failed" in err and "ignore_eos" in err  # the server's own words (HTTP 422)

    assert main(["--base-url", live_server.base_url, "--model", "not-served", *common]) == 1
    assert "'not-served' is not served" in capsys.readouterr().err

    # No answer within 2 ms: the request fails, the run still reports (exit 3).
    assert main(args_for(live_server, "--warmup", "0", "--timeout", "0.002", *common)) == 3
    assert "Timeout" in capsys.readouterr().err


def test_unreachable_server(tmp_path: Path, capsys) -> None:
    from conftest import free_port

    code = main(["--base-url", f"http://127.0.0.1:{free_port()}", "--dataset", "coding", "--no-progress"])
    assert code == 1
    assert "cannot reach" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--goodput", "ttft:soon"], "is not a number"),
        (["--gpu-name", "Voodoo 3"], "unknown card"),
        (["--dataset", "random"], "need the served model's tokenizer"),
        (["--workload", "embeddings", "--goodput", "ttft:100"], "embeddings answer at once"),
    ],
)
def test_bad_arguments_exit_2_before_contacting_anything(argv: list[str], message: str, capsys) -> None:
    assert main(["--base-url", "http://127.0.0.1:9", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-concurrency", "4"],
        ["--telemetry-hz", "2"],
        ["--percentiles", "100"],
        ["--concurrency", "1,x"],
        ["--extra-body", "[1]"],
        ["--workload", "embeddings", "--output-len", "8"],
        ["--workload", "fim", "--api", "chat"],
        ["--batch-size", "4"],
        ["--workload", "fim", "--fim-middle", ""],
        ["--metrics-url", "http://127.0.0.1:9/metrics", "--no-server-metrics"],
    ],
)
def test_parser_rejects(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--base-url", "http://127.0.0.1:9", *argv])
    assert exit_info.value.code == 2
