"""The engine unit's sandbox: systemd's own exposure score, and what the running engine really has.

The container runs systemd without CAP_SYS_ADMIN, so systemd skips the mount-namespace settings
(ProtectSystem, PrivateTmp, ...) there; the score reads the unit, and the checks on /proc below
cover what is enforced even in the container (no_new_privs, seccomp, capabilities).
"""

import json
import re

SERVICE = "aimachine-llm"
ENV_FILE = "/etc/aimachine/aimachine-llm.env"
STATE_DIR = "/var/lib/aimachine/server"
MAX_EXPOSURE = 3.0
_OVERALL = re.compile(r"Overall exposure level for \S+: (?P<score>\d+\.\d+) ")


def _main_pid(host):
    pid = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    assert pid.isdigit() and int(pid) > 0, f"{SERVICE} has no main process"
    return pid


def test_exposure_score_at_most_3(host):
    # systemd-analyze exits non-zero when a --threshold is passed; without one it only reports.
    report = host.check_output(f"systemd-analyze security --no-pager {SERVICE}.service")
    match = _OVERALL.search(report)
    assert match, report[-2000:]
    assert float(match["score"]) <= MAX_EXPOSURE, report


def test_unit_file_verifies(host):
    done = host.run(f"systemd-analyze verify /etc/systemd/system/{SERVICE}.service")
    assert done.rc == 0 and "aimachine-llm" not in done.stderr, done.stderr


def test_engine_has_no_privileges_and_a_syscall_filter(host):
    status = host.file(f"/proc/{_main_pid(host)}/status").content_string
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # filter mode: SystemCallFilter and RestrictAddressFamilies
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap].strip(), 16) == 0, (cap, fields[cap])


def test_sandbox_settings_as_systemd_loaded_them(host):
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {SERVICE} -p ProtectSystem -p ProtectHome -p PrivateTmp -p PrivateDevices "
            "-p ReadWritePaths -p RestrictAddressFamilies -p IPAddressDeny -p Restart -p UMask "
            "-p MemoryDenyWriteExecute"
        ).splitlines()
    )
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes" and props["PrivateDevices"] == "yes"
    assert props["ReadWritePaths"] == STATE_DIR
    assert sorted(props["RestrictAddressFamilies"].split()) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert props["IPAddressDeny"]  # everything, with loopback allowed
    assert props["Restart"] == "always"
    assert props["UMask"] == "0027"
    # JIT compilers (torch, Triton) need writable+executable pages.
    assert props["MemoryDenyWriteExecute"] == "no"


def test_compile_caches_live_in_the_kept_state_dir(host):
    # The engine's /proc/<pid>/environ is closed even to root in the container (no CAP_SYS_PTRACE
    # across users), so read what systemd hands it: the unit's HOME and the EnvironmentFile's
    # cache variables (only those lines: the file also holds the API key).
    names = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "XDG_CACHE_HOME", "HF_HOME")
    with host.sudo():
        lines = host.check_output(f"grep -E '^({'|'.join(names)})=' {ENV_FILE}").splitlines()
    env = dict(line.split("=", 1) for line in lines)
    assert sorted(env) == sorted(names), lines
    for name in names:
        assert env[name].startswith(STATE_DIR + "/"), (name, env[name])
    unit_env = host.check_output(f"systemctl show -p Environment --value {SERVICE}")
    assert f"HOME={STATE_DIR}" in unit_env.split()
    assert STATE_DIR in host.check_output(f"systemctl show -p ReadWritePaths --value {SERVICE}")


def test_hardened_engine_still_serves(host):
    key = next(
        line.split("=", 1)[1]
        for line in host.file(ENV_FILE).content_string.splitlines()
        if line.startswith("AIMACHINE_API_KEY=")
    )
    models = json.loads(
        host.check_output(f"curl -sf -H 'Authorization: Bearer {key}' http://127.0.0.1:8000/v1/models")
    )
    assert models["data"], models
