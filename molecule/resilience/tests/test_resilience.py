"""After the side effect: the bad upgrade left no trace, the kill -9 was recovered by systemd."""

import json

SERVICE = "aimachine-llm"
KNOWN_GOOD = "/var/lib/aimachine/known-good"


def test_known_good_record_is_root_only_and_names_what_serves(host):
    directory = host.file(KNOWN_GOOD)
    assert directory.user == "root" and directory.mode == 0o700
    with host.sudo():
        record = json.loads(host.file(f"{KNOWN_GOOD}/known-good.json").content_string)
    assert record["engine"] == "transformers"
    assert record["extra_args"] == []
    assert record["model_path"] == "/var/lib/aimachine/models/tiny-qwen2"
    assert host.file(record["venv"] + "/bin/transformers").exists
    exec_start = host.check_output(f"systemctl show -p ExecStart --value {SERVICE}")
    # The CPU engine loads the served name, a link to the model directory in its working directory.
    name = json.loads(host.check_output("curl -sf http://127.0.0.1:8000/v1/models"))["data"][0]["id"]
    link = host.file(f"/var/lib/aimachine/server/names/{name}")
    assert record["venv"] in exec_start and link.linked_to == record["model_path"]


def test_live_files_equal_the_known_good_copies(host):
    with host.sudo():
        for live, saved in (
            (f"/etc/systemd/system/{SERVICE}.service", "unit"),
            (f"/etc/aimachine/{SERVICE}.env", "env"),
        ):
            assert host.file(live).sha256sum == host.file(f"{KNOWN_GOOD}/{saved}").sha256sum, live
            assert host.file(f"{KNOWN_GOOD}/{saved}").mode == 0o600


def test_bad_argument_is_gone_from_the_unit(host):
    unit = host.file(f"/etc/systemd/system/{SERVICE}.service").content_string
    assert "--max-num-seqs" not in unit
    assert host.service(SERVICE).is_running


def test_the_bad_start_and_the_kill_are_in_the_journal(host):
    with host.sudo():
        journal = host.check_output(f"journalctl -u {SERVICE} --no-pager -o cat")
    assert "No such option '--max-num-seqs'" in journal
    assert "Main process exited, code=killed, status=9/KILL" in journal
    # systemd restarted it on its own after the kill (not the role).
    assert int(host.check_output(f"systemctl show -p NRestarts --value {SERVICE}")) >= 1
