"""aimachine-verify end to end against a real `transformers serve` with the tiny model.

Once per deployment: the first run measures and writes the history and `latest`; a second run of
the same deployment does nothing; a forced run measures again and reports the changes since the
first; `gates` re-checks the latest report against new thresholds without measuring.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from aimachine.report import verify

MBPP = Path(__file__).resolve().parents[3] / "shared" / "data" / "mbpp" / "sanitized-mbpp.json"


def _config(live_server, tmp_path, gates=None):
    return {
        "state_dir": str(tmp_path / "state"),
        "base_url": live_server.base_url,
        "model": live_server.model,
        "model_dir": str(live_server.model_dir),
        "service": "aimachine-test-no-such-unit",
        "fingerprint_files": [str(live_server.model_dir / "config.json")],
        "declared": {
            "mode": "cpu",
            "model": {"id": "aimachine/tiny-qwen2", "revision": None, "test_model": True},
            "engine": {"name": "transformers"},
            "clients": {
                "base_url": live_server.base_url + "/v1",
                "model": live_server.model,
                "key_env": "AIMACHINE_API_KEY",
            },
        },
        "default_mode": "quick",
        "modes": {
            "quick": {
                "bench": [
                    "--concurrency",
                    "1",
                    "--num-requests",
                    "3",
                    "--warmup",
                    "1",
                    "--input-len",
                    "48",
                    "--output-len",
                    "16",
                ],
                "quality": [
                    "--suites",
                    "humaneval,mbpp,scenarios",
                    "--mbpp-path",
                    str(MBPP),
                    "--limit",
                    "1",
                    "--max-tokens",
                    "32",
                    "--workers",
                    "1",
                ],
            }
        },
        "gates": gates or [{"metric": "error_rate", "max": 0.0, "severity": "fail"}],
        "cost": {
            "electricity_price_per_kwh": 0.3,
            "cpu_load_watts": 65,
            "hardware_price": 450,
            "api_prices": [{"name": "GPT-4", "price_per_million": 30, "source": "origin document"}],
        },
    }


@pytest.mark.e2e
def test_verify_once_per_deployment(live_server, tmp_path):
    config = _config(live_server, tmp_path)
    state = tmp_path / "state"
    before = verify.plan(config)
    assert before["would_run"] and before["latest"] is None

    first = verify.run(config, "quick", force=False)
    assert first["ran"] and first["health_ok"] and first["bench_exit"] == 0 and first["quality_exit"] == 0
    assert first["gates"]["passed"]
    latest = state / "latest"
    assert latest.is_symlink() and latest.resolve().name == first["stamp"]
    report = json.loads((latest / "report.json").read_text())
    bench = json.loads((latest / "bench" / "bench.json").read_text())
    assert (
        report["metrics"]["single_stream_tokens_per_s"]
        == bench["levels"][0]["summary"]["decode_tokens_per_s_per_stream"]
    )
    assert report["metadata"]["fingerprint"] == before["fingerprint"]
    assert report["metadata"]["host"]["cpus"] and report["label"]["banner"].startswith("CPU MODE")
    assert report["cost"]["available"] and report["quality"]["not_run"] == []
    assert report["metrics"]["mbpp_problems"] == 1  # MBPP in the quick mode
    assert bench["workload"]["goodput_slo_ms"] == {"ttft": 2000.0, "tpot": 50.0}  # the chat SLO
    assert report["capacity"]["levels"][0]["basis"] == "the benchmark's goodput at these limits"
    assert (latest / "report.md").exists() and (latest / "clients" / "openai-env.sh").exists()
    with tarfile.open(latest / "bundle.tar.gz") as tar:
        names = set(tar.getnames())
    on_disk = {p.relative_to(latest).as_posix() for p in latest.rglob("*") if p.is_file()}
    assert names == on_disk - {"bundle.tar.gz"}

    assert not verify.plan(config)["would_run"]
    again = verify.run(config, "quick", force=False)
    assert again == {
        "ran": False,
        "reason": "the latest report has this deployment's fingerprint",
        "fingerprint": before["fingerprint"],
    }

    forced = verify.run(config, "quick", force=True)
    assert forced["ran"] and forced["stamp"] != first["stamp"]
    second = json.loads((state / "latest" / "report.json").read_text())
    assert second["changes"]["previous"]["generated_at"] == report["generated_at"]
    assert len(second["trend"]) == 2

    strict = _config(
        live_server, tmp_path, [{"metric": "single_stream_tokens_per_s", "min": 1e6, "severity": "fail"}]
    )
    verdict = verify.gates(strict, None)
    assert not verdict["passed"]
    assert verdict["failed"][0].startswith(
        "single_stream_tokens_per_s: measured "
        f"{second['metrics']['single_stream_tokens_per_s']:.4g}, required >= 1e+06"
    )


def test_command_lines_per_served_model(tmp_path):
    """Contract 3's list: chat as today (with the chat SLO's goodput), the autocomplete model with the FIM
    workload and the infill suite, the embedding model with the embeddings workload and retrieval, each
    into its own directory; a rerank model is not measured."""
    config = {
        "state_dir": str(tmp_path),
        "base_url": "http://127.0.0.1:8000",
        "model": "chat",
        "api_key_file": "/etc/aimachine/verify/api_key",
        "models": [
            {
                "name": "fim",
                "role": "autocomplete",
                "base_url": "http://127.0.0.1:8001/v1",
                "model_dir": "/m/fim",
                "fim": {
                    "prefix": "<|fim_prefix|>",
                    "suffix": "<|fim_suffix|>",
                    "middle": "<|fim_middle|>",
                    "stop": ["\n\n"],
                },
            },
            {"name": "chat", "role": "chat", "base_url": "http://127.0.0.1:8000/v1", "model_dir": "/m/chat"},
            {"name": "emb", "role": "embed", "base_url": "http://127.0.0.1:8002/v1"},
            {"name": "rr", "role": "rerank", "base_url": "http://127.0.0.1:8003/v1"},
        ],
        "modes": {
            "quick": {
                "bench": ["--concurrency", "1,4"],
                "quality": ["--suites", "humaneval,mbpp,scenarios", "--limit", "20"],
                "autocomplete": {"bench": ["--num-requests", "16"], "quality": ["--limit", "20"]},
                "embed": {"bench": ["--num-requests", "16"], "quality": []},
            }
        },
        "capacity": {"chat_slo": {"ttft_ms": 2000, "tpot_ms": 50}, "autocomplete_slo": {"ttft_ms": 300}},
    }
    out, bin_dir = tmp_path / "run", Path("/venv/bin")
    got = {(c["model"], c["tool"]): c for c in verify.tool_commands(config, "quick", out, bin_dir)}
    key = ["--api-key-file", "/etc/aimachine/verify/api_key"]
    assert [k for k in got] == [
        ("chat", "bench"),
        ("chat", "quality"),
        ("fim", "bench"),
        ("fim", "quality"),
        ("emb", "bench"),
        ("emb", "quality"),
    ]
    bench = "/venv/bin/aimachine-bench"
    assert got["chat", "bench"]["argv"] == [
        bench, "--base-url", "http://127.0.0.1:8000", "--model", "chat", *key, "--no-progress",
        "--output", str(out / "bench"), "--model-dir", "/m/chat",
        "--goodput", "ttft:2000", "tpot:50", "--concurrency", "1,4",
    ]  # fmt: skip
    assert got["chat", "quality"]["argv"][-6:] == [
        "--output",
        str(out / "quality"),
        "--suites",
        "humaneval,mbpp,scenarios",
        "--limit",
        "20",
    ]
    assert got["fim", "bench"]["argv"] == [
        bench, "--base-url", "http://127.0.0.1:8001", "--model", "fim", *key, "--no-progress",
        "--output", str(out / "models/fim/bench"), "--model-dir", "/m/fim",
        "--workload", "fim", "--fim-prefix", "<|fim_prefix|>", "--fim-suffix", "<|fim_suffix|>",
        "--fim-middle", "<|fim_middle|>", "--fim-stop", "\n\n", "--goodput", "ttft:300",
        "--num-requests", "16",
    ]  # fmt: skip
    # The infill suite asks with the model's own FIM markers, as the bench does.
    assert got["fim", "quality"]["argv"][-13:] == [
        str(out / "models/fim/quality"),
        "--suites", "infill",
        "--fim-prefix", "<|fim_prefix|>", "--fim-suffix", "<|fim_suffix|>",
        "--fim-middle", "<|fim_middle|>", "--fim-stop", "\n\n",
        "--limit", "20",
    ]  # fmt: skip
    assert got["emb", "bench"]["argv"][-5:] == [
        str(out / "models/emb/bench"),
        "--workload",
        "embeddings",
        "--num-requests",
        "16",
    ]
    assert got["emb", "quality"]["argv"][-3:] == [str(out / "models/emb/quality"), "--suites", "retrieval"]
    assert got["fim", "bench"]["log"] == out / "logs" / "fim-bench.log"
    # one model as before: no list, today's fields
    single = verify.tool_commands({**config, "models": []}, "quick", out, bin_dir)
    assert [c["model"] for c in single] == ["chat", "chat"]


def test_mbpp_left_out_only_when_it_was_to_be_downloaded():
    argv = ["q", "--suites", "humaneval,mbpp,scenarios", "--limit", "20"]
    assert verify.without_mbpp(argv) == ["q", "--suites", "humaneval,scenarios", "--limit", "20"]
    assert verify.without_mbpp([*argv, "--mbpp-path", "/x"]) is None
    assert verify.without_mbpp(["q", "--suites", "mbpp"]) is None
    assert verify.without_mbpp(["q", "--suites", "humaneval"]) is None
