"""aimachine-verify: on the appliance's host, verify the deployed endpoint once per deployment.

plan: would a run measure anything new (the deployment's fingerprint against the latest report);
run: health, then per served model its benchmark and quality suites, then the report into the
history; gates: the current thresholds against the latest report. Used by the llm_verify role
and its systemd timer.

Per served model (the config's `models`, from the host role's published list; missing: one chat
model from `base_url` / `model`):

    chat          aimachine-bench (--goodput at the chat SLO) + aimachine-quality (the mode's suites)
    autocomplete  aimachine-bench --workload fim (--goodput at the autocomplete SLO)
                  + aimachine-quality --suites infill
    embed         aimachine-bench --workload embeddings + aimachine-quality --suites retrieval

The chat model writes bench/ and quality/ of the run directory; the others
models/<served-name>/bench/ and models/<served-name>/quality/.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from aimachine import endpoint
from aimachine.quality.sandbox import without_capabilities
from aimachine.report.capacity import AUTOCOMPLETE_SLO, CHAT_SLO, SLO_NAMES
from aimachine.report.cli import _read_json, load_history, render
from aimachine.report.gates import GateError, evaluate_gates

# What each role runs besides the mode's extra arguments (fixed: the report reads these results).
ROLE_BENCH = {"chat": [], "autocomplete": ["--workload", "fim"], "embed": ["--workload", "embeddings"]}
ROLE_QUALITY = {"chat": [], "autocomplete": ["--suites", "infill"], "embed": ["--suites", "retrieval"]}
BUNDLE = "bundle.tar.gz"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def engine_version(service: str, engine: str) -> str | None:
    """The engine package's version in the venv the unit actually runs (from its ExecStart)."""
    try:
        shown = subprocess.run(
            without_capabilities(["systemctl", "show", "--property=ExecStart", "--value", service]),
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
            without_capabilities(
                [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"]
            ),
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


@dataclass(frozen=True)
class Served:
    """One served model as the verification measures it."""

    name: str
    role: str
    base_url: str
    model_dir: str | None
    service: str
    fim: dict[str, Any] | None = None


def served(config: dict[str, Any]) -> list[Served]:
    """The config's `models` (contract 3's list), else one chat model from today's fields."""
    models = config.get("models") or []
    if not models:
        return [
            Served(
                name=str(config["model"]),
                role="chat",
                base_url=str(config["base_url"]).rstrip("/"),
                model_dir=config.get("model_dir") or None,
                service=str(config.get("service", "aimachine-llm")),
            )
        ]
    out = []
    for m in models:
        base = re.sub(r"/v1/?$", "", str(m.get("base_url") or config.get("base_url") or "").rstrip("/"))
        out.append(
            Served(
                name=str(m["name"]),
                role=str(m.get("role") or "chat"),
                base_url=base,
                model_dir=m.get("model_dir") or None,
                service=str(m.get("service") or config.get("service", "aimachine-llm")),
                fim=m.get("fim") or None,
            )
        )
    return out


def _fim_args(model: Served) -> list[str]:
    """The model's own FIM markers (contract 3's `fim`) and the stop strings an editor sends."""
    if model.role != "autocomplete" or not model.fim:
        return []
    out = []
    for key in ("prefix", "suffix", "middle"):
        if model.fim.get(key):
            out += [f"--fim-{key}", str(model.fim[key])]
    if model.fim.get("stop"):
        out += ["--fim-stop", *[str(s) for s in model.fim["stop"]]]
    return out


def deployment(config: dict[str, Any]) -> dict[str, Any]:
    """What was deployed, as observed on this host, and its fingerprint."""
    declared = config.get("declared") or {}
    model = declared.get("model") or {}
    engine = (declared.get("engine") or {}).get("name", "unknown")
    version = engine_version(config.get("service", "aimachine-llm"), engine)
    files = {path: _sha256(Path(path)) for path in config.get("fingerprint_files") or []}
    basis: dict[str, Any] = {
        "model": model.get("id"),
        "revision": model.get("revision"),
        "served_name": config.get("model"),
        "engine": engine,
        "engine_version": version,
        "files": files,
    }
    # Several models: each one's identity is part of the deployment (one model: as before).
    if config.get("models"):
        basis["models"] = [
            {k: m.get(k) for k in ("name", "role", "id", "revision", "service")} for m in config["models"]
        ]
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


def _health(base_url: str, key: str | None) -> dict[str, Any]:
    base = base_url.rstrip("/")
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


def _goodput(config: dict[str, Any], role: str) -> list[str]:
    """--goodput at the role's SLO (the report's capacity rule reads the same limits)."""
    capacity = config.get("capacity") or {}
    if role == "chat":
        slo = capacity.get("chat_slo") or CHAT_SLO
    elif role == "autocomplete":
        slo = capacity.get("autocomplete_slo") or AUTOCOMPLETE_SLO
    else:
        return []
    items = []
    for key, limit in slo.items():
        name = key if key.endswith("_ms") else f"{key}_ms"
        items.append(f"{SLO_NAMES[name]}:{float(limit):g}")
    return ["--goodput", *items]


def tool_commands(config: dict[str, Any], mode: str, out: Path, bin_dir: Path) -> list[dict[str, Any]]:
    """Every tool run of a verification: {model, role, tool, argv, log, output}, chat first."""
    settings = (config.get("modes") or {}).get(mode) or {}
    key_file = config.get("api_key_file")
    commands = []
    for model in sorted(served(config), key=lambda m: m.role != "chat"):
        if model.role not in ROLE_BENCH:
            continue
        role_settings = settings if model.role == "chat" else (settings.get(model.role) or {})
        where = out if model.role == "chat" else out / "models" / model.name
        prefix = "" if model.role == "chat" else f"{model.name}-"
        common = ["--base-url", model.base_url, "--model", model.name]
        if key_file:
            common += ["--api-key-file", str(key_file)]
        bench = [str(bin_dir / "aimachine-bench"), *common, "--no-progress", "--output", str(where / "bench")]
        if model.model_dir:
            bench += ["--model-dir", str(model.model_dir)]
        bench += ROLE_BENCH[model.role] + _fim_args(model) + _goodput(config, model.role)
        bench += [str(a) for a in role_settings.get("bench") or []]
        quality = [str(bin_dir / "aimachine-quality"), *common, "--quiet", "--output", str(where / "quality")]
        quality += ROLE_QUALITY[model.role] + _fim_args(model)
        quality += [str(a) for a in role_settings.get("quality") or []]
        for tool, argv in (("bench", bench), ("quality", quality)):
            commands.append(
                {
                    "model": model.name,
                    "role": model.role,
                    "tool": tool,
                    "argv": argv,
                    "log": out / "logs" / f"{prefix}{tool}.log",
                    "output": where / tool,
                }
            )
    return commands


def without_mbpp(argv: list[str]) -> list[str] | None:
    """The quality command without the MBPP suite, when MBPP was to be downloaded; else None."""
    if "--mbpp-path" in argv or "--suites" not in argv:
        return None
    i = argv.index("--suites") + 1
    suites = [x for x in argv[i].split(",") if x]
    if "mbpp" not in suites or len(suites) == 1:
        return None
    return [*argv[:i], ",".join(x for x in suites if x != "mbpp"), *argv[i + 1 :]]


def _mbpp_unavailable(log: Path) -> bool:
    """The quality tool's log says MBPP could not be downloaded (datasets.fetch_mbpp's messages)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")[-4000:]
    except OSError:
        return False
    return "could not download MBPP" in text or "MBPP not cached" in text


def _run_tool(argv: list[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
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
    key = endpoint.read_api_key(Path(key_file), ()) if key_file else None
    models = served(config)
    health_by_model = {m.name: _health(m.base_url, key) for m in models}
    chat = next((m for m in models if m.role == "chat"), models[0])
    health = health_by_model[chat.name]
    exits: dict[str, dict[str, int | None]] = {m.name: {"bench": None, "quality": None} for m in models}
    notes: list[str] = []
    for command in tool_commands(config, mode, out, Path(sys.executable).parent):
        if not health_by_model[command["model"]]["ok"]:
            continue
        # Only the quality tool switches uids (its sandbox); the bench gets no capability.
        argv = command["argv"] if command["tool"] == "quality" else without_capabilities(command["argv"])
        rc = _run_tool(argv, command["log"])
        retry = None
        if rc != 0 and command["tool"] == "quality" and _mbpp_unavailable(command["log"]):
            retry = without_mbpp(command["argv"])
        if retry is not None:
            # An offline host cannot download MBPP: the other suites still count (the report says MBPP
            # was not run); llm_verify_mbpp_src gives the host a copy.
            notes.append(f"{command['model']}: quality failed with MBPP to download; run again without MBPP")
            rc = _run_tool(retry, command["log"].with_name(command["log"].stem + "-without-mbpp.log"))
        exits[command["model"]][command["tool"]] = rc
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
        "health_by_model": health_by_model,
        "tools": {
            "bench_exit": exits[chat.name]["bench"],
            "quality_exit": exits[chat.name]["quality"],
            "by_model": exits,
        },
        "started_at": now.isoformat(timespec="seconds"),
        "notes": notes,
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
        models_dir=out / "models",
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
        "bench_exit": exits[chat.name]["bench"],
        "quality_exit": exits[chat.name]["quality"],
        "by_model": exits,
        "gates": report["gates"],
    }


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
    result = evaluate_gates(
        config.get("gates") or [], report.get("metrics") or {}, bool(config.get("allow_partial_isolation"))
    )
    return {"report": str(report_path), **result}


def main(argv: list[str] | None = None) -> int:
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
    sys.exit(main())
