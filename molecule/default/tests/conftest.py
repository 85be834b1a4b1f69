"""What the scenarios' tests share: default's own (debian13 runs them too), linked into the
resilience, gateway and ray scenarios' test directories."""

import re

import pytest

CAP_SYS_ADMIN = 21
_OVERALL = re.compile(r"Overall exposure level for \S+: (?P<score>\d+\.\d+) ")


@pytest.fixture
def can_filter(host):
    """Whether this host's systemd can install seccomp filters for a service user.

    systemd 256 and later cannot without CAP_SYS_ADMIN in PID 1 (systemd#34565), and there the
    systemd_sandbox role has the units leave those settings out. Read here independently of it.
    """
    version = int(host.check_output("systemctl --version").split()[1])
    cap_eff = next(
        line.split(":", 1)[1].strip()
        for line in host.file("/proc/1/status").content_string.splitlines()
        if line.startswith("CapEff:")
    )
    return version < 256 or bool(int(cap_eff, 16) >> CAP_SYS_ADMIN & 1)


@pytest.fixture
def exposure(host):
    """systemd's overall exposure score of a unit, and the whole report for the message."""

    def score(unit):
        # systemd-analyze exits non-zero when a --threshold is passed; without one it only reports.
        report = host.check_output(f"systemd-analyze security --no-pager {unit}")
        match = _OVERALL.search(report)
        assert match, report[-2000:]
        return float(match["score"]), report

    return score
