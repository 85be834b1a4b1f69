#!/usr/bin/python3
"""kill -9 a unit's main process and time until its /v1/models answers 200 again (JSON on stdout).

Two figures: ``restarted_after`` (systemd started a new main process: RestartSec plus fork/exec)
and ``seconds`` (the endpoint answers again: that plus the engine's own start, importing torch
and loading the model).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request


def main_pid(unit: str) -> int:
    out = subprocess.run(
        ["systemctl", "show", "-p", "MainPID", "--value", unit], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip() or 0)


def answers(url: str, key: str) -> bool:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200 and bool(json.load(response).get("data"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--unit", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    key = os.environ["AIMACHINE_API_KEY"]
    if not answers(args.url, key):
        print(json.dumps({"recovered": False, "error": "not serving before the kill"}))
        return 1
    old = main_pid(args.unit)
    os.kill(old, signal.SIGKILL)
    start = time.monotonic()
    recovered = False
    restarted_after = None  # systemd's part: a new main process exists
    while time.monotonic() - start < args.timeout:
        pid = main_pid(args.unit)
        if pid not in (0, old) and restarted_after is None:
            restarted_after = round(time.monotonic() - start, 1)
        if restarted_after is not None and answers(args.url, key):
            recovered = True
            break
        time.sleep(0.2)
    seconds = round(time.monotonic() - start, 1)
    result = {
        "recovered": recovered,
        "seconds": seconds,
        "restarted_after": restarted_after,
        "old_pid": old,
        "new_pid": main_pid(args.unit),
    }
    print(json.dumps(result))
    return 0 if recovered else 1


if __name__ == "__main__":
    sys.exit(main())
