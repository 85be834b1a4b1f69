"""One line per stack sample of the main thread: seconds since the first sample, then where it was.

Usage: python summarize.py DIR  (the AIMACHINE_STACK_DIR of a start). "Where" is the outermost frame
in vLLM (what it was doing) and the innermost frame (the module being imported, or the call).
"""

import re
import sys
from pathlib import Path

FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def short(path: str) -> str:
    return path.rsplit("site-packages/", maxsplit=1)[-1]


def main() -> None:
    for f in sorted(Path(sys.argv[1]).glob("stacks-*.txt")):
        text = f.read_text(errors="replace")
        head = text.splitlines()[0] if text else f.name
        print(f"## {f.name}: {head[:160]}")
        t0 = None
        for sample in text.split("=== ")[1:]:
            stamp = float(sample.split()[0])
            t0 = stamp if t0 is None else t0
            main_part = sample.split("--- thread main\n", 1)
            if len(main_part) < 2:
                continue
            frames = FRAME.findall(main_part[1].split("--- thread ", 1)[0])
            ours = [fr for fr in frames if "importlib" not in fr[0]]
            vllm = [fr for fr in ours if "/vllm/" in fr[0]]
            outer = f"{short(vllm[-1][0])}:{vllm[-1][1]} {vllm[-1][2]}" if vllm else "-"
            inner = " < ".join(f"{short(p)}:{n} {fn}" for p, n, fn in ours[-2:][::-1])
            print(f"{stamp - t0:6.1f}  {outer}  |  {inner}")


if __name__ == "__main__":
    main()
