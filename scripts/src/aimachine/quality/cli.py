"""aimachine-quality: HumanEval, MBPP and the practical scenarios against an OpenAI-compatible endpoint.

Per served model of another role (issue #16.6): `--suites infill` (an autocomplete model fills
masked spans of HumanEval's canonical solutions, scored in the sandbox; streamed latencies) and
`--suites retrieval` (an embeddings model ranks HumanEval's functions for their docstrings).

Without a model (``--solutions canonical`` or ``wrong``) the same pipeline scores the data sets'
reference solutions or deliberately wrong ones: the harness proving itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from aimachine import __version__
from aimachine.bench.workloads import FimTokens
from aimachine.quality.client import Endpoint, EndpointError, read_api_key
from aimachine.quality.datasets import (
    DatasetError,
    Problem,
    default_cache_dir,
    fetch_mbpp,
    iter_suite,
    load_humaneval,
    load_mbpp,
)
from aimachine.quality.execution import Executor
from aimachine.quality.infill import DEFAULT_MAX_TOKENS, InfillRunner, InfillSettings
from aimachine.quality.report import build_summary, plot, render_text, write_samples
from aimachine.quality.retrieval import DEFAULT_BATCH, run_retrieval
from aimachine.quality.runner import SOLUTIONS, Runner, RunSettings, SuiteRun
from aimachine.quality.sandbox import (
    DEFAULT_GID,
    DEFAULT_UID_BASE,
    MIB,
    Limits,
    Sandbox,
    SandboxError,
    Settings,
)
from aimachine.quality.scenarios import ScenarioError, load_scenarios

SUITES = ("humaneval", "mbpp", "scenarios", "infill", "retrieval")
# A chat model's suites; infill (autocomplete) and retrieval (embed) only when asked for.
DEFAULT_SUITES = ("humaneval", "mbpp", "scenarios")
# Suites whose code runs in the sandbox (retrieval runs none).
EXECUTING = {"humaneval", "mbpp", "scenarios", "infill"}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _suites(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUITES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown suite(s) {unknown}; choose from {', '.join(SUITES)}")
    return names


def _ks(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--k takes integers like 1,10: {error}") from error
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("--k values must be >= 1")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aimachine-quality",
        # No prefix matching: "--api-key KEY" must not be taken for --api-key-file.
        allow_abbrev=False,
        description="Score a coding model on HumanEval, MBPP (sanitized) and the practical scenarios; "
        "model-written code runs in a sandbox. API keys come from --api-key-file or "
        "AIMACHINE_API_KEY / OPENAI_API_KEY, never from the command line.",
    )
    target = parser.add_argument_group("endpoint")
    target.add_argument(
        "--base-url", default="http://127.0.0.1:8000", help="OpenAI-compatible server (default %(default)s)"
    )
    target.add_argument("--model", help="served model name (default: the first of /v1/models)")
    target.add_argument("--api-key-file", type=Path, help="file whose first line is the API key")
    target.add_argument("--request-timeout", type=_positive_float, default=600.0, help="seconds per request")

    what = parser.add_argument_group("what to run")
    what.add_argument(
        "--suites",
        type=_suites,
        default=list(DEFAULT_SUITES),
        help="comma list of humaneval,mbpp,scenarios (default) or infill (an autocomplete model), "
        "retrieval (an embeddings model)",
    )
    what.add_argument("--limit", type=_positive_int, help="first N problems of each benchmark")
    what.add_argument("--task-ids", help="comma list of task ids (HumanEval/0, Mbpp/11)")
    what.add_argument(
        "--solutions",
        choices=SOLUTIONS,
        default="model",
        help="model (ask the endpoint), canonical (reference solutions), wrong (return None), "
        "origin (the origin document's answers, scenarios only)",
    )
    what.add_argument(
        "--mbpp-path", type=Path, help="local MBPP sanitized copy (file or directory): no download"
    )
    what.add_argument("--mbpp-split", default="test", help="MBPP split (default %(default)s)")
    what.add_argument(
        "--cache-dir", type=Path, default=default_cache_dir(), help="download cache (default %(default)s)"
    )
    what.add_argument(
        "--scenarios-dir", type=Path, action="append", default=[], help="extra scenario YAML directory"
    )

    gen = parser.add_argument_group("generation")
    gen.add_argument(
        "--mode",
        choices=("chat", "completion"),
        default="chat",
        help="chat (instruct models) or completion (base models)",
    )
    gen.add_argument("--samples", type=_positive_int, default=1, help="samples per problem (n)")
    gen.add_argument(
        "--k", type=_ks, default=[1, 10], help="pass@k values reported when n >= k (default 1,10)"
    )
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--max-tokens", type=_positive_int, default=1024)
    gen.add_argument("--seed", type=int, default=0, help="request seed of sample i is seed+i")
    gen.add_argument("--concurrency", type=_positive_int, default=8, help="parallel requests")

    defaults = FimTokens()
    fim = parser.add_argument_group("infill (autocomplete model)")
    fim.add_argument("--fim-prefix", default=defaults.prefix, help="prefix marker (default %(default)s)")
    fim.add_argument("--fim-suffix", default=defaults.suffix, help="suffix marker (default %(default)s)")
    fim.add_argument("--fim-middle", default=defaults.middle, help="middle marker (default %(default)s)")
    fim.add_argument(
        "--fim-stop",
        nargs="+",
        default=[],
        help="the model's stop strings (the catalog's fim.stop); a blank line always stops a fill",
    )
    fim.add_argument(
        "--infill-max-tokens",
        type=_positive_int,
        default=DEFAULT_MAX_TOKENS,
        help="max_tokens of a fill (default %(default)s)",
    )
    fim.add_argument(
        "--infill-concurrency",
        type=_positive_int,
        default=1,
        help="parallel fill requests (default 1: the latencies of one typing user)",
    )
    emb = parser.add_argument_group("retrieval (embeddings model)")
    emb.add_argument(
        "--embed-batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH,
        help="texts per /v1/embeddings request (default %(default)s)",
    )

    box = parser.add_argument_group("sandbox")
    box.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 2, help="parallel executions")
    box.add_argument("--timeout", type=_positive_float, default=10.0, help="wall seconds per program")
    box.add_argument(
        "--cpu-seconds", type=_positive_int, help="CPU seconds per program (default: the timeout)"
    )
    box.add_argument("--memory-mb", type=_positive_int, default=2048, help="address space per program")
    box.add_argument("--nproc", type=_positive_int, default=32, help="processes per program")
    box.add_argument("--fsize-mb", type=_positive_int, default=16, help="largest file a program may write")
    box.add_argument(
        "--sandbox-python", help="interpreter for programs (default: /usr/bin/python3; its stdlib only)"
    )
    box.add_argument(
        "--sandbox-uid-base",
        type=int,
        default=DEFAULT_UID_BASE,
        help="as root: worker slot i runs as uid BASE+i (default %(default)s)",
    )
    box.add_argument("--sandbox-gid", type=int, default=DEFAULT_GID)
    box.add_argument(
        "--sandbox-user",
        default=os.environ.get("AIMACHINE_SANDBOX_USER") or None,
        help="an account that owns nothing: slot i runs as its uid+i and its group; needs root or"
        " CAP_SETUID+CAP_SETGID (the verify timer: aimachine-sandbox; default $AIMACHINE_SANDBOX_USER)",
    )
    box.add_argument(
        "--allow-weak-sandbox",
        action="store_true",
        help="not root and no usable bubblewrap: run with limits only, as your uid (unsafe for hostile code)",
    )

    judge = parser.add_argument_group("LLM judge (optional second opinion on scenarios)")
    judge.add_argument("--judge", action="store_true", help="ask a judge model to score scenario answers too")
    judge.add_argument("--judge-base-url", help="judge endpoint (default: --base-url)")
    judge.add_argument("--judge-model", help="judge model (default: the judge endpoint's first model)")
    judge.add_argument(
        "--judge-max-tokens", type=_positive_int, default=512, help="length of the judge's reply"
    )
    judge.add_argument(
        "--judge-api-key-file", type=Path, help="default: AIMACHINE_JUDGE_API_KEY, then the main key"
    )

    out = parser.add_argument_group("output")
    out.add_argument("--output", type=Path, help="directory for samples.jsonl, summary.json, quality.png")
    out.add_argument("--no-plot", action="store_true")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _load_problems(args: argparse.Namespace) -> dict[str, list[Problem]]:
    ids = {t.strip() for t in args.task_ids.split(",")} if args.task_ids else None
    loaded: dict[str, list[Problem]] = {}
    for suite in ("humaneval", "infill", "retrieval"):
        if suite in args.suites:
            # infill and retrieval are built from HumanEval (the same --limit / --task-ids).
            loaded[suite] = list(iter_suite(load_humaneval(), args.limit, ids))
    if "mbpp" in args.suites:
        path = args.mbpp_path or fetch_mbpp(args.cache_dir, args.mbpp_split)
        loaded["mbpp"] = list(iter_suite(load_mbpp(path, args.mbpp_split), args.limit, ids))
    for suite, problems in loaded.items():
        if not problems:
            raise DatasetError(f"no {suite} problems selected (check --task-ids / --limit)")
    return loaded


def _check_args(args: argparse.Namespace) -> None:
    if args.samples > 1 and args.temperature == 0 and args.solutions == "model":
        raise SystemExit(
            "aimachine-quality: error: --samples > 1 needs sampling: set --temperature (e.g. 0.8)"
        )
    if args.solutions == "origin" and args.suites != ["scenarios"]:
        raise SystemExit("aimachine-quality: error: --solutions origin exists for --suites scenarios only")
    if "retrieval" in args.suites and args.solutions != "model":
        raise SystemExit("aimachine-quality: error: --suites retrieval needs a model (--solutions model)")
    if args.judge and "scenarios" not in args.suites:
        raise SystemExit("aimachine-quality: error: --judge scores scenarios: include them in --suites")


async def _run(
    args: argparse.Namespace, executor: Executor | None
) -> tuple[list[SuiteRun], dict[str, object]]:
    endpoint = judge_endpoint = infill = None
    model = args.solutions
    key = None
    try:
        if args.solutions == "model":
            key = read_api_key(args.api_key_file)
            endpoint = Endpoint(args.base_url, args.model, key, args.request_timeout)
            model = await endpoint.resolve_model()
        if args.judge:
            key_file = args.judge_api_key_file
            key = (
                read_api_key(key_file, ("AIMACHINE_JUDGE_API_KEY",))
                if key_file or os.environ.get("AIMACHINE_JUDGE_API_KEY")
                else read_api_key(args.api_key_file)
            )
            judge_endpoint = Endpoint(
                args.judge_base_url or args.base_url, args.judge_model, key, args.request_timeout
            )
            await judge_endpoint.resolve_model()
        settings = RunSettings(
            solutions=args.solutions,
            mode=args.mode,
            n_samples=args.samples,
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.max_tokens,
            seed=args.seed,
            concurrency=args.concurrency,
            judge=args.judge,
            judge_max_tokens=args.judge_max_tokens,
        )
        runner = Runner(settings, executor, endpoint, judge_endpoint, progress=not args.quiet)  # type: ignore[arg-type]
        problems = _load_problems(args)
        scenarios = load_scenarios(args.scenarios_dir) if "scenarios" in args.suites else []
        runs = []
        for suite in args.suites:
            if suite == "scenarios":
                runs.append(await runner.run_scenarios(scenarios))
            elif suite == "infill":
                assert executor is not None
                infill = InfillRunner(
                    _infill_settings(args),
                    executor,
                    root=endpoint.root if endpoint else None,
                    model=endpoint.model if endpoint else None,
                    api_key=key,
                    timeout_s=args.request_timeout,
                    progress=not args.quiet,
                )
                runs.append(await infill.run(problems[suite]))
            elif suite == "retrieval":
                assert endpoint is not None
                runs.append(
                    await run_retrieval(
                        problems[suite],
                        root=endpoint.root,
                        model=endpoint.model,
                        api_key=key,
                        batch=args.embed_batch_size,
                        timeout_s=args.request_timeout,
                    )
                )
            else:
                runs.append(await runner.run_problems(suite, problems[suite]))
        meta: dict[str, object] = {
            "tool": "aimachine-quality",
            "version": __version__,
            "model": model,
            "endpoint": endpoint.root if endpoint else None,
            "solutions": args.solutions,
            "judge": {"endpoint": judge_endpoint.root, "model": judge_endpoint.model}
            if judge_endpoint
            else None,
        }
        return runs, meta
    finally:
        for client in (endpoint, judge_endpoint, infill):
            if client is not None:
                await client.aclose()


def _infill_settings(args: argparse.Namespace) -> InfillSettings:
    return InfillSettings(
        solutions=args.solutions,
        seed=args.seed,
        max_tokens=args.infill_max_tokens,
        temperature=args.temperature,
        concurrency=args.infill_concurrency,
        tokens=FimTokens(args.fim_prefix, args.fim_suffix, args.fim_middle),
        stop=tuple(args.fim_stop),
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(args)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.monotonic()
    limits = Limits(
        timeout_s=args.timeout,
        cpu_s=args.cpu_seconds or max(1, int(args.timeout + 0.999)),
        memory_bytes=args.memory_mb * MIB,
        nproc=args.nproc,
        fsize_bytes=args.fsize_mb * MIB,
    )
    sandbox = executor = None
    if EXECUTING & set(args.suites):
        try:
            sandbox = Sandbox.open(
                Settings(
                    limits=limits,
                    workers=args.workers,
                    uid_base=args.sandbox_uid_base,
                    gid=args.sandbox_gid,
                    python=args.sandbox_python,
                    allow_weak=args.allow_weak_sandbox,
                    user=args.sandbox_user,
                )
            )
        except (SandboxError, ValueError) as error:
            print(f"aimachine-quality: sandbox: {error}", file=sys.stderr)
            return 1
        executor = Executor(sandbox)
    try:
        runs, meta = asyncio.run(_run(args, executor))
    except (EndpointError, DatasetError, ScenarioError) as error:
        print(f"aimachine-quality: {error}", file=sys.stderr)
        return 1
    finally:
        if executor is not None:
            executor.close()
        if sandbox is not None:
            sandbox.close()
    wall = time.monotonic() - start
    meta["started_at"] = started
    meta["settings"] = {
        "mode": args.mode,
        "samples": args.samples,
        "k": args.k,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "limit": args.limit,
        "task_ids": args.task_ids,
        "mbpp_split": args.mbpp_split if "mbpp" in args.suites else None,
        "limits": limits.__dict__,
        # None: no suite ran code (retrieval only).
        "sandbox": sandbox.isolation.as_dict() if sandbox else None,
    }
    if "infill" in args.suites:
        infill = _infill_settings(args)
        meta["settings"]["infill"] = {  # type: ignore[index]
            "fim": infill.tokens.__dict__,
            "stop": InfillRunner.stops_for(infill),
            "max_tokens": infill.max_tokens,
            "concurrency": infill.concurrency,
            "seed": infill.seed,
        }
    if "retrieval" in args.suites:
        meta["settings"]["retrieval"] = {"batch_size": args.embed_batch_size}  # type: ignore[index]
    summary = build_summary(runs, meta, args.k, wall)
    if args.output:
        # Files first: the console report may go to a closed pipe (| head).
        args.output.mkdir(parents=True, exist_ok=True)
        write_samples(args.output / "samples.jsonl", runs)
        (args.output / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if not args.no_plot:
            plot(summary, args.output / "quality.png")
    print(render_text(summary, runs))
    for note in sandbox.isolation.notes if sandbox else []:
        print(f"sandbox note: {note}", file=sys.stderr)
    if sandbox is not None and not sandbox.isolation.full:
        missing = ", ".join(sandbox.isolation.missing)
        print(f"sandbox: PARTIAL ISOLATION (missing {missing}); the report flags it", file=sys.stderr)
    if args.output:
        print(f"wrote {args.output}/samples.jsonl, summary.json" + ("" if args.no_plot else ", quality.png"))
    model_records = [r for run in runs for r in run.records] if args.solutions == "model" else []
    if model_records and all(r.get("error_kind") == "request" for r in model_records):
        print("aimachine-quality: every request failed; see error_detail in samples.jsonl", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
