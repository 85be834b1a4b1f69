#!/usr/bin/python3
"""Wait until the engine answers /health, and give up early when its unit crash-loops.

Polling /health alone would wait the whole start timeout for an engine that can never start
(a bad argument, a broken venv); systemd's view of the unit tells that much sooner.
Exit 0: ready. Exit 1: the unit failed or keeps dying, or the timeout passed; stderr says which
and carries the engine's last journal lines.
"""

import argparse
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request


def unit_state(unit: str) -> dict[str, str]:
    done = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState", "-p", "SubState", "-p", "NRestarts", "-p", "Result", unit],
        capture_output=True,
        text=True,
        check=False,
    )
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


# Engines print pages of usage or traceback; the lines that say what went wrong match this.
_REASON = re.compile(r"error|exception|traceback|no such|invalid|cannot|killed|out of memory", re.IGNORECASE)


def journal(unit: str, lines: int = 15) -> str:
    """The unit's last journal lines that name a reason (else simply its last lines)."""
    done = subprocess.run(
        ["journalctl", "-u", unit, "-n", "300", "--no-pager", "-o", "cat"],
        capture_output=True,
        text=True,
        check=False,
    )
    recent = done.stdout.strip().splitlines()
    reasons = list(dict.fromkeys(line.strip() for line in recent if _REASON.search(line)))
    return "\n".join(reasons[-lines:] if reasons else recent[-lines:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--unit", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    # Once the restart that applied the new files is done, any automatic restart means the engine died.
    parser.add_argument(
        "--max-restarts", type=int, default=1, help="automatic restarts seen before giving up"
    )
    args = parser.parse_args()

    start = time.monotonic()
    first = int(unit_state(args.unit).get("NRestarts", "0") or 0)
    reason = f"no answer from {args.url} within {args.timeout:.0f} s"
    while time.monotonic() - start < args.timeout:
        if healthy(args.url):
            print(f"ready after {time.monotonic() - start:.1f} s")
            return 0
        state = unit_state(args.unit)
        restarts = int(state.get("NRestarts", "0") or 0) - first
        if state.get("ActiveState") == "failed":
            reason = f"{args.unit} failed (result: {state.get('Result')})"
            break
        if restarts >= args.max_restarts:
            reason = f"{args.unit} died while starting ({restarts} automatic restart(s))"
            break
        time.sleep(1)
    print(f"{reason}; its last journal lines:\n{journal(args.unit)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
