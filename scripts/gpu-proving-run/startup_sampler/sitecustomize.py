"""Where a process's start-up time goes: stack samples, armed by AIMACHINE_STACK_DIR (GPU proving runs).

Put this directory first on PYTHONPATH: every interpreter that starts (and every fork child) then
writes its threads' stacks every AIMACHINE_STACK_EVERY seconds (default 1) to
$AIMACHINE_STACK_DIR/stacks-<pid>.txt, for AIMACHINE_STACK_FOR seconds (default 120).
A plain thread, not faulthandler: it keeps working in fork children and stamps each sample.
"""

import os
import sys
import threading
import time
import traceback

_DIR = os.environ.get("AIMACHINE_STACK_DIR")


def _sample(path: str, every: float, until: float) -> None:
    me, main = threading.get_ident(), threading.main_thread().ident
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"# pid {os.getpid()} ppid {os.getppid()} argv {sys.argv!r} at {time.time():.3f}\n")
        while time.time() < until:
            time.sleep(every)
            out.write(f"=== {time.time():.3f} pid {os.getpid()}\n")
            for tid, frame in sys._current_frames().items():
                if tid != me:
                    name = "main" if tid == main else tid
                    out.write(f"--- thread {name}\n" + "".join(traceback.format_stack(frame)[-30:]))
            out.flush()


def _arm() -> None:
    every = float(os.environ.get("AIMACHINE_STACK_EVERY", "1"))
    until = time.time() + float(os.environ.get("AIMACHINE_STACK_FOR", "120"))
    path = os.path.join(_DIR, f"stacks-{os.getpid()}.txt")
    threading.Thread(target=_sample, args=(path, every, until), daemon=True, name="aimachine-stacks").start()


if _DIR:
    os.makedirs(_DIR, exist_ok=True)
    _arm()
    os.register_at_fork(after_in_child=_arm)
