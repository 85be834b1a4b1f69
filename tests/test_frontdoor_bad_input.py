"""Bad front-door input fails before anything changes, naming the variable (site.yml --check).

The same harness as test_bad_input.py: the real site.yml against this machine in --check mode.
"""

import pytest
from test_bad_input import GOOD_KEY, run_site

CASES = {
    "certificate without its key": (
        ["-e", "vm_llm_aimachine_frontdoor_tls_certificate=/etc/hostname"],
        "give a certificate and its key together (llm_frontdoor_tls_certificate",
    ),
    "allowlist entry that is not a network": (
        ["-e", '{"vm_llm_aimachine_frontdoor_allowed_networks": ["192.168.1.0/24", "10.0.0.0/33", "lan"]}'],
        "not networks: ['10.0.0.0/33', 'lan']",
    ),
    "front door on the engine's port": (
        ["-e", "vm_llm_aimachine_frontdoor_port=8000"],
        "must be 1-65535 and differ (the front door cannot take the engine's port)",
    ),
    "non-numeric front door port": (
        ["-e", "vm_llm_aimachine_frontdoor_port=https"],
        "vm_llm_aimachine_frontdoor_port",
    ),
    # The allowlist is a LAN list: the world takes llm_frontdoor_allow_all, never an entry.
    "whole IPv4 space in the allowlist": (
        ["-e", '{"vm_llm_aimachine_frontdoor_allowed_networks": ["0.0.0.0/0"]}'],
        "admit most of the internet: 0.0.0.0/0 (4,294,967,296 addresses)",
    ),
    "whole IPv6 space and a short public prefix": (
        ["-e", '{"vm_llm_aimachine_frontdoor_allowed_networks": ["192.168.1.0/24", "::/0", "8.0.0.0/7"]}'],
        "admit most of the internet: ::/0 (340,282,366,920,938,463,463,374,607,431,768,211,456 addresses), "
        "8.0.0.0/7 (33,554,432 addresses)",
    ),
    "empty allowlist without allow_all": (
        ["-e", '{"vm_llm_aimachine_frontdoor_allowed_networks": []}'],
        "An empty llm_frontdoor_allowed_networks admits no one",
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_frontdoor_input_fails_before_any_change(case):
    extra, expected = CASES[case]
    done = run_site(extra)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert expected in " ".join(out.split()), out[-3000:]
    assert "TASK [vm-llm-aimachine : Apply the components]" not in out, out[-3000:]
    assert "llm_frontdoor : Install nginx" not in out
    assert GOOD_KEY not in out
