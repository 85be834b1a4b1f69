"""aimachine-report: render the verification report from result directories.

aimachine-verify: on the appliance's host, verify the deployed endpoint once per deployment
(plan: would it run; run: health, bench, quality, report into the history; gates: the current
thresholds against the latest report). Used by the llm_verify role and its systemd timer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from aimachine.report.build import Inputs, build_report
from aimachine.report.clients import write_clients
from aimachine.report.gates import GateError, evaluate_gates
from aimachine.report.plots import write_plots
from aimachine.report.render import render_markdown


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def load_history(directory: Path | None, exclude: Path | None = None) -> list[dict[str, Any]]:
    """Every earlier report.json under directory/*/ (unreadable ones are skipped, not fatal)."""
    if directory is None or not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*/report.json")):
        if exclude is not None and path.parent.resolve() == exclude.resolve():
            continue
        with contextlib.suppress(OSError, json.JSONDecodeError):
            out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def render(
    output: Path,
    meta: dict[str, Any],
    bench_dir: Path | None,
    quality_dir: Path | None,
    *,
    config: dict[str, Any],
    history: list[dict[str, Any]],
    generated_at: str | None = None,
) -> dict[str, Any]:
    """Write report.json, report.md, the plots and clients/ into output; return the report."""
    inputs = Inputs(
        meta=meta,
        bench=_read_json(bench_dir / "bench.json") if bench_dir else None,
        quality=_read_json(quality_dir / "summary.json") if quality_dir else None,
    )
    report = build_report(inputs, config, history, generated_at)
    output.mkdir(parents=True, exist_ok=True)
    if meta.get("clients"):
        report["clients"] = write_clients(output / "clients", meta["clients"])
    report["plots"] = write_plots(report, output)
    (output / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (output / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def render_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aimachine-report", description="Render the verification report from result directories."
    )
    parser.add_argument("--meta", type=Path, required=True, help="host/model/engine metadata JSON")
    parser.add_argument("--bench", type=Path, help="aimachine-bench --output directory")
    parser.add_argument("--quality", type=Path, help="aimachine-quality --output directory")
    parser.add_argument("--config", type=Path, help="gates, cost and tolerance (JSON)")
    parser.add_argument("--history", type=Path, help="directory of earlier runs (*/report.json)")
    parser.add_argument("--generated-at", help="timestamp to record (default: now, UTC)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    meta = _read_json(args.meta)
    if meta is None:
        parser.error(f"--meta {args.meta} not found")
    config = (_read_json(args.config) if args.config else None) or {}
    try:
        report = render(
            args.output,
            meta,
            args.bench,
            args.quality,
            config=config,
            history=load_history(args.history, args.output),
            generated_at=args.generated_at,
        )
    except GateError as error:
        print(f"aimachine-report: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}/report.md, report.json, {', '.join(report['plots'])}")
    for message in report["gates"]["failed"] + report["gates"]["warned"]:
        print(f"gate: {message}", file=sys.stderr)
    return 0


# --- on the host --------------------------------------------------------------------------------


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def engine_version(service: str, engine: str) -> str | None:
    """The engine package's version in the venv the unit actually runs (from its ExecStart)."""
    try:
        shown = subprocess.run(
            ["systemctl", "show", "--property=ExecStart", "--value", service],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"path=(\S+)", shown)
    if not match:
        return None
    python = Path(match.group(1)).parent / "python"
    package = "vllm" if engine == "vllm" else "transformers"
    try:
        out = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def host_facts() -> dict[str, Any]:
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "name": socket.gethostname(),
        "os": os_name,
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": memory,
    }


def gpu_facts() -> list[dict[str, Any]]:
    from aimachine.gpu import GpuProbeError, detect_gpus  # noqa: PLC0415 - NVML only when asked

    try:
        return detect_gpus()
    except (GpuProbeError, OSError):
        return []


def deployment(config: dict[str, Any]) -> dict[str, Any]:
    """What was deployed, as observed on this host, and its fingerprint."""
    declared = config.get("declared") or {}
    model = declared.get("model") or {}
    engine = (declared.get("engine") or {}).get("name", "unknown")
    version = engine_version(config.get("service", "aimachine-llm"), engine)
    files = {path: _sha256(Path(path)) for path in config.get("fingerprint_files") or []}
    basis = {
        "model": model.get("id"),
        "revision": model.get("revision"),
        "served_name": config.get("model"),
        "engine": engine,
        "engine_version": version,
        "files": files,
    }
    fingerprint = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:32]
    return {"fingerprint": fingerprint, "basis": basis, "engine_version": version}


def _latest(state: Path) -> tuple[Path | None, dict[str, Any] | None]:
    link = state / "latest"
    if not link.exists():
        return None, None
    return link.resolve(), _read_json(link / "report.json")


def plan(config: dict[str, Any]) -> dict[str, Any]:
    state = Path(config["state_dir"])
    dep = deployment(config)
    latest, report = _latest(state)
    latest_fp = ((report or {}).get("metadata") or {}).get("fingerprint")
    return {
        "fingerprint": dep["fingerprint"],
        "latest": str(latest) if latest else None,
        "latest_fingerprint": latest_fp,
        "would_run": latest_fp != dep["fingerprint"],
    }


def _health(config: dict[str, Any], key: str | None) -> dict[str, Any]:
    base = str(config["base_url"]).rstrip("/")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    out: dict[str, Any] = {}
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for path in ("/health", "/v1/models"):
            start = time.perf_counter()
            try:
                response = client.get(base + path, headers=headers)
                out[path] = {
                    "status": response.status_code,
                    "ms": round(1000 * (time.perf_counter() - start), 1),
                }
            except httpx.HTTPError as error:
                out[path] = {"status": None, "error": repr(error)}
    out["ok"] = all(v.get("status") == 200 for k, v in out.items() if k.startswith("/"))
    return out


def _run_tool(argv: list[str], log: Path) -> int:
    with log.open("wb") as handle:
        return subprocess.run(
            argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        ).returncode


def _chown_like(path: Path, like: Path) -> None:
    """A root run leaves its files to the state directory's owner (the timer's user)."""
    if os.geteuid() != 0:
        return
    st = like.stat()
    for root, dirs, files in os.walk(path):
        for name in [root, *[os.path.join(root, d) for d in dirs], *[os.path.join(root, f) for f in files]]:
            os.lchown(name, st.st_uid, st.st_gid)


def run(config: dict[str, Any], mode: str, force: bool) -> dict[str, Any]:
    state = Path(config["state_dir"])
    history = state / "history"
    history.mkdir(parents=True, exist_ok=True)
    dep = deployment(config)
    _, latest_report = _latest(state)
    latest_fp = ((latest_report or {}).get("metadata") or {}).get("fingerprint")
    if not force and latest_fp == dep["fingerprint"]:
        return {
            "ran": False,
            "reason": "the latest report has this deployment's fingerprint",
            "fingerprint": latest_fp,
        }
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    out = history / stamp
    out.mkdir()
    (out / "logs").mkdir()
    key_file = config.get("api_key_file")
    key = Path(key_file).read_text(encoding="utf-8").splitlines()[0].strip() if key_file else None
    health = _health(config, key)
    bin_dir = Path(sys.executable).parent
    settings = (config.get("modes") or {}).get(mode) or {}
    common = ["--base-url", str(config["base_url"]).rstrip("/"), "--model", str(config["model"])]
    if key_file:
        common += ["--api-key-file", str(key_file)]
    bench_rc = quality_rc = None
    if health["ok"]:
        bench_args = [
            str(bin_dir / "aimachine-bench"),
            *common,
            "--no-progress",
            "--output",
            str(out / "bench"),
        ]
        if config.get("model_dir"):
            bench_args += ["--model-dir", str(config["model_dir"])]
        bench_rc = _run_tool(
            bench_args + [str(a) for a in settings.get("bench") or []], out / "logs" / "bench.log"
        )
        quality_args = [
            str(bin_dir / "aimachine-quality"),
            *common,
            "--quiet",
            "--output",
            str(out / "quality"),
        ]
        quality_rc = _run_tool(
            quality_args + [str(a) for a in settings.get("quality") or []], out / "logs" / "quality.log"
        )
    declared = config.get("declared") or {}
    meta = {
        **declared,
        "run_mode": mode,
        "fingerprint": dep["fingerprint"],
        "fingerprint_basis": dep["basis"],
        "engine": {**(declared.get("engine") or {}), "version": dep["engine_version"]},
        "host": {**host_facts(), **(declared.get("host") or {})},
        "gpus": gpu_facts(),
        "health": health,
        "tools": {"bench_exit": bench_rc, "quality_exit": quality_rc},
        "started_at": now.isoformat(timespec="seconds"),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    bench_dir = out / "bench" if (out / "bench" / "bench.json").exists() else None
    quality_dir = out / "quality" if (out / "quality" / "summary.json").exists() else None
    report = render(
        out,
        meta,
        bench_dir,
        quality_dir,
        config=config,
        history=load_history(history, out),
        generated_at=now.isoformat(timespec="seconds"),
    )
    bundle(out)
    tmp = state / ".latest.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(Path("history") / stamp)
    tmp.replace(state / "latest")
    _chown_like(out, state)
    _chown_like(state / "latest", state)
    keep = int(config.get("keep", 0) or 0)
    if keep > 0:
        runs = sorted(p for p in history.iterdir() if p.is_dir())
        for old in runs[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return {
        "ran": True,
        "dir": str(out),
        "stamp": stamp,
        "fingerprint": dep["fingerprint"],
        "health_ok": health["ok"],
        "bench_exit": bench_rc,
        "quality_exit": quality_rc,
        "gates": report["gates"],
    }


BUNDLE = "bundle.tar.gz"


def bundle(run_dir: Path) -> Path:
    """Everything of a run in one archive, so the controller fetches one file."""
    path = run_dir / BUNDLE
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted(run_dir.rglob("*")):
            if item.is_file() and item != path:
                tar.add(item, arcname=item.relative_to(run_dir).as_posix(), recursive=False)
    return path


def gates(config: dict[str, Any], report_path: Path | None) -> dict[str, Any]:
    """The configured gates against the metrics of a report (default: the latest)."""
    if report_path is None:
        latest, report = _latest(Path(config["state_dir"]))
        report_path = None if latest is None else latest / "report.json"
    else:
        report = _read_json(report_path)
    if report is None:
        return {
            "report": None,
            "results": [],
            "failed": [],
            "warned": [],
            "not_measured": [],
            "passed": True,
            "note": "no report yet",
        }
    result = evaluate_gates(config.get("gates") or [], report.get("metrics") or {})
    return {"report": str(report_path), **result}


def verify_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aimachine-verify",
        description="Verify the deployed endpoint on its host (llm_verify role, timer).",
    )
    parser.add_argument("command", choices=("plan", "run", "gates"))
    parser.add_argument("--config", type=Path, required=True, help="the role's verify.json")
    parser.add_argument("--mode", help="run: quick or full (default: the config's default_mode)")
    parser.add_argument(
        "--force", action="store_true", help="run: even if the latest report has this fingerprint"
    )
    parser.add_argument("--report", type=Path, help="gates: this report.json instead of the latest")
    parser.add_argument(
        "--gates", type=json.loads, help="gates: these gates (a JSON list) instead of the config's"
    )
    args = parser.parse_args(argv)
    config = _read_json(args.config)
    if config is None:
        parser.error(f"--config {args.config} not found")
    try:
        if args.command == "plan":
            result = plan(config)
        elif args.command == "gates":
            result = gates(config if args.gates is None else {**config, "gates": args.gates}, args.report)
        else:
            mode = args.mode or config.get("default_mode", "quick")
            if mode not in (config.get("modes") or {}):
                parser.error(f"--mode {mode}: the config defines {', '.join(config.get('modes') or {})}")
            result = run(config, mode, args.force)
    except GateError as error:
        print(f"aimachine-verify: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(verify_main())
