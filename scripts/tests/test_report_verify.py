"""aimachine-verify end to end against a real `transformers serve` with the tiny model.

Once per deployment: the first run measures and writes the history and `latest`; a second run of
the same deployment does nothing; a forced run measures again and reports the changes since the
first; `gates` re-checks the latest report against new thresholds without measuring.
"""

from __future__ import annotations

import json
import tarfile

import pytest
from aimachine.report import cli

pytestmark = pytest.mark.e2e


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
                    "humaneval,scenarios",
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


def test_verify_once_per_deployment(live_server, tmp_path):
    config = _config(live_server, tmp_path)
    state = tmp_path / "state"
    before = cli.plan(config)
    assert before["would_run"] and before["latest"] is None

    first = cli.run(config, "quick", force=False)
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
    assert report["cost"]["available"] and report["quality"]["not_run"] == ["MBPP"]
    assert (latest / "report.md").exists() and (latest / "clients" / "openai-env.sh").exists()
    with tarfile.open(latest / "bundle.tar.gz") as tar:
        names = set(tar.getnames())
    on_disk = {p.relative_to(latest).as_posix() for p in latest.rglob("*") if p.is_file()}
    assert names == on_disk - {"bundle.tar.gz"}

    assert not cli.plan(config)["would_run"]
    again = cli.run(config, "quick", force=False)
    assert again == {
        "ran": False,
        "reason": "the latest report has this deployment's fingerprint",
        "fingerprint": before["fingerprint"],
    }

    forced = cli.run(config, "quick", force=True)
    assert forced["ran"] and forced["stamp"] != first["stamp"]
    second = json.loads((state / "latest" / "report.json").read_text())
    assert second["changes"]["previous"]["generated_at"] == report["generated_at"]
    assert len(second["trend"]) == 2

    strict = _config(
        live_server, tmp_path, [{"metric": "single_stream_tokens_per_s", "min": 1e6, "severity": "fail"}]
    )
    verdict = cli.gates(strict, None)
    assert not verdict["passed"]
    assert verdict["failed"][0].startswith(
        "single_stream_tokens_per_s: measured "
        f"{second['metrics']['single_stream_tokens_per_s']:.4g}, required >= 1e+06"
    )
