"""Issue #17's attack classes, each against HumanEval/0, in root mode, user mode and timer mode.

Root mode is this test process (root on CI); user mode runs the same harness as an unprivileged
uid through `setpriv`, with no new privileges and an empty capability bounding set; timer mode
runs it as that uid holding only CAP_SETUID and CAP_SETGID (bounding and ambient), with
``--sandbox-user`` naming an account made for the test, as the verify timer's unit runs it
(roles/llm_verify). Every attack is a "solution" that tries to pass
without solving, or to reach the host; each must fail or be contained, and what it tried to
reach is checked from outside (System V IPC in /proc/sysvipc, the socket's accept queue, the key).
Both modes need bubblewrap: without it the tests skip and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aimachine.quality.datasets import Problem, load_humaneval
from aimachine.quality.execution import Executor
from aimachine.quality.sandbox import GIB, Limits, Sandbox, SandboxError, Settings

REPO = Path(__file__).resolve().parents[2]
UID_BASE = 2_000_200_000 + (os.getpid() % 50_000) * 8
USER_UID = 1000 + os.getpid() % 20_000 + 20_000
# The timer's sandbox account: a fixed-style high uid, no home, nologin (as roles/llm_verify makes it).
ACCOUNT = f"aimtest-sbx-{os.getpid() % 100_000}"
ACCOUNT_UID = 2_100_000_000 + (os.getpid() % 50_000) * 8

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox uses Linux namespaces"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
]

# -- the attacks (each is prepended to nothing: it is the whole solution) ----------------------------

FORGE_FROM_PROGRAM = """
import os, sys
def has_close_elements(numbers, threshold):
    return True
print("PROGRAM:" + open(sys.argv[0]).read())
print("INPUTS:" + open(sys.argv[1]).read())
print("AIMACHINE-TESTS-PASSED", flush=True)
os._exit(0)
"""

FORGE_FROM_FRAMES = """
import gc, os, sys
def has_close_elements(numbers, threshold):
    strings = []
    frame = sys._getframe()
    while frame is not None:
        strings += [c for c in frame.f_code.co_consts if isinstance(c, str)]
        strings += [repr(v)[:200] for v in frame.f_globals.values()]
        frame = frame.f_back
    for obj in gc.get_objects():
        if type(obj).__name__ == "code":
            strings += [c for c in obj.co_consts if isinstance(c, str)]
    print("FRAMES:" + " ".join(strings))
    return True
"""

ALWAYS_EQUAL = """
class AlwaysEqual:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __bool__(self):
        return True
def has_close_elements(numbers, threshold):
    return AlwaysEqual()
"""

EQUAL_INT_SUBCLASS = """
class Sly(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
def has_close_elements(numbers, threshold):
    return Sly(0)
"""

FORGED_ANSWERS = """
import json, os, sys
calls = open(sys.argv[1]).read().splitlines()
out = os.fdopen(int(sys.argv[2]), "w")
for index, _ in enumerate(calls):
    out.write(json.dumps([index, {"value": True}]) + "\\n")
out.close()
os._exit(0)
def has_close_elements(numbers, threshold):
    return True
"""

SHARED_MEMORY = (
    """
import ctypes, ctypes.util
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
IPC_PRIVATE, IPC_CREAT = 0, 0o1000
made = []
for key in range(0x41494D00, 0x41494D0C):
    shm = libc.shmget(key, 256 * 1024 * 1024, IPC_CREAT | 0o666)
    if shm >= 0:
        made.append(shm)
        address = libc.shmat(shm, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memset(address, 1, 4096)
queue = libc.msgget(0x41494D51, IPC_CREAT | 0o666)
class Message(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 32)]
if queue >= 0:
    libc.msgsnd(queue, ctypes.byref(Message(1, b"aimachine-channel")), 32, 0)
print("SHM", len(made), "MSGQ", queue)
"""
    + "\n"
)

SOCKETS = """
import socket
for target in {targets!r}:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(target)
        s.sendall(b"leak")
        print("CONNECTED", repr(target))
    except OSError as error:
        print("REFUSED", repr(target), type(error).__name__)
"""

READ_KEY = """
import os
found = []
for path in {paths!r}:
    try:
        found.append(open(path).read())
    except OSError as error:
        print("NO", path, type(error).__name__)
for fd in range(3, 64):
    try:
        found.append(os.pread(fd, 4096, 0).decode(errors="replace"))
    except OSError:
        pass
print("FOUND:" + repr(found))
"""

CORRECT = """
def has_close_elements(numbers, threshold):
    for i, a in enumerate(numbers):
        for j, b in enumerate(numbers):
            if i != j and abs(a - b) < threshold:
                return True
    return False
"""


def attacks(socket_targets: list[str], key_paths: list[str]) -> dict[str, str]:
    return {
        "control": CORRECT,
        "forge_from_program": FORGE_FROM_PROGRAM,
        "forge_from_frames": FORGE_FROM_FRAMES,
        "always_equal": ALWAYS_EQUAL,
        "equal_int_subclass": EQUAL_INT_SUBCLASS,
        "forged_answers": FORGED_ANSWERS,
        "shared_memory": SHARED_MEMORY + CORRECT,
        "sockets": SOCKETS.format(targets=socket_targets) + CORRECT,
        "read_key": READ_KEY.format(paths=key_paths) + CORRECT,
    }


# -- running them in both modes ---------------------------------------------------------------------

USER_SCRIPT = """
import json, os, sys, types
sys.path.insert(0, {src!r})
from aimachine.quality.execution import Executor
from aimachine.quality.sandbox import Limits, Sandbox, Settings
job = json.loads(sys.stdin.read())
problem = types.SimpleNamespace(**job["problem"])
settings = dict(limits=Limits(timeout_s=8, cpu_s=8), workers=2, **job["settings"])
box = Sandbox.open(Settings(**settings))
executor = Executor(box)
out = {{"isolation": box.isolation.as_dict(), "results": {{}}}}
for name, code in job["attacks"].items():
    verdict, result = executor.check(problem, code)
    out["results"][name] = {{
        "passed": verdict.passed, "kind": verdict.error_kind, "detail": verdict.error_detail,
        "stdout": result.stdout if result else "", "stderr": result.stderr[-2000:] if result else "",
    }}
def caps(pid):
    try:
        with open(f"/proc/{{pid}}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
    except OSError:  # gone meanwhile
        return {{"PPid": ""}}
    return {{k: fields[k].strip() for k in ("Name", "PPid", "CapEff", "CapAmb")}}
# The harness's own capabilities and those of the processes it keeps (the trusted workers).
pids = [p for p in os.listdir("/proc") if p.isdigit()]
children = [c for c in map(caps, pids) if c["PPid"] == str(os.getpid())]
out["caps"] = {{"self": caps("self"), "children": children}}
executor.close()
box.close()
print(json.dumps(out))
"""


def harness_command(mode: str, script: str) -> list[str]:
    """The harness as the verify unit runs it: user mode (no capability), timer mode (setuid/setgid)."""
    caps = "-all" if mode == "user" else "-all,+setuid,+setgid"
    command = [
        "setpriv",
        f"--reuid={USER_UID}",
        f"--regid={USER_UID}",
        "--clear-groups",
        # As the verify unit runs it: NoNewPrivileges=yes, CapabilityBoundingSet= (user mode: empty;
        # timer mode: CAP_SETUID CAP_SETGID, also its AmbientCapabilities).
        "--no-new-privs",
        f"--bounding-set={caps}",
        f"--inh-caps={caps}",
    ]
    if mode == "timer":
        command.append("--ambient-caps=+setuid,+setgid")
    return [*command, "/usr/bin/python3", "-c", script]


def run_as_caller(mode: str, job: dict[str, object]) -> dict[str, object]:
    proc = subprocess.run(
        harness_command(mode, USER_SCRIPT.format(src=str(REPO / "scripts" / "src"))),
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    if "cannot isolate programs here" in proc.stderr:
        pytest.skip(f"bubblewrap cannot run as an unprivileged user here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _problem_job(problem: Problem) -> dict[str, object]:
    return {
        "suite": problem.suite,
        "task_id": problem.task_id,
        "entry_point": problem.entry_point,
        "context": problem.context,
        "test": problem.test,
        "canonical": problem.canonical,
    }


@pytest.fixture(scope="module")
def account() -> Iterator[str]:
    """A sandbox account as the role makes it: own group, fixed high uid/gid, no home, nologin."""
    if shutil.which("useradd") is None or shutil.which("groupadd") is None:
        pytest.skip("timer mode needs useradd/groupadd to make the sandbox account")
    subprocess.run(["groupadd", "-g", str(ACCOUNT_UID), ACCOUNT], check=True, capture_output=True)
    ids = ["-u", str(ACCOUNT_UID), "-g", str(ACCOUNT_UID)]
    useradd = ["useradd", "-M", "-N", *ids, "-d", "/nonexistent", "-s", "/usr/sbin/nologin", ACCOUNT]
    subprocess.run(useradd, check=True, capture_output=True)
    yield ACCOUNT
    subprocess.run(["userdel", ACCOUNT], check=False, capture_output=True)
    subprocess.run(["groupdel", ACCOUNT], check=False, capture_output=True)


def _sysv() -> dict[str, list[str]]:
    found = {}
    for kind in ("shm", "msg"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        found[kind] = sorted(line.split()[1] for line in lines if line.strip())  # the ids
    return found


@pytest.fixture(scope="module")
def problem() -> Problem:
    return next(p for p in load_humaneval() if p.task_id == "HumanEval/0")


@pytest.fixture(scope="module", params=["root", "user", "timer"])
def mode(request: pytest.FixtureRequest) -> str:
    if os.geteuid() != 0:
        pytest.skip("these tests run as root: root mode directly, user and timer mode through setpriv")
    if request.param != "root" and shutil.which("setpriv") is None:
        pytest.skip("user and timer mode need setpriv (util-linux) to become an unprivileged uid")
    return str(request.param)


@pytest.fixture(scope="module")
def world(mode: str) -> Iterator[dict[str, object]]:
    """Host objects the attacks go for: Unix sockets (a path one under /tmp, a root 0777 one under /run,
    an abstract one) and a 0600 key file owned by the uid the harness runs as."""
    owner = 0 if mode == "root" else USER_UID
    place = Path(tempfile.mkdtemp(prefix="aimachine-attack-", dir="/tmp"))
    place.chmod(0o777)
    run_dir = Path(tempfile.mkdtemp(prefix="aimachine-attack-", dir="/run"))
    run_dir.chmod(0o755)
    servers, paths = [], []
    for path in (str(place / "agent.sock"), str(run_dir / "bus.sock")):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        os.chmod(path, 0o777)
        server.listen(4)
        server.settimeout(0.2)
        servers.append(server)
        paths.append(path)
    abstract = f"\0aimachine-attack-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(abstract)
    server.listen(4)
    server.settimeout(0.2)
    servers.append(server)
    key_dir = Path(tempfile.mkdtemp(prefix="aimachine-key-", dir="/var/tmp"))
    key_dir.chmod(0o755)
    key = key_dir / "api_key"
    secret = f"sk-aimachine-secret-{os.getpid()}"
    key.write_text(secret + "\n")
    key.chmod(0o600)
    os.chown(key, owner, owner)
    held = open(key, encoding="utf-8")  # noqa: SIM115 - an open fd of the harness: must not leak in
    yield {
        "sockets": servers,
        "targets": [*paths, abstract],
        "key_paths": [str(key), "/etc/aimachine/verify/api_key"],
        "secret": secret,
    }
    held.close()
    for server in servers:
        server.close()
    shutil.rmtree(place, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(key_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def outcome(
    mode: str, world: dict[str, object], problem: Problem, request: pytest.FixtureRequest
) -> dict[str, object]:
    codes = attacks(world["targets"], world["key_paths"])  # type: ignore[arg-type]
    before = _sysv()
    if mode == "root":
        limits = Limits(timeout_s=8, cpu_s=8, memory_bytes=1 * GIB)
        try:
            box = Sandbox.open(Settings(limits=limits, workers=2, uid_base=UID_BASE))
        except SandboxError as error:
            pytest.skip(f"no sandbox here: {error}")
        executor = Executor(box)
        results = {}
        for name, code in codes.items():
            verdict, result = executor.check(problem, code)
            results[name] = {
                "passed": verdict.passed,
                "kind": verdict.error_kind,
                "detail": verdict.error_detail,
                "stdout": result.stdout if result else "",
                "stderr": result.stderr[-2000:] if result else "",
            }
        isolation, caps = box.isolation.as_dict(), {}
        executor.close()
        box.close()
    else:
        settings = {"user": request.getfixturevalue("account")} if mode == "timer" else {}
        data = run_as_caller(mode, {"problem": _problem_job(problem), "attacks": codes, "settings": settings})
        results, isolation, caps = data["results"], data["isolation"], data["caps"]
    ipc = {"ipc_before": before, "ipc_after": _sysv()}
    return {"results": results, "isolation": isolation, "caps": caps, **ipc}


def _result(outcome: dict[str, object], name: str) -> dict[str, object]:
    return outcome["results"][name]  # type: ignore[index]


def test_isolation_recorded(outcome: dict[str, object], mode: str) -> None:
    iso = outcome["isolation"]
    assert iso["tool"].startswith("bubblewrap")  # type: ignore[index]
    assert set(iso["namespaces"]) == {"user", "mnt", "ipc", "pid", "net", "uts", "cgroup"}  # type: ignore[index]
    assert iso["mode"] == ("root" if mode == "root" else "user") and iso["root_fs"] == "minimal"  # type: ignore[index]
    # User mode runs as the caller's uid (nothing of the caller's is visible): recorded as less than full;
    # timer mode switches to the sandbox account: full.
    assert iso["full"] is (mode != "user"), iso  # type: ignore[index]
    assert iso["host_uid"] == ("caller" if mode == "user" else "dedicated")  # type: ignore[index]
    assert iso["account"] == (ACCOUNT if mode == "timer" else "")  # type: ignore[index]


def test_only_the_uid_switch_holds_the_harness_capabilities(outcome: dict[str, object], mode: str) -> None:
    """Timer mode: the harness holds CAP_SETUID and CAP_SETGID (ambient, so inherited on exec); the
    trusted workers it keeps, which read the candidate's answers, hold none."""
    if mode == "root":
        pytest.skip("root's children are root: nothing to hand down")
    caps = outcome["caps"]
    switch = 1 << 6 | 1 << 7  # CAP_SETGID, CAP_SETUID
    held = int(caps["self"]["CapEff"], 16)  # type: ignore[index]
    assert held & switch == (switch if mode == "timer" else 0), caps
    workers = [c for c in caps["children"] if c["Name"].startswith("python")]  # type: ignore[index]
    assert len(workers) >= 1, caps
    for child in workers:
        assert int(child["CapEff"], 16) == 0 and int(child["CapAmb"], 16) == 0, child


def test_control_passes(outcome: dict[str, object]) -> None:
    control = _result(outcome, "control")
    assert control["passed"], control


def test_forged_pass_from_the_program_file_fails(outcome: dict[str, object], problem: Problem) -> None:
    attack = _result(outcome, "forge_from_program")
    assert not attack["passed"] and attack["kind"] == "exited_early", attack
    # The last "INPUTS:" and marker are the printed ones (the program's text holds them too).
    program, inputs = str(attack["stdout"]).split("PROGRAM:", 1)[1].rsplit("INPUTS:", 1)
    assert "has_close_elements" in program  # it did read its program file ...
    assert "assert candidate" not in program and "def check" not in program  # ... where no test is
    calls = [json.loads(line) for line in inputs.rsplit("AIMACHINE-TESTS-PASSED", 1)[0].split()]
    assert len(calls) == problem.test.count("assert candidate")  # its inputs: the arguments, no results
    assert all(isinstance(call, list) and len(call) == 2 for call in calls)  # [args, kwargs]


def test_forged_pass_from_frames_and_code_constants_fails(outcome: dict[str, object]) -> None:
    attack = _result(outcome, "forge_from_frames")
    assert not attack["passed"] and attack["kind"] == "assertion", attack
    seen = str(attack["stdout"])
    assert "FRAMES:" in seen and "assert candidate" not in seen and "METADATA" not in seen


def test_forged_answers_are_only_data(outcome: dict[str, object]) -> None:
    attack = _result(outcome, "forged_answers")  # "True" for every call, written by hand
    assert not attack["passed"] and attack["kind"] == "assertion", attack


def test_always_equal_result_fails(outcome: dict[str, object]) -> None:
    attack = _result(outcome, "always_equal")
    assert not attack["passed"] and attack["kind"] == "not_plain", attack
    sly = _result(outcome, "equal_int_subclass")  # arrives as the int 0: its __eq__ stays behind
    assert not sly["passed"] and sly["kind"] == "assertion", sly


def test_shared_memory_does_not_outlive_the_run(outcome: dict[str, object]) -> None:
    attack = _result(outcome, "shared_memory")
    assert attack["passed"], attack  # the segments were made (inside), and the solution is correct
    assert "SHM 12" in str(attack["stdout"]) and "MSGQ -1" not in str(attack["stdout"])
    assert outcome["ipc_after"] == outcome["ipc_before"]  # nothing left on the host, no queue to read


def test_host_unix_sockets_are_unreachable(outcome: dict[str, object], world: dict[str, object]) -> None:
    attack = _result(outcome, "sockets")
    assert attack["passed"], attack
    assert "CONNECTED" not in str(attack["stdout"])
    assert str(attack["stdout"]).count("REFUSED") == 3
    for server in world["sockets"]:  # type: ignore[attr-defined]
        with pytest.raises(TimeoutError):
            server.accept()  # nobody connected


def test_key_file_is_unreadable(outcome: dict[str, object], world: dict[str, object]) -> None:
    attack = _result(outcome, "read_key")
    assert attack["passed"], attack
    assert str(world["secret"]) not in str(attack["stdout"]) + str(attack["stderr"])
    assert "FileNotFoundError" in str(attack["stdout"])  # not even visible


OWNERSHIP = """
import os
def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])
print("UIDS", os.getresuid(), os.getresgid(), os.getgroups())
status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith("Cap"))
print("CAPS", {k: v.strip() for k, v in status.items()})
try:
    os.setuid(__CALLER_UID__)
    print("SETUID-OK")
except OSError as error:
    print("SETUID-REFUSED", type(error).__name__)
try:
    print("KEY:" + open(__KEY_PATH__).read())
except OSError as error:
    print("KEY-REFUSED", type(error).__name__)
"""


@pytest.mark.parametrize("caller_mode", ["user", "timer"])
def test_host_ownership_without_the_namespaces(
    caller_mode: str, problem: Problem, request: pytest.FixtureRequest
) -> None:
    """The sandbox uid alone, with bubblewrap taken away (the key's path then visible): in timer mode
    the program runs as the account, with no capability left, and cannot read the verify user's key;
    in user mode (the contrast that shows the test can fail) it can."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the harness as an unprivileged uid")
    # A 0600 key of the harness's uid on a path every uid can reach (as /etc/aimachine/verify is
    # for the verify user): only its owner may read it.
    key_dir = Path(tempfile.mkdtemp(prefix="aimachine-owned-", dir="/var/tmp"))
    key_dir.chmod(0o755)
    secret = f"sk-aimachine-owned-{os.getpid()}"
    key = str(key_dir / "api_key")
    Path(key).write_text(secret + "\n")
    Path(key).chmod(0o600)
    os.chown(key, USER_UID, USER_UID)
    settings: dict[str, object] = {"bwrap": "", "allow_weak": True}
    if caller_mode == "timer":
        settings["user"] = request.getfixturevalue("account")
    code = OWNERSHIP.replace("__CALLER_UID__", str(USER_UID)).replace("__KEY_PATH__", repr(key))
    try:
        data = run_as_caller(
            caller_mode, {"problem": _problem_job(problem), "attacks": {"own": code}, "settings": settings}
        )
    finally:
        shutil.rmtree(key_dir, ignore_errors=True)
    result, iso = data["results"]["own"], data["isolation"]
    assert result["passed"], result
    out = str(result["stdout"])
    assert iso["tool"] == "none" and not iso["full"]  # recorded as partial either way
    if caller_mode == "timer":
        # Slot 0 runs as the account's uid, slot 1 as the next one (unnamed); either way its group only.
        assert any(f"UIDS ({u}, {u}, {u})" in out for u in (ACCOUNT_UID, ACCOUNT_UID + 1)), out
        assert f"({ACCOUNT_UID}, {ACCOUNT_UID}, {ACCOUNT_UID}) []" in out, out  # its group, no others
        for name in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert f"'{name}': '0000000000000000'" in out, out
        assert "SETUID-REFUSED PermissionError" in out and "KEY-REFUSED PermissionError" in out, out
        assert secret not in out
    else:
        assert f"UIDS ({USER_UID}, {USER_UID}, {USER_UID})" in out, out
        assert "KEY:" + secret in out  # the caller's own key: what timer mode prevents
