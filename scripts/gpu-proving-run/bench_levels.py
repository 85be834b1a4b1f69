"""`vllm bench serve` at several levels in one process (vLLM's import costs 15-25 s per start).

Usage: python bench_levels.py OUT_DIR LABEL LEVELS [vllm bench serve options ...]
LABEL: one name, or several NAME@PORT separated by commas: then every level is run against each
of those servers on 127.0.0.1 in turn, in that order (configs served at once, interleaved level by
level, one import of vLLM for all).
LEVELS: comma-separated entries CONCURRENCY[:INPUT_LEN:OUTPUT_LEN] (default 512 in, 128 out),
each run with --num-prompts max(K x concurrency, 4 x K) (K = $PROMPTS_PER_STREAM, default 4; half that
for prompts over 2,048 tokens),
random dataset, ignore_eos, seed $BENCH_SEED + concurrency (default 1000: give each turn its own, so
no turn meets the prompts of an earlier one in the prefix cache; the configs of one turn get the
same prompts). A level whose result file exists is skipped: a run cut short resumes.
Writes OUT_DIR/LABEL-cC-I.json (vLLM's own result file, with each
request's TTFT and start time kept from --save-detailed: run 9's p50 at 32 streams jumped by a
prefill step between turns, and only the requests show why) and prints one line per level:
output tok/s, TTFT mean/p50/p99, TPOT mean. Falls back to one CLI call per level
when vLLM's benchmark module cannot be imported this way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def level_args(out: Path, label: str, spec: str) -> tuple[str, list[str]]:
    parts = spec.split(":")
    c = int(parts[0])
    ilen, olen = (int(parts[1]), int(parts[2])) if len(parts) == 3 else (512, 128)
    k = int(os.environ.get("PROMPTS_PER_STREAM", "4"))
    seed = int(os.environ.get("BENCH_SEED", "1000")) + c  # more prompts: steadier TTFT percentiles
    n = max(k * c, 4 * k) if ilen <= 2048 else max(k // 2 * c, 2 * k)
    name = f"{label}-c{c}-{ilen}.json"
    return name, [
        "--dataset-name", "random", "--random-input-len", str(ilen), "--random-output-len", str(olen),
        "--ignore-eos", "--num-prompts", str(n), "--max-concurrency", str(c), "--seed", str(seed),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
        "--disable-tqdm", "--save-result", "--save-detailed",
        "--result-dir", str(out), "--result-filename", name,
    ]  # fmt: skip


# --save-detailed's bulky fields (every token's latency, the texts): not needed, and too big to carry back.
BULKY = ("itls", "generated_texts", "input_lens", "output_lens", "errors")


def slim(path: Path) -> None:
    r = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in r.items() if k not in BULKY}))


def summary(path: Path) -> str:
    r = json.loads(path.read_text())
    return (
        f"{path.name}: out {r.get('output_throughput', 0):.0f} tok/s, "
        f"TTFT mean {r.get('mean_ttft_ms', 0):.1f} "
        f"p50 {r.get('median_ttft_ms', 0):.1f} p99 {r.get('p99_ttft_ms', 0):.1f} ms, "
        f"TPOT mean {r.get('mean_tpot_ms', 0):.2f} ms, completed {r.get('completed')}"
    )


def targets(label: str) -> list[tuple[str, list[str]]]:
    """(label, extra options) for each server: NAME@PORT overrides --base-url (the last one wins)."""
    if "@" not in label:
        return [(label, [])]
    pairs = [item.rsplit("@", 1) for item in label.split(",")]
    return [(name, ["--base-url", f"http://127.0.0.1:{int(port)}"]) for name, port in pairs]


def main() -> None:
    out, label, levels, rest = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4:]
    out.mkdir(parents=True, exist_ok=True)
    try:
        from vllm.benchmarks.serve import add_cli_args  # noqa: PLC0415
        from vllm.benchmarks.serve import main as bench_main  # noqa: PLC0415
        from vllm.utils.argparse_utils import FlexibleArgumentParser  # noqa: PLC0415
    except ImportError as error:
        print(f"in-process bench unavailable ({error}); one CLI call per level", flush=True)
        bench_main = None
    for spec, (target, override) in [(s, t) for s in levels for t in targets(label)]:
        name, args = level_args(out, target, spec)
        if (out / name).exists():
            print(f"{name}: done before, skipped", flush=True)
            continue
        args += override
        t0 = time.time()
        if bench_main is None:
            cli = [sys.executable, "-m", "vllm.entrypoints.cli.main", "bench", "serve"]
            subprocess.run([*cli, *rest, *args], check=False)
        else:
            parser = FlexibleArgumentParser()
            add_cli_args(parser)
            try:
                bench_main(parser.parse_args([*rest, *args]))
            except Exception as error:  # one level failing must not stop the others
                print(f"{name}: failed: {error!r}", flush=True)
        done = out / name
        if done.exists():
            slim(done)
        line = summary(done) if done.exists() else f"{name}: no result"
        print(line, f"({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
