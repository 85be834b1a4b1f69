#!/usr/bin/env python3
"""Watchdog of the engine: one tiny real generation, and a restart when the engine stops generating.

An engine can answer /health with 200 while it no longer generates (a huge prompt holding the CPU
engine, a wedged GPU worker, a stopped process). systemd's timer runs this every minute: it sends
one completion of one token (`--probe embeddings`: one embedding of one text, for an embedding
model; `--probe rerank`: one document ranked, for a reranker) with the key from the engine's 0600
EnvironmentFile (read here, never on a command line), and after --failures probes in a row without
an answer within --timeout it restarts the unit, saying why in the journal. An engine that is not
listening (starting, or dead: systemd's Restart= handles that) or a unit that is not active is left
alone.

Standard library only: it runs with the host's python3. Exit status 0 unless the restart failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def read_key(env_file: Path) -> str:
    for line in env_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("AIMACHINE_API_KEY="):
            return line.split("=", 1)[1].strip()
    return ""


# What a probe asks: the smallest real request of the engine's kind, and the list its answer holds.
# A model of another kind refuses the request with a 4xx, which only says the API server is up:
# each kind is probed by the request it serves (tests/unit/test_llm_watchdog.py checks every body
# and answer against the pinned vLLM's own request and response models).
PROBES = {
    # /v1/completions: every generating engine has it, chat template or not.
    "completions": ("/v1/completions", {"prompt": "ok", "max_tokens": 1, "stream": False},
                    "1-token completion", "generated 1 token", "choices"),
    # An embedding model generates nothing (its /v1/completions is a 404): it embeds one text.
    "embeddings": ("/v1/embeddings", {"input": "ok"}, "1-text embedding", "embedded 1 text", "data"),
    # A reranker (vLLM's score runner) neither generates nor embeds: it ranks one document.
    "rerank": ("/rerank", {"query": "ok", "documents": ["ok"]}, "1-document rerank", "ranked 1 document",
               "results"),
}  # fmt: skip


def answered(kind: str, data: bytes) -> bool:
    """Whether a 200's body holds what the probe asked for (one choice, vector or ranking)."""
    try:
        json.loads(data)[PROBES[kind][4]][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    return True


def probe(base_url: str, model: str, key: str, timeout: float, kind: str = "completions") -> tuple[str, str]:
    """('ok' | 'down' | 'failed', what happened): down means nothing listens on the port."""
    url = urlsplit(base_url)
    path, request, name, done, field = PROBES[kind]
    body = json.dumps({"model": model, **request})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("POST", url.path.rstrip("/") + path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    except ConnectionRefusedError:
        return "down", "nothing listens on the engine's port"
    except TimeoutError:
        return "failed", f"no answer to a {name} within {timeout:g} s"
    except (OSError, http.client.HTTPException) as error:
        return "failed", f"the {name} failed: {error}"
    finally:
        conn.close()
    took = time.monotonic() - started
    if 400 <= resp.status < 500:
        # Refused, but answered by the engine: alive (a model that does not generate, a key change).
        return "ok", f"the {name} was refused (HTTP {resp.status}, {took:.2f} s): {data[:200]!r}"
    if resp.status != 200:
        return "failed", f"the {name} answered HTTP {resp.status}: {data[:200]!r}"
    if not answered(kind, data):
        return "failed", f"the {name} answered no {field}: {data[:200]!r}"
    return "ok", f"{done} in {took:.2f} s"


def health(base_url: str) -> str:
    """What /health says, for the journal (it may well be 200 while nothing generates)."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=5)
    try:
        conn.request("GET", url.path.rstrip("/") + "/health")
        return f"/health answered {conn.getresponse().status}"
    except (OSError, http.client.HTTPException) as error:
        return f"/health did not answer either ({error or type(error).__name__})"
    finally:
        conn.close()


def unit_active(unit: str) -> bool:
    done = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False)
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the engine's root, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--env-file", type=Path, required=True, help="EnvironmentFile with AIMACHINE_API_KEY")
    parser.add_argument("--unit", required=True, help="systemd unit of the engine")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one probe may take")
    parser.add_argument("--failures", type=int, default=2, help="failed probes in a row before a restart")
    parser.add_argument("--state", type=Path, required=True, help="file keeping the count of failed probes")
    parser.add_argument(
        "--probe",
        choices=sorted(PROBES),
        default="completions",
        help="the request a probe sends (the model's kind)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what it would do, restart nothing")
    args = parser.parse_args(argv)

    if not args.dry_run and not unit_active(args.unit):
        print(f"{args.unit} is not active; nothing to watch", flush=True)
        return 0
    status, what = probe(args.url, args.model, read_key(args.env_file), args.timeout, args.probe)
    if status != "failed":
        args.state.unlink(missing_ok=True)
        print(f"{args.unit}: {what}" + ("; left to systemd" if status == "down" else ""), flush=True)
        return 0
    try:
        failed = int(args.state.read_text(encoding="utf-8").strip() or 0) + 1
    except (OSError, ValueError):
        failed = 1
    if failed < args.failures:
        args.state.write_text(f"{failed}\n", encoding="utf-8")
        print(f"<4>{args.unit}: {what} (failed probe {failed} of {args.failures})", flush=True)
        return 0
    args.state.unlink(missing_ok=True)
    reason = f"{what}, {failed} probes in a row; {health(args.url)}"
    if args.dry_run:
        print(f"<3>{args.unit}: would restart: {reason}", flush=True)
        return 0
    print(f"<3>restarting {args.unit}: {reason}", flush=True)
    done = subprocess.run(["systemctl", "restart", args.unit], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"<3>restarting {args.unit} failed: {done.stderr.strip()}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
