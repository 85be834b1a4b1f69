"""The sandbox against hostile samples: each is scored failed, the harness survives, nothing outside changes.

Every hostile sample is a HumanEval/0 solution that first does something hostile at import time and
then defines the correct function: if the sandbox let the hostile part through, the sample would
pass. The fork bomb is bounded even without the sandbox (2**8 processes that stop after 60 s).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aimachine.quality.datasets import Problem, load_humaneval
from aimachine.quality.execution import Executor, Verdict
from aimachine.quality.sandbox import (
    GIB,
    NAMESPACES,
    Limits,
    RunResult,
    Sandbox,
    SandboxError,
    Settings,
    is_running,
    processes_of_uid,
)

REPO = Path(__file__).resolve().parents[2]
# The sandbox replaces these with private, empty directories.
PRIVATE_TEMP = ("/tmp/", "/var/tmp/", "/dev/shm/")


def _shared_dir() -> Path:
    """A directory the sandbox sees (read-only) rather than hides: the checkout's git-ignored
    .cache, unless the checkout itself lies in a temp directory (a CI clone under /tmp)."""
    base = REPO / ".cache"
    if str(REPO).startswith(PRIVATE_TEMP):
        base = Path("/var/cache/aimachine-tests")
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    return base


TIMEOUT_S = 4.0
NPROC = 16
# A distinct range per test process: two test sessions on one machine must not share sandbox uids.
UID_BASE = 2_000_100_000 + (os.getpid() % 50_000) * 8

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the sandbox uses Linux namespaces and rlimits"
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    limits = Limits(timeout_s=TIMEOUT_S, cpu_s=int(TIMEOUT_S), memory_bytes=1 * GIB, nproc=NPROC)
    try:
        box = Sandbox.open(Settings(limits=limits, workers=2, uid_base=UID_BASE))
    except SandboxError as error:
        pytest.skip(f"no sandbox on this machine: {error}")
    yield box
    box.close()


@pytest.fixture(scope="module")
def executor(sandbox: Sandbox) -> Iterator[Executor]:
    pool = Executor(sandbox)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def problem() -> Problem:
    return next(p for p in load_humaneval() if p.task_id == "HumanEval/0")


def run_solution(executor: Executor, problem: Problem, hostile: str) -> tuple[Verdict, RunResult]:
    verdict, result = executor.check(problem, hostile + "\n\n" + problem.canonical)
    assert result is not None
    return verdict, result


def sandbox_processes(sandbox: Sandbox, zombies: bool = True) -> list[int]:
    pids = [pid for uid in sandbox.isolation.uids for pid in processes_of_uid(uid)]
    return pids if zombies else [pid for pid in pids if is_running(pid)]


def test_correct_solution_passes(executor: Executor, problem: Problem) -> None:
    # The control: the hostile samples below fail because of what they do, not because of the setup.
    verdict, result = run_solution(executor, problem, "import math")
    assert verdict.passed, result.stderr


def test_sandbox_runs_unprivileged_in_own_namespaces(sandbox: Sandbox) -> None:
    probe = (
        "import os, socket, time\n"
        "print(os.getuid(), os.getgid(), os.getgroups(), sorted(os.listdir('/')), os.listdir('/usr/lib'))\n"
        "print(os.getcwd(), os.getpid(), socket.if_nameindex(), os.path.exists('/proc/1'), flush=True)\n"
        "time.sleep(1.5)\n"
    )
    seen: dict[str, object] = {}

    def look_from_outside() -> None:
        # The program's host uid, and its namespaces compared with ours, from /proc on the host.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "ns" not in seen:
            for pid in processes_of_uid(sandbox.isolation.uids[1]):
                try:
                    if Path(f"/proc/{pid}/exe").resolve() != Path(sandbox.isolation.python):
                        continue
                    seen["ns"] = {
                        name: os.readlink(f"/proc/{pid}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}")
                        for name in ("user", "mnt", "ipc", "pid", "net", "uts", "cgroup")
                    }
                    seen["groups"] = [
                        line
                        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith(("Uid:", "Groups:", "NoNewPrivs:", "CapEff:"))
                    ]
                except OSError:
                    continue
            time.sleep(0.02)

    watcher = threading.Thread(target=look_from_outside)
    watcher.start()
    result = sandbox.run(probe, slot=1)
    watcher.join()
    assert result.returncode == 0, result.stderr
    ids, where = result.stdout.splitlines()
    assert ids.startswith("1000 1000 [] ['bin', 'dev', 'lib', 'lib64', 'sandbox', 'sbin', 'tmp', 'usr']")
    assert "python3" in ids and "dist-packages" not in ids
    assert where.split()[1] == "1"  # pid 1 of its own pid namespace (--as-pid-1)
    assert "'lo'" in where and "eth" not in where  # only the namespace's own loopback
    assert where.endswith("False")  # no /proc at all
    if sandbox.isolation.mode == "root":
        assert seen["ns"] == dict.fromkeys(NAMESPACES, True) | {"mnt": True}, seen
        uid = sandbox.isolation.uids[1]
        status = seen["groups"]
        assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status, status  # the dedicated uid on the host
        assert "Groups:\t " in status and "CapEff:\t0000000000000000" in status, status  # no groups, no caps
        assert "NoNewPrivs:\t1" in status, status


def test_memory_bomb_fails_fast(executor: Executor, problem: Problem) -> None:
    verdict, result = run_solution(executor, problem, "hoard = bytearray(50 * 1024**3)")
    assert not verdict.passed
    assert verdict.error_kind == "memory"
    assert result.duration_s < TIMEOUT_S / 2


@pytest.mark.parametrize("hostile", ["while True:\n    pass", "import time\ntime.sleep(3600)"])
def test_endless_programs_time_out(
    executor: Executor, sandbox: Sandbox, problem: Problem, hostile: str
) -> None:
    verdict, result = run_solution(executor, problem, hostile)
    assert not verdict.passed
    assert verdict.error_kind == "timeout"
    assert TIMEOUT_S - 0.5 <= result.duration_s < TIMEOUT_S + 3.0
    assert result.leftover_pids == []
    assert sandbox_processes(sandbox) == []


def test_fork_bomb_is_capped_and_cleaned_up(executor: Executor, sandbox: Sandbox, problem: Problem) -> None:
    bomb = (
        "import os, time\n"
        "for _ in range(8):\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"
        "stop = time.time() + 60\n"
        "while time.time() < stop:\n"
        "    pass\n"
    )
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, len(sandbox_processes(sandbox)))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        verdict, result = run_solution(executor, problem, bomb)
    finally:
        done.set()
        watcher.join()
    assert not verdict.passed
    assert verdict.error_kind == "timeout"
    assert result.duration_s < TIMEOUT_S + 3.0
    assert result.leftover_pids == []
    assert sandbox_processes(sandbox) == []
    if sandbox.isolation.mode == "root":
        assert 1 < peak <= NPROC  # it did fork, and no further than RLIMIT_NPROC allows
    # The slot is usable again at once (no zombie holds the uid's process count).
    again, detail = run_solution(executor, problem, "")
    assert again.passed, detail.stderr


def test_daemon_that_escapes_the_session_is_killed(
    executor: Executor, sandbox: Sandbox, problem: Problem
) -> None:
    daemon = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(120)\n"
        "    os._exit(0)\n"
    )
    verdict, result = run_solution(executor, problem, daemon)
    assert verdict.passed, result.stderr  # the solution itself is correct; the point is the cleanup
    assert result.leftover_pids == []
    assert sandbox_processes(sandbox) == []


@pytest.fixture
def canaries() -> Iterator[list[Path]]:
    """World-writable canary files: only the sandbox's read-only and private mounts protect them."""
    roots = [Path(tempfile.mkdtemp(prefix="quality-canary-", dir="/tmp"))]
    roots.append(Path(tempfile.mkdtemp(prefix="quality-canary-", dir=_shared_dir())))
    if Path("/dev/shm").is_dir():
        roots.append(Path(tempfile.mkdtemp(prefix="quality-canary-", dir="/dev/shm")))
    files = []
    for root in roots:
        root.chmod(0o777)
        canary = root / "canary.txt"
        canary.write_text("original\n")
        canary.chmod(0o666)
        files.append(canary)
    yield files
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


def _unchanged(canaries: list[Path]) -> None:
    for canary in canaries:
        assert canary.read_text() == "original\n"
        assert sorted(p.name for p in canary.parent.iterdir()) == ["canary.txt"]
        assert canary.stat().st_mode & 0o777 == 0o666


@pytest.mark.parametrize(
    "action",
    [
        "open({path!r}, 'w').write('overwritten')",
        "open({path!r}, 'a').write('appended')",
        "os.remove({path!r})",
        "os.rename({path!r}, {path!r} + '.moved')",
        "open(os.path.join(os.path.dirname({path!r}), 'new.txt'), 'w').write('x')",
        "shutil.rmtree(os.path.dirname({path!r}))",
        "os.chmod({path!r}, 0o777)",
    ],
)
def test_writes_and_deletes_outside_fail_and_change_nothing(
    executor: Executor, problem: Problem, canaries: list[Path], action: str
) -> None:
    outside = next(c for c in canaries if not str(c).startswith(PRIVATE_TEMP))
    hostile = "import os, shutil\n" + action.format(path=str(outside))
    verdict, result = run_solution(executor, problem, hostile)
    assert not verdict.passed
    # The minimal root does not even show the directory; /usr and the rest are read-only.
    assert "No such file or directory" in result.stderr or "Read-only file system" in result.stderr
    _unchanged(canaries)


def test_temp_directories_are_private(executor: Executor, problem: Problem, canaries: list[Path]) -> None:
    name = f"aimachine-escape-{os.getpid()}-{time.monotonic_ns()}"
    targets = [f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}"]
    shared = [str(c) for c in canaries if str(c).startswith(PRIVATE_TEMP)]
    hostile = (
        "import os\n"
        f"for path in {targets!r}:\n"
        "    if os.path.isdir(os.path.dirname(path)):\n"
        "        open(path, 'w').write('escaped')\n"
        f"for path in {shared!r}:\n"
        "    assert not os.path.exists(path), path  # the host's /tmp is not even visible\n"
    )
    verdict, result = run_solution(executor, problem, hostile)
    assert verdict.passed, result.stderr  # writing its own private /tmp is allowed ...
    for target in targets:
        assert not Path(target).exists()  # ... and none of it reaches the host
    _unchanged(canaries)


def test_network_is_unreachable(executor: Executor, sandbox: Sandbox, problem: Problem) -> None:
    if "net" not in sandbox.isolation.namespaces:
        pytest.skip("no network namespace on this machine")
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.5)
        port = server.getsockname()[1]
        hostile = (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')"
        )
        verdict, result = run_solution(executor, problem, hostile)
        with pytest.raises(TimeoutError):
            server.accept()  # nobody connected
    assert not verdict.passed
    assert "ConnectionRefusedError" in result.stderr or "Network is unreachable" in result.stderr


@pytest.fixture
def sentinel() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("target", ["harness", "sentinel", "everyone"])
def test_killing_the_parent_fails(
    executor: Executor, sandbox: Sandbox, problem: Problem, sentinel: subprocess.Popen[bytes], target: str
) -> None:
    pid = {"harness": os.getpid(), "sentinel": sentinel.pid, "everyone": -1}[target]
    guard = ""
    if target == "everyone":
        # kill(-1) is harmless only for an unprivileged uid or inside a pid namespace: refuse otherwise.
        guard = (
            f"if os.getuid() in (0, {os.getuid()}) and os.getpid() != 1:\n    raise SystemExit('unsafe')\n"
        )
    hostile = f"import os, signal\n{guard}os.kill({pid}, signal.SIGKILL)"
    verdict, result = run_solution(executor, problem, hostile)
    assert not verdict.passed
    assert "unsafe" not in result.stderr
    assert sentinel.poll() is None  # still running
    assert sandbox_processes(sandbox) == []


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "exit()"])
def test_exiting_zero_before_the_tests_is_no_pass(
    executor: Executor, problem: Problem, exit_call: str
) -> None:
    # A clean exit before the call loop answers nothing: the exit status means nothing.
    verdict, result = executor.check(problem, problem.canonical + "\n" + exit_call)
    assert result is not None and result.returncode == 0
    assert not verdict.passed
    assert verdict.error_kind == "exited_early"


def test_output_flood_is_capped(executor: Executor, sandbox: Sandbox, problem: Problem) -> None:
    flood = "import sys\nfor _ in range(2000):\n    sys.stdout.write('x' * 65536)"
    verdict, result = run_solution(executor, problem, flood)
    assert verdict.passed, result.stderr[-500:]  # 128 MB of output, then the correct solution
    assert result.output_truncated
    assert len(result.stdout) <= sandbox.settings.limits.output_bytes


def test_big_file_hits_fsize_limit(executor: Executor, problem: Problem) -> None:
    verdict, result = run_solution(executor, problem, "open('big', 'wb').write(b'0' * (64 * 1024 * 1024))")
    assert not verdict.passed
    assert result.signal_name == "SIGXFSZ" or "File too large" in result.stderr
    assert verdict.error_kind in ("signal", "exception")  # SIGXFSZ, or EFBIG where the signal is ignored


def test_parallel_hostile_batch_then_normal_work(
    executor: Executor, sandbox: Sandbox, problem: Problem
) -> None:
    hostile = [
        "hoard = bytearray(50 * 1024**3)",
        "import os\nos.remove('/etc/hostname')",
        f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)",
        "raise SystemExit(3)",
    ]
    solutions = [h + "\n\n" + problem.canonical for h in hostile] + [problem.canonical] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = [v for v, _ in pool.map(lambda code: executor.check(problem, code), solutions)]
    assert [v.passed for v in verdicts] == [False] * 4 + [True] * 4
    assert sandbox_processes(sandbox) == []


def test_uid_that_belongs_to_a_user_is_refused() -> None:
    if os.geteuid() != 0:
        pytest.skip("dedicated sandbox uids are a root-mode feature")
    with pytest.raises(SandboxError, match="belongs to user 'root'"):
        Sandbox.open(Settings(uid_base=0, workers=1))


def test_uid_with_running_processes_is_refused() -> None:
    if os.geteuid() != 0:
        pytest.skip("dedicated sandbox uids are a root-mode feature")
    uid = UID_BASE + 7
    squatter = subprocess.Popen(["sleep", "30"], user=uid, group=65534, extra_groups=[])
    try:
        with pytest.raises(SandboxError, match="already run as sandbox uid"):
            Sandbox.open(Settings(uid_base=uid, workers=1))
    finally:
        squatter.kill()
        squatter.wait()


def test_bwrap_command_has_every_protection(sandbox: Sandbox, tmp_path: Path) -> None:
    if not sandbox.isolation.bwrap:
        pytest.skip("bubblewrap is not usable here")
    args = sandbox._bwrap_command(sandbox.isolation, [7, 8], 9, ["/usr/bin/python3"])
    for flag in ("--die-with-parent", "--new-session", "--clearenv", "--disable-userns"):
        assert flag in args
    assert {a for a in args if a.startswith("--unshare-")} == {
        f"--unshare-{name}" for name in NAMESPACES if name != "mnt"
    }
    binds = [args[i + 1] for i, a in enumerate(args) if a in ("--bind", "--ro-bind", "--dev-bind")]
    assert "--bind" not in args and "--dev-bind" not in args  # nothing of the host is writable
    assert not any(b.startswith(("/etc", "/run", "/var", "/home", "/root", "/tmp", "/proc")) for b in binds)
    # The program and its inputs are copies from memory files, read-only: no host path of the run's.
    data = [args[i + 1 : i + 3] for i, a in enumerate(args) if a == "--ro-bind-data"]
    assert data == [["7", "/sandbox/in/program.py"], ["8", "/sandbox/in/calls.jsonl"]]


def test_unprivileged_user_gets_user_namespace_sandbox(tmp_path: Path) -> None:
    """As a non-root user: own uid in a user namespace; the user's own files and processes stay safe."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (to become another user) and setpriv")
    user = 1000 + os.getpid() % 20_000 + 40_000  # not the CI user; any unused uid will do
    home = _shared_dir() / f"quality-user-{os.getpid()}"
    home.mkdir(parents=True)
    try:
        canary = home / "own-file.txt"
        canary.write_text("original\n")
        for path in (home, canary):
            os.chown(path, user, user)
        home.chmod(0o700)
        canary.chmod(0o600)
        script = f"""
import json, os, subprocess, sys
sys.path.insert(0, {str(REPO / "scripts" / "src")!r})
from aimachine.quality.sandbox import Limits, Sandbox, Settings
box = Sandbox.open(Settings(limits=Limits(timeout_s=5, cpu_s=5), workers=1))
sentinel = subprocess.Popen(["sleep", "60"])
write = box.run("open({str(canary)!r}, 'w').write('changed')", 0)
kill = box.run("import os, signal\\nos.kill(%d, signal.SIGKILL)" % sentinel.pid, 0)
print(json.dumps({{"iso": box.isolation.as_dict(), "write": write.stderr[-300:], "write_rc": write.returncode,
                  "kill": kill.stderr[-300:], "kill_rc": kill.returncode, "sentinel": sentinel.poll()}}))
sentinel.kill()
box.close()
"""
        proc = subprocess.run(
            [
                "setpriv",
                f"--reuid={user}",
                f"--regid={user}",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                script,
            ],
            capture_output=True,
            check=False,
            text=True,
            timeout=120,
            cwd=tmp_path.anchor,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        )
        if "cannot isolate programs here" in proc.stderr:
            pytest.skip("unprivileged user namespaces are disabled on this machine")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["iso"]["mode"] == "user" and report["iso"]["host_uid"] == "caller"
        assert set(report["iso"]["namespaces"]) == set(NAMESPACES)
        assert report["write_rc"] != 0 and "No such file or directory" in report["write"]
        assert report["kill_rc"] != 0 and "ProcessLookupError" in report["kill"]
        assert report["sentinel"] is None  # the user's own process survived
        assert canary.read_text() == "original\n"
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_signal_name_of_killed_program() -> None:
    result = RunResult(returncode=128 + signal.SIGXFSZ, timed_out=False, duration_s=0.1, stdout="", stderr="")
    assert result.signal_name == "SIGXFSZ"


def test_without_bubblewrap_root_mode_records_partial_isolation_and_still_cleans_up(
    problem: Problem,
) -> None:
    """Root mode where bwrap is missing: the run goes on, recorded as partial; uid reaper, temp sweep."""
    if os.geteuid() != 0:
        pytest.skip("the uid reaper and temp sweep are root-mode fallbacks")
    limits = Limits(timeout_s=TIMEOUT_S, cpu_s=int(TIMEOUT_S), memory_bytes=1 * GIB, nproc=NPROC)
    fallback = Sandbox.open(
        Settings(limits=limits, workers=1, uid_base=UID_BASE + 6, bwrap="/nonexistent/bwrap")
    )
    try:
        iso = fallback.isolation.as_dict()
        assert iso["tool"] == "none" and iso["namespaces"] == () and not iso["full"]
        assert "bubblewrap" in iso["missing"] and "bwrap) not found" in " ".join(iso["notes"])  # type: ignore[arg-type]
        name = f"aimachine-fallback-{os.getpid()}-{time.monotonic_ns()}"
        hostile = (
            "import os, time\n"
            f"open('/tmp/{name}', 'w').write('left behind')\n"
            f"os.makedirs('/var/tmp/{name}/deep')\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    time.sleep(120)\n"
            "print(os.getcwd())\n"
        )
        executor = Executor(fallback)
        verdict, result = executor.check(problem, hostile + "\n" + problem.canonical)
        executor.close()
        assert result is not None and verdict.passed, result.stderr if result else verdict
        workdir = Path(result.stdout.splitlines()[0])
        assert workdir.parent == fallback._base_dir and not workdir.exists()  # fresh per run, removed after
        assert not Path(f"/tmp/{name}").exists() and not Path(f"/var/tmp/{name}").exists()  # swept
        assert result.leftover_pids == []
        # The setsid daemon was killed by uid; its zombie belongs to the host's init until that reaps it.
        assert [p for p in processes_of_uid(UID_BASE + 6) if is_running(p)] == []
    finally:
        fallback.close()


def test_without_bubblewrap_user_mode_refuses_unless_allowed() -> None:
    """Not root and no bubblewrap: nothing would separate a program from the caller's files."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(REPO / 'scripts' / 'src')!r})\n"
        "from aimachine.quality.sandbox import Sandbox, SandboxError, Settings\n"
        "try:\n"
        "    Sandbox.open(Settings(workers=1, bwrap='/nonexistent/bwrap'))\n"
        "    print('opened')\n"
        "except SandboxError as error:\n"
        "    print('refused:', error)\n"
        "box = Sandbox.open(Settings(workers=1, bwrap='/nonexistent/bwrap', allow_weak=True))\n"
        "print(json.dumps(box.isolation.as_dict()))\n"
        "box.close()\n"
    )
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to become an unprivileged user")
        user = 1000 + os.getpid() % 20_000 + 45_000
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "/usr/bin/python3"]
    else:
        command = ["/usr/bin/python3"]
    proc = subprocess.run(
        [*command, "-c", script], capture_output=True, text=True, timeout=60, check=False, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr
    refused, recorded = proc.stdout.splitlines()
    assert refused.startswith("refused: cannot isolate programs here: not root and bubblewrap cannot run")
    iso = json.loads(recorded)
    assert iso["mode"] == "user" and iso["tool"] == "none" and iso["full"] is False
    assert "dedicated uid (runs as the caller's uid)" in iso["missing"]


def test_programs_die_with_a_killed_harness(tmp_path: Path) -> None:
    """SIGKILL the harness mid-run: the launcher and the program follow it (death signals)."""
    if os.geteuid() != 0:
        pytest.skip("counts the sandbox uid's processes, a root-mode feature")
    uid_base = UID_BASE + 4
    running = lambda: [p for p in processes_of_uid(uid_base) if is_running(p)]  # noqa: E731
    limits = "Limits(timeout_s=60, cpu_s=60)"
    script = (
        "import sys\n"
        "from aimachine.quality.sandbox import Limits, Sandbox, Settings\n"
        f"box = Sandbox.open(Settings(limits={limits}, workers=1, uid_base={uid_base}))\n"
        "print('ready', box._base_dir, flush=True)\n"
        "box.run('import os, time\\nif os.fork() == 0:\\n    os.setsid()\\ntime.sleep(120)', 0)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert harness.stdout is not None
        ready, base_dir = harness.stdout.readline().split()
        assert ready == "ready"
        deadline = time.monotonic() + 10
        while (
            len([p for p in processes_of_uid(uid_base) if is_running(p)]) < 4 and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        # bwrap, its pid 1, the program and the program's child
        assert len([p for p in processes_of_uid(uid_base) if is_running(p)]) >= 3
    finally:
        harness.kill()
        harness.wait()
    deadline = time.monotonic() + 5
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running() == []
    shutil.rmtree(base_dir)  # the harness had no chance to remove its (empty) base directory
