"""aimachine-bench: measure an OpenAI-compatible endpoint's throughput and latency, reproducibly.

Workloads: `generate` (chat or completions, random or coding prompts), `fim` (short
fill-in-the-middle requests of an autocomplete model on /v1/completions) and `embeddings`
(batches of code snippets on /v1/embeddings). Around each level the server's Prometheus
/metrics are read (vLLM's counters; none on `transformers serve`).

Exit status: 0 all measured requests succeeded; 3 results written but some requests failed;
1 the run could not be done (server, model, warm-up); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aimachine import __version__, endpoint
from aimachine.bench import SCHEMA_VERSION
from aimachine.bench.client import Endpoint
from aimachine.bench.metrics import (
    DEFAULT_PERCENTILES,
    RequestMetrics,
    goodput_block,
    parse_goodput,
    request_metrics,
    summarize,
)
from aimachine.bench.output import write_all
from aimachine.bench.roofline import RooflineError, card_bandwidth, decode_bytes, resolve_bandwidth, roofline
from aimachine.bench.runner import BenchError, LevelRun, Sending, Sent, run_levels, server_models
from aimachine.bench.server_metrics import Scraper, not_read
from aimachine.bench.telemetry import MIN_HZ, GpuSampler
from aimachine.bench.workloads import (
    FimTokens,
    Level,
    ModelTokenizer,
    Prompt,
    WorkloadError,
    coding_prompts,
    concurrency_levels,
    cycle,
    embedding_batches,
    fim_prompts,
    random_prompts,
    rate_levels,
)

WORKLOADS = ("generate", "fim", "embeddings")
DEFAULT_CONCURRENCY = "1,2,4,8,16,32"
# A typing user is one stream, a team a few; an indexer sends a few batches at once.
WORKLOAD_CONCURRENCY = {"generate": DEFAULT_CONCURRENCY, "fim": "1,2,4", "embeddings": "1,4,16"}
# Requests per level when not given: (per stream, at least). FIM requests are short, and p99 wants many.
WORKLOAD_REQUESTS = {"generate": (4, 8), "fim": (8, 32), "embeddings": (4, 16)}
DEFAULT_OUTPUT_LEN = {"generate": 128, "fim": 64}
DEFAULT_BATCH_SIZE = 16
# Above this share of a core the client's own event loop may delay what it measures.
CLIENT_BUSY = 0.8
DEFINITIONS = {
    "ttft": "first event carrying output - send",
    "tpot": "(e2el - ttft) / (output_tokens - 1), per request with > 1 token",
    "itl": "gaps between consecutive output events, pooled over requests",
    "e2el": "last event carrying output - send",
    "output_throughput": "total output tokens / level wall time",
    "output_tokens": "server usage.completion_tokens; fallback recorded per request",
    "goodput": "requests meeting every --goodput SLO / level wall time (vLLM's); fraction: of all requests",
    "server_metrics": "deltas of the server's Prometheus counters read just before and after the level",
    "embeddings": "e2el = last byte of the answer - send; inputs/s, usage.prompt_tokens/s per wall time",
    "reference": "docs/metrics.md (vLLM bench serve definitions)",
}


def _list_of(kind: type, what: str) -> Callable[[str], list[Any]]:
    """An argparse type: comma-separated values of `kind` (`what` names them in the error)."""

    def parse(text: str) -> list[Any]:
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} separated by commas, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("expected at least one value")
        return values

    return parse


_int_list = _list_of(int, "integers")
_float_list = _list_of(float, "numbers")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aimachine-bench",
        description="Streaming throughput/latency benchmark of an OpenAI-compatible endpoint "
        "(vLLM's metric definitions; see docs/metrics.md).",
        epilog="The API key is read from the environment (--api-key-env) or a file, "
        "never from the command line.",
    )
    server = parser.add_argument_group("server")
    server.add_argument("--base-url", required=True, help="server root, e.g. http://127.0.0.1:8000 (no /v1)")
    server.add_argument("--model", help="served model name (default: the only model /v1/models lists)")
    server.add_argument(
        "--api",
        choices=("chat", "completions"),
        help="endpoint of --workload generate (default chat); fim uses completions, embeddings its own",
    )
    server.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key"
    )
    server.add_argument("--api-key-file", type=Path, help="file holding the key (first line)")
    server.add_argument(
        "--ca-cert",
        type=Path,
        help="PEM CA file to trust for an https --base-url (frontdoor-ca.crt); default: the system store",
    )
    server.add_argument(
        "--timeout", type=float, default=600.0, help="seconds without data before a request fails"
    )
    server.add_argument(
        "--metrics-url",
        help="the server's Prometheus endpoint, read around each level with the same key and CA "
        "(default: BASE_URL/metrics; the front door serves it to loopback only, the engine on its own port)",
    )
    server.add_argument("--no-server-metrics", action="store_true", help="do not read the server's /metrics")

    work = parser.add_argument_group("workload")
    work.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="generate",
        help="generate: chat/completions generation (default); fim: fill-in-the-middle autocomplete "
        "requests on /v1/completions; embeddings: batches of code snippets on /v1/embeddings",
    )
    work.add_argument(
        "--model-dir",
        type=Path,
        help="served model's directory: tokenizer for exact lengths, weights for the roofline",
    )
    work.add_argument("--tokenizer", type=Path, help="tokenizer.json or its directory, if not in --model-dir")
    work.add_argument(
        "--dataset",
        choices=("random", "coding"),
        help="generate: random (default), prompts of exactly --input-len tokens; coding: the packaged "
        "coding prompts (fim and embeddings always cut HumanEval's code)",
    )
    work.add_argument(
        "--input-len", type=_positive_int, default=512, help="prompt tokens, template included (random)"
    )
    work.add_argument(
        "--output-len",
        type=_positive_int,
        help="max_tokens of every request (default 128; fim 64)",
    )
    work.add_argument(
        "--stop",
        choices=("fixed", "natural"),
        help="fixed (generate's default): ask for exactly --output-len tokens (ignore_eos where the server "
        "has it); natural (fim's default): stop at end of sequence, --output-len is the cap",
    )
    work.add_argument(
        "--ignore-eos",
        choices=("auto", "yes", "no"),
        default="auto",
        help="send vLLM's ignore_eos with --stop fixed: auto = only if the server is vLLM",
    )
    work.add_argument("--temperature", type=float, help="sampling temperature (default: the server's)")
    work.add_argument("--extra-body", type=json.loads, help="JSON object merged into every request body")
    work.add_argument("--seed", type=int, default=0, help="seed of prompts and arrival times")
    work.add_argument(
        "--save-prompts",
        type=Path,
        help="also write the prompts as JSONL ({prompt, output_tokens}) "
        "for other clients (vllm bench serve --dataset-name custom, GuideLLM)",
    )

    fim = parser.add_argument_group("fim (autocomplete) workload")
    defaults = FimTokens()
    fim.add_argument(
        "--fim-prefix", default=defaults.prefix, help=f"prefix marker (default {defaults.prefix})"
    )
    fim.add_argument(
        "--fim-suffix", default=defaults.suffix, help=f"suffix marker (default {defaults.suffix})"
    )
    fim.add_argument(
        "--fim-middle", default=defaults.middle, help=f"middle marker (default {defaults.middle})"
    )
    fim.add_argument(
        "--fim-stop",
        nargs="+",
        metavar="TEXT",
        help="stop strings sent with every request, as an editor sends them (the catalog's fim.stop)",
    )

    embed = parser.add_argument_group("embeddings workload")
    embed.add_argument(
        "--batch-size", type=_positive_int, help=f"code snippets a request (default {DEFAULT_BATCH_SIZE})"
    )
    embed.add_argument(
        "--encoding-format",
        choices=("float", "base64"),
        help="how the server sends the vectors (default float; base64: little-endian float32)",
    )

    load = parser.add_argument_group("load")
    mode = load.add_mutually_exclusive_group()
    mode.add_argument(
        "--concurrency",
        type=_int_list,
        help=f"closed-loop streams per level (default {DEFAULT_CONCURRENCY}; fim "
        f"{WORKLOAD_CONCURRENCY['fim']}; embeddings {WORKLOAD_CONCURRENCY['embeddings']})",
    )
    mode.add_argument("--request-rate", type=_float_list, help="Poisson arrivals, requests/s per level")
    load.add_argument(
        "--max-concurrency", type=_positive_int, help="cap on requests in flight (with --request-rate)"
    )
    load.add_argument(
        "--num-requests",
        type=_positive_int,
        help="measured requests per level (default: 4 per stream, at least 8; fim 8 per stream, at least "
        "32; embeddings 4 per stream, at least 16; 10 s of arrivals for a rate)",
    )
    load.add_argument("--warmup", type=int, default=2, help="requests sent first and left out of the metrics")

    report = parser.add_argument_group("report")
    report.add_argument(
        "--goodput", nargs="+", metavar="KEY:MS", help="SLOs, e.g. ttft:500 tpot:50 e2el:10000"
    )
    report.add_argument(
        "--percentiles",
        type=_float_list,
        default=list(DEFAULT_PERCENTILES),
        help="latency percentiles (default 50,90,99)",
    )
    report.add_argument("--output", type=Path, help="directory for bench.json, bench.csv and PNG plots")
    report.add_argument(
        "--record-streams",
        action="store_true",
        help="also write every raw stream with read times to streams.jsonl (for debugging and test fixtures)",
    )
    report.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    gpu = parser.add_argument_group("GPU telemetry and roofline")
    gpu.add_argument("--telemetry-hz", type=float, default=10.0, help=f"NVML sampling rate (>= {MIN_HZ:g})")
    gpu.add_argument("--no-telemetry", action="store_true", help="do not sample the GPU")
    gpu.add_argument("--bandwidth-gbs", type=float, help="memory bandwidth of the server's card, GB/s")
    gpu.add_argument(
        "--gpu-name", help="the server's card, looked up in the bandwidth table (e.g. 'RTX 4080 SUPER')"
    )
    gpu.add_argument("--gpu-index", type=int, default=0, help="which local GPU serves the model (default 0)")
    gpu.add_argument(
        "--kv-dtype-bytes", type=int, help="bytes per KV-cache element (default: the model's dtype)"
    )
    return parser


def read_api_key(args: argparse.Namespace) -> str | None:
    try:
        return endpoint.read_api_key(args.api_key_file, (args.api_key_env,))
    except endpoint.KeyFileError as error:
        raise BenchError(f"--api-key-file: {error}") from None


def read_ca_cert(args: argparse.Namespace) -> str | None:
    if args.ca_cert is None:
        return None
    if not args.ca_cert.is_file():
        raise BenchError(f"--ca-cert {args.ca_cert} is not a file")
    return str(args.ca_cert)


def engine_of(models: dict[str, Any], model: str) -> str:
    """Which engine answers, as far as /v1/models tells (vLLM says owned_by "vllm")."""
    for entry in models.get("data", []):
        if isinstance(entry, dict) and entry.get("id") == model:
            return "vllm" if entry.get("owned_by") == "vllm" else str(entry.get("owned_by") or "unknown")
    return "unknown"


def _request_record(sent: Sent, level: str, index: int, m: Any) -> dict[str, Any]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000.0, 4)

    return {
        "level": level,
        "index": index,
        "warmup": sent.warmup,
        "prompt_source": sent.prompt.source,
        "send_offset_s": round(sent.offset, 6),
        "http_status": sent.result.status,
        "ok": m.ok,
        "error": m.error,
        "ttft_ms": ms(m.ttft),
        "tpot_ms": ms(m.tpot),
        "e2el_ms": ms(m.e2el),
        "output_tokens": m.output_tokens,
        "prompt_tokens": m.prompt_tokens,
        "target_prompt_tokens": sent.prompt.target_tokens,
        "token_count_source": m.token_count_source,
        "output_events": m.output_events,
        "finish_reason": m.finish_reason,
        "output_times_s": [round(t, 6) for t in m.output_times],
        "response_end_s": None if m.response_end is None else round(m.response_end, 6),
        "inputs": m.inputs,
        "embedding_dim": m.embedding_dim,
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_summary(
    levels: list[dict[str, Any]], roof: dict[str, Any], percentiles: list[float], workload: str
) -> None:
    high = f"p{max(percentiles):g}"
    if workload == "embeddings":
        print(
            f"{'level':>8} {'ok':>5} {'err':>4} {'inputs/s':>9} {'tokens/s':>9} {'req/s':>7} "
            f"{'lat p50':>9} {'lat ' + high:>9}   (ms)"
        )
        for level in levels:
            s, e = level["summary"], level["summary"].get("embeddings") or {}
            print(
                f"{level['name']:>8} {s['completed']:>5} {s['errors']:>4} {_fmt(e.get('inputs_per_s')):>9} "
                f"{_fmt(e.get('prompt_tokens_per_s')):>9} {s['request_throughput']:>7.2f} "
                f"{_fmt(s['e2el_ms'].get('p50')):>9} {_fmt(s['e2el_ms'].get(high)):>9}"
            )
    elif workload == "fim":
        print(
            f"{'level':>8} {'ok':>5} {'err':>4} {'req/s':>7} {'out tok/s':>10} "
            f"{'TTFT p50':>9} {'TTFT ' + high:>9} {'E2E p50':>9} {'E2E ' + high:>9} {'tok/req':>7}   (ms)"
        )
        for level in levels:
            s = level["summary"]
            per = s["total_output_tokens"] / s["completed"] if s["completed"] else None
            print(
                f"{level['name']:>8} {s['completed']:>5} {s['errors']:>4} {s['request_throughput']:>7.2f} "
                f"{s['output_throughput']:>10.1f} {_fmt(s['ttft_ms'].get('p50')):>9} "
                f"{_fmt(s['ttft_ms'].get(high)):>9} {_fmt(s['e2el_ms'].get('p50')):>9} "
                f"{_fmt(s['e2el_ms'].get(high)):>9} {_fmt(per):>7}"
            )
    else:
        print(
            f"{'level':>8} {'ok':>5} {'err':>4} {'out tok/s':>10} {'req/s':>7} "
            f"{'TTFT p50':>9} {'TTFT ' + high:>9} {'TPOT p50':>9} {'ITL p50':>8} {'E2E p50':>9}   (ms)"
        )
        for level in levels:
            s = level["summary"]
            print(
                f"{level['name']:>8} {s['completed']:>5} {s['errors']:>4} {s['output_throughput']:>10.1f} "
                f"{s['request_throughput']:>7.2f} {_fmt(s['ttft_ms'].get('p50')):>9} "
                f"{_fmt(s['ttft_ms'].get(high)):>9} {_fmt(s['tpot_ms'].get('p50')):>9} "
                f"{_fmt(s['itl_ms'].get('p50')):>8} {_fmt(s['e2el_ms'].get('p50')):>9}"
            )
    for level in levels:
        line = _server_line(level.get("server_metrics"))
        if line:
            print(f"{level['name']:>8} server: {line}")
    good = [lv for lv in levels if lv.get("goodput")]
    if good:
        print(
            "goodput (" + ", ".join(f"{k} <= {v:g} ms" for k, v in good[0]["goodput"]["slo"].items()) + "): ",
            end="",
        )
        print(
            ", ".join(
                f"{lv['name']} {g['requests_per_s']:.2f} req/s ({100 * (g['fraction'] or 0):.0f}%)"
                for lv in good
                for g in (lv["goodput"],)
            )
        )
    if roof.get("available"):
        measured = roof.get("measured_tokens_per_s")
        text = "n/a" if measured is None else f"{measured:.1f} tok/s = {roof['percent_of_bound']:.0f}%"
        print(
            f"roofline: single-stream decode {text} of the bound {roof['bound_tokens_per_s']:.0f} tok/s "
            f"({roof['bandwidth_gbs']:g} GB/s / {roof['decode_step_bytes'] / 1e9:.3f} GB a step)"
        )
    else:
        print(f"roofline: not available ({roof.get('reason')})")


def _server_line(block: dict[str, Any] | None) -> str:
    """The server's own figures for a level, where it has them."""
    if not block:
        return ""
    parts = []
    spec, prefix = block.get("spec_decode"), block.get("prefix_cache")
    if spec and spec.get("acceptance_rate") is not None:
        parts.append(
            f"spec-decode acceptance {100 * spec['acceptance_rate']:.1f}% "
            f"({spec['accepted_tokens']}/{spec['draft_tokens']}), "
            f"mean length {_fmt(spec['mean_acceptance_length'], 2)}"
        )
    if prefix and prefix.get("hit_rate") is not None:
        parts.append(f"prefix-cache hits {100 * prefix['hit_rate']:.1f}%")
    for key, name in (("queue_time", "queue"), ("ttft", "TTFT")):
        mean = (block.get(key) or {}).get("mean_ms")
        if mean is not None:
            parts.append(f"{name} mean {mean:.1f} ms")
    return "; ".join(parts)


def _served_model(models: dict[str, Any], wanted: str | None, base_url: str) -> str:
    """The model to ask for: --model if the server lists it, else the only one it lists."""
    served = [str(m.get("id")) for m in models.get("data", []) if isinstance(m, dict)]
    if wanted is None:
        if len(served) != 1:
            raise BenchError(f"pass --model: the server lists {len(served)} models ({', '.join(served)})")
        return served[0]
    if served and wanted not in served:
        raise BenchError(f"model {wanted!r} is not served at {base_url}; served: {', '.join(served)}")
    return wanted


def _prompts(
    args: argparse.Namespace, tokenizer: ModelTokenizer | None, levels: list[Level]
) -> tuple[list[Prompt], list[list[Prompt]]]:
    """Warm-up prompts and each level's, all distinct; also written to --save-prompts (measured ones)."""
    total = args.warmup + sum(level.num_requests for level in levels)
    if args.workload == "fim":
        pool = fim_prompts(total, args.seed, FimTokens(args.fim_prefix, args.fim_suffix, args.fim_middle))
    elif args.workload == "embeddings":
        pool = embedding_batches(total, args.batch_size, offset=args.seed)
    elif args.dataset == "random":
        assert tokenizer is not None
        pool = random_prompts(tokenizer, args.api, args.input_len, total, args.seed)
    else:
        pool = cycle(coding_prompts(), total, offset=args.seed)
    warmup, rest = pool[: args.warmup], pool[args.warmup :]
    if args.save_prompts:
        with args.save_prompts.open("w", encoding="utf-8") as handle:
            for prompt in rest:
                record = (
                    {"input": list(prompt.inputs)}
                    if prompt.inputs
                    else {"prompt": prompt.text, "output_tokens": args.output_len}
                )
                handle.write(json.dumps(record) + "\n")
    per_level = []
    for level in levels:
        per_level.append(rest[: level.num_requests])
        rest = rest[level.num_requests :]
    return warmup, per_level


def _level_block(
    level_run: LevelRun,
    metrics: list[RequestMetrics],
    percentiles: list[float],
    slo: dict[str, float],
    *,
    scraper: Scraper | None,
    model: str,
) -> dict[str, Any]:
    """A level's settings, times, summary, goodput, the server's counters and the client's own CPU use."""
    targets = [s.prompt.target_tokens for s in level_run.sent]
    summary = summarize(metrics, level_run.duration, percentiles, slo, targets)
    events = sum(m.output_events for m in metrics)
    busy = level_run.client_cpu_s / level_run.duration
    if busy > CLIENT_BUSY:
        print(
            f"warning: level {level_run.level.name}: the client used {100 * busy:.0f}% of a CPU core; "
            "it may have limited the measurement (see docs/benchmarks.md, client ceiling)",
            file=sys.stderr,
        )
    server = (
        scraper.level(level_run.level.name, level_run.metrics_before, level_run.metrics_after, model)
        if scraper
        else None
    )
    return level_run.level.describe() | {
        "start_s": round(level_run.start, 6),
        "end_s": round(level_run.end, 6),
        "summary": summary,
        "goodput": goodput_block(metrics, level_run.duration, slo),
        "server_metrics": server,
        "client": {
            "cpu_s": level_run.client_cpu_s,
            "cpu_fraction_of_one_core": busy,
            "cpu_us_per_output_event": 1e6 * level_run.client_cpu_s / events if events else None,
            "cpu_us_per_request": 1e6 * level_run.client_cpu_s / len(metrics) if metrics else None,
        },
    }


def _roofline_block(args: argparse.Namespace, levels: list[dict[str, Any]]) -> dict[str, Any]:
    if args.workload == "embeddings":
        return {"available": False, "reason": "embeddings: no token-by-token decode to set against the bound"}
    if args.model_dir is None:
        return {
            "available": False,
            "reason": "no --model-dir: the bytes a decode step reads come from the weights",
        }
    try:
        step = decode_bytes(args.model_dir, args.kv_dtype_bytes)
        bandwidth, source, card = resolve_bandwidth(
            args.bandwidth_gbs, args.gpu_name, args.base_url, args.gpu_index
        )
    except (RooflineError, OSError, json.JSONDecodeError) as error:
        return {"available": False, "reason": str(error)}
    base: dict[str, Any] = {"model_dir": str(args.model_dir), "model_bytes": step.as_dict()}
    if bandwidth is None:
        return base | {"available": False, "reason": source}
    block = base | {"available": True, "bandwidth_source": source, "gpu_name": card, "level": None}
    single = [lv for lv in levels if lv["concurrency"] == 1]
    measured = context = None
    if single:
        s = single[0]["summary"]
        block["level"] = single[0]["name"]
        measured = s["decode_tokens_per_s_per_stream"]
        if s["completed"]:
            # Mean context while decoding: the prompt plus half the answer.
            context = (s["total_prompt_tokens"] + s["total_output_tokens"] / 2) / s["completed"]
    else:
        block["note"] = "no concurrency-1 level in this run, so no single-stream decode speed to compare"
    return block | roofline(step, bandwidth, measured, context)


def _description(args: argparse.Namespace) -> str:
    if args.workload == "fim":
        return f"fim on completions, HumanEval holes / {args.output_len} out ({args.stop})"
    if args.workload == "embeddings":
        return f"embeddings, {args.batch_size} code snippets a request ({args.encoding_format})"
    what = f"{args.input_len} in" if args.dataset == "random" else "coding prompts"
    return f"{args.api}, {what} / {args.output_len} out ({args.stop})"


def _prompt_format(args: argparse.Namespace) -> str:
    if args.workload == "fim":
        return f"raw prompt {args.fim_prefix}PREFIX{args.fim_suffix}SUFFIX{args.fim_middle}"
    if args.workload == "embeddings":
        return "input: a list of code snippets"
    return "chat template of the served model, one user message" if args.api == "chat" else "raw prompt"


def _check_slo(args: argparse.Namespace) -> dict[str, float]:
    slo = parse_goodput(args.goodput or [])
    if args.workload == "embeddings" and set(slo) - {"e2el"}:
        raise WorkloadError(
            f"--goodput {', '.join(sorted(set(slo) - {'e2el'}))}: embeddings answer at once (no "
            "first token, no decode); use e2el:MS, the request's latency"
        )
    if args.gpu_name:
        card_bandwidth(args.gpu_name)  # an unknown card is a usage error, found before the run
    return slo


def _tokenizer(args: argparse.Namespace) -> ModelTokenizer | None:
    tokenizer_path = args.tokenizer or args.model_dir
    tokenizer = ModelTokenizer(tokenizer_path) if tokenizer_path and args.workload != "embeddings" else None
    if args.dataset == "random" and tokenizer is None:
        raise WorkloadError(
            "prompts of an exact length need the served model's tokenizer: pass --model-dir "
            "(or --tokenizer), or use --dataset coding"
        )
    return tokenizer


def _levels(args: argparse.Namespace) -> list[Level]:
    if args.request_rate:
        levels = rate_levels(args.request_rate, args.num_requests, args.max_concurrency)
    else:
        per_stream, at_least = WORKLOAD_REQUESTS[args.workload]
        levels = concurrency_levels(
            args.concurrency or [int(v) for v in WORKLOAD_CONCURRENCY[args.workload].split(",")],
            args.num_requests,
            per_stream,
            at_least,
        )
    if args.warmup < 0:
        raise WorkloadError(f"--warmup must be >= 0, got {args.warmup}")
    return levels


def _sending(args: argparse.Namespace, endpoint: Endpoint, ignore_eos: bool) -> Sending:
    extra_body = args.extra_body
    if args.fim_stop:
        extra_body = {"stop": list(args.fim_stop)} | (extra_body or {})
    return Sending(
        endpoint,
        max_tokens=args.output_len or 0,
        ignore_eos=ignore_eos,
        temperature=args.temperature,
        extra_body=extra_body,
        record_raw=args.record_streams,
        encoding_format=args.encoding_format or "float",
    )


def _measure(
    args: argparse.Namespace,
    sending: Sending,
    levels: list[Level],
    warmup_prompts: list[Prompt],
    level_prompts: list[list[Prompt]],
) -> tuple[list[Sent], list[LevelRun], GpuSampler | None, Scraper | None]:
    """Send the warmup and every level, with the GPU sampler and the /metrics scraper running."""
    sampler = None if args.no_telemetry else GpuSampler(args.telemetry_hz)
    run_t0 = time.perf_counter()
    scraper = (
        None
        if args.no_server_metrics
        else Scraper(
            args.metrics_url or args.base_url.rstrip("/") + "/metrics", sending.endpoint.headers(), run_t0
        )
    )
    if sampler:
        sampler.start(run_t0)
    try:
        warm, runs = asyncio.run(
            run_levels(
                sending,
                levels,
                level_prompts=level_prompts,
                warmup_prompts=warmup_prompts,
                timeout_s=args.timeout,
                seed=args.seed,
                run_t0=run_t0,
                progress=not args.no_progress,
                scraper=scraper,
            )
        )
    finally:
        if sampler:
            sampler.stop()
    if scraper and scraper.unavailable:
        print(f"server metrics: none read ({scraper.unavailable})", file=sys.stderr)
    return warm, runs, sampler, scraper


def _records_and_levels(
    args: argparse.Namespace,
    warm: list[Sent],
    runs: list[LevelRun],
    *,
    tokenizer: ModelTokenizer | None,
    slo: dict[str, float],
    scraper: Scraper | None,
    model: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each request's record (warmup first) and each level's block."""
    count_tokens = (
        None if tokenizer is None else (lambda text: tokenizer.count(text, add_special_tokens=False))
    )
    records = []
    level_blocks = []
    for index, sent in enumerate(warm):
        records.append(_request_record(sent, "warmup", index, request_metrics(sent.result, count_tokens)))
    for level_run in runs:
        metrics = [request_metrics(s.result, count_tokens) for s in level_run.sent]
        level_blocks.append(
            _level_block(level_run, metrics, args.percentiles, slo, scraper=scraper, model=model)
        )
        for index, (sent, m) in enumerate(zip(level_run.sent, metrics, strict=True)):
            records.append(_request_record(sent, level_run.level.name, index, m))
    return records, level_blocks


def _workload_block(
    args: argparse.Namespace, ignore_eos: bool, tokenizer: ModelTokenizer | None, slo: dict[str, float]
) -> dict[str, Any]:
    return {
        "name": args.workload,
        "description": _description(args),
        "dataset": args.dataset,
        "input_len": args.input_len if args.dataset == "random" else None,
        "output_len": args.output_len,
        # Embeddings generate nothing, so nothing stops them.
        "stop": args.stop if args.workload != "embeddings" else None,
        "ignore_eos_sent": ignore_eos,
        "temperature": args.temperature,
        "extra_body": args.extra_body,
        "warmup_requests": args.warmup,
        "seed": args.seed,
        "tokenizer": None if tokenizer is None else str(tokenizer.directory),
        "prompt_format": _prompt_format(args),
        "fim_tokens": {
            "prefix": args.fim_prefix,
            "suffix": args.fim_suffix,
            "middle": args.fim_middle,
            "stop": args.fim_stop,
        }
        if args.workload == "fim"
        else None,
        "batch_size": args.batch_size,
        "encoding_format": args.encoding_format,
        "percentiles": args.percentiles,
        "goodput_slo_ms": slo or None,
        "timeout_s": args.timeout,
    }


def _report_failures(level_blocks: list[dict[str, Any]]) -> int:
    failed = sum(lv["summary"]["errors"] for lv in level_blocks)
    if failed:
        first = next(m for lv in level_blocks for m in lv["summary"]["error_messages"])
        print(f"{failed} measured request(s) failed; first error: {first}", file=sys.stderr)
        return 3
    return 0


def run(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    slo = _check_slo(args)
    api_key = read_api_key(args)
    tokenizer = _tokenizer(args)

    ca_cert = read_ca_cert(args)
    models = asyncio.run(server_models(Endpoint(args.base_url, args.api, args.model or "", api_key, ca_cert)))
    model = _served_model(models, args.model, args.base_url)
    endpoint = Endpoint(args.base_url, args.api, model, api_key, ca_cert)
    engine = engine_of(models, model)
    fixed = args.stop == "fixed"
    ignore_eos = fixed and (args.ignore_eos == "yes" or (args.ignore_eos == "auto" and engine == "vllm"))

    levels = _levels(args)
    warmup_prompts, level_prompts = _prompts(args, tokenizer, levels)
    sending = _sending(args, endpoint, ignore_eos)
    warm, runs, sampler, scraper = _measure(args, sending, levels, warmup_prompts, level_prompts)
    finished = datetime.now(UTC)

    records, level_blocks = _records_and_levels(
        args, warm, runs, tokenizer=tokenizer, slo=slo, scraper=scraper, model=model
    )
    windows = {lv["name"]: (lv["start_s"], lv["end_s"]) for lv in level_blocks}
    telemetry = (
        {"available": False, "reason": "disabled with --no-telemetry"}
        if sampler is None
        else sampler.result(windows)
    )
    roof = _roofline_block(args, level_blocks)
    document = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "aimachine-bench", "version": __version__},
        "command_line": args.command_line,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "client_host": {
            "hostname": socket.gethostname(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "server": {
            "base_url": args.base_url,
            "api": args.api,
            "model": model,
            "engine": engine,
            "models": models.get("data", []),
        },
        "workload": _workload_block(args, ignore_eos, tokenizer, slo),
        "definitions": DEFINITIONS,
        "levels": level_blocks,
        "warmup": {"requests": len(warm), "errors": sum(1 for s in warm if not s.result.ok)},
        "server_metrics": scraper.describe(model)
        if scraper
        else not_read(None, "disabled with --no-server-metrics"),
        "telemetry": telemetry,
        "roofline": roof,
        "requests": records,
    }
    if args.output:
        written = write_all(args.output, document, args.percentiles)
        if args.record_streams:
            written.append(_write_streams(args.output / "streams.jsonl", warm, runs, sending))
        print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    _print_summary(level_blocks, roof, args.percentiles, args.workload)
    return _report_failures(level_blocks)


def _write_streams(path: Path, warm: list[Sent], runs: list[LevelRun], sending: Sending) -> Path:
    # surrogateescape keeps every byte, even a UTF-8 sequence that a read boundary cut in two.
    with path.open("w", encoding="utf-8") as handle:
        groups = [("warmup", warm)] + [(r.level.name, r.sent) for r in runs]
        for level, sent in groups:
            for index, s in enumerate(sent):
                reads = [
                    [round(t, 6), chunk.decode("utf-8", "surrogateescape")] for t, chunk in s.result.raw or []
                ]
                record = {
                    "level": level,
                    "index": index,
                    "api": sending.endpoint.api,
                    "url": sending.endpoint.url,
                    "body": sending.body(s.prompt),
                    "status": s.result.status,
                    "reads": reads,
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


# Options that mean nothing for a workload: named in the error rather than silently ignored.
NOT_FOR = {
    "fim": ("api", "dataset", "input_len", "batch_size", "encoding_format"),
    "embeddings": (
        "api",
        "dataset",
        "input_len",
        "output_len",
        "stop",
        "temperature",
        "fim_prefix",
        "fim_suffix",
        "fim_middle",
        "fim_stop",
    ),
    "generate": ("batch_size", "encoding_format", "fim_prefix", "fim_suffix", "fim_middle", "fim_stop"),
}


def settle_workload(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Reject options the chosen workload does not use, then fill in its defaults."""
    misplaced = [
        "--" + name.replace("_", "-")
        for name in NOT_FOR[args.workload]
        if getattr(args, name) != parser.get_default(name)
    ]
    if args.workload == "embeddings" and args.ignore_eos != "auto":
        misplaced.append("--ignore-eos")
    if misplaced:
        parser.error(f"{', '.join(misplaced)} do(es) not apply to --workload {args.workload}")
    if args.workload == "generate":
        args.api = args.api or "chat"
        args.dataset = args.dataset or "random"
        args.stop = args.stop or "fixed"
    elif args.workload == "fim":
        args.api, args.dataset = "completions", "humaneval-fim"
        args.stop = args.stop or "natural"
        if not all((args.fim_prefix, args.fim_suffix, args.fim_middle)):
            parser.error("--fim-prefix, --fim-suffix and --fim-middle must not be empty")
    else:
        args.api, args.dataset = "embeddings", "humaneval-code"
        args.batch_size = args.batch_size or DEFAULT_BATCH_SIZE
        args.encoding_format = args.encoding_format or "float"
    if args.workload != "embeddings":
        args.output_len = args.output_len or DEFAULT_OUTPUT_LEN[args.workload]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = [parser.prog, *(sys.argv[1:] if argv is None else argv)]
    if args.max_concurrency and not args.request_rate:
        parser.error("--max-concurrency applies to --request-rate; with --concurrency the level is the cap")
    if args.telemetry_hz < MIN_HZ:
        parser.error(f"--telemetry-hz must be at least {MIN_HZ:g}")
    if args.extra_body is not None and not isinstance(args.extra_body, dict):
        parser.error("--extra-body must be a JSON object")
    if any(not 0 < p < 100 for p in args.percentiles):
        parser.error("--percentiles must be between 0 and 100 (exclusive)")
    if args.metrics_url and args.no_server_metrics:
        parser.error("--metrics-url and --no-server-metrics exclude each other")
    settle_workload(args, parser)
    try:
        return run(args)
    except (WorkloadError, ValueError) as error:
        print(f"aimachine-bench: error: {error}", file=sys.stderr)
        return 2
    except (BenchError, RooflineError, OSError) as error:
        print(f"aimachine-bench: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aimachine-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
