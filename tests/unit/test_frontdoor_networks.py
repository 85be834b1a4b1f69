"""The front door's network filters: which allowlist entries reach beyond the LAN."""

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "roles/llm_frontdoor/filter_plugins/llm_frontdoor.py"
_spec = importlib.util.spec_from_file_location("llm_frontdoor", PATH)
frontdoor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(frontdoor)

DEFAULTS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7"]


def test_the_default_lan_list_is_not_broad():
    assert frontdoor.llm_frontdoor_broad_networks(DEFAULTS) == []


BROAD = [
    "0.0.0.0/0",
    "::/0",
    "0.0.0.0/1",
    "128.0.0.0/1",
    "8.0.0.0/7",
    "11.0.0.0/8",
    "203.0.0.0/15",
    "2001:db8::/32",
]
NARROW = ["203.0.113.0/24", "198.51.100.7", "198.18.0.0/16", "2001:db8:1::/48", "100.64.0.0/10", "fe80::/10"]


@pytest.mark.parametrize("entry", BROAD)
def test_networks_that_cover_much_of_the_internet_are_broad(entry):
    assert [b.split(" ")[0] for b in frontdoor.llm_frontdoor_broad_networks([entry])] == [entry]


@pytest.mark.parametrize("entry", [*NARROW, "10.1.2.3/8"])
def test_a_site_sized_public_network_or_any_local_range_is_not(entry):
    assert frontdoor.llm_frontdoor_broad_networks([entry]) == []


def test_the_count_of_addresses_is_named_and_bad_entries_are_left_to_the_other_check():
    broad = frontdoor.llm_frontdoor_broad_networks(["lan", "0.0.0.0/0"])
    assert broad == ["0.0.0.0/0 (4,294,967,296 addresses)"]
    assert frontdoor.llm_frontdoor_bad_networks(["lan", "0.0.0.0/0"]) == ["lan"]
