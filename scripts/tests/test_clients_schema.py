"""The generated Continue config.yaml against Continue's own published schema package.

@continuedev/config-yaml (pinned in scripts/tests/data/continue-config-yaml/package-lock.json) is
what Continue loads config.yaml with: its parser (a zod schema) and its validator. `npm ci` installs
it once into .cache/continue-config-yaml/ (git-ignored; again when the lock file changes); validate.mjs
there runs both and also fails a key the schema drops (zod ignores unknown keys). Needs node and npm
(scripts/bootstrap-host.sh installs them) and the npm registry the first time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from aimachine.report.clients import write_clients

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).parent / "data" / "continue-config-yaml"
CACHE = ROOT / ".cache" / "continue-config-yaml"
PACKAGE_FILES = ("package.json", "package-lock.json", "validate.mjs")

FIM = {
    "prefix": "<|fim_prefix|>",
    "suffix": "<|fim_suffix|>",
    "middle": "<|fim_middle|>",
    "stop": ["<|endoftext|>"],
}
BUNDLE = [
    {"name": "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", "role": "chat", "max_model_len": 16384},
    {"name": "Qwen/Qwen2.5-Coder-1.5B", "role": "autocomplete", "max_model_len": 8192, "fim": FIM},
    {"name": "Qwen/Qwen3-Embedding-0.6B", "role": "embed", "dimensions": 1024},
]


@pytest.fixture(scope="module")
def validator() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(
            f"node and npm are needed for Continue's schema package (node: {node}, npm: {npm}); "
            "scripts/bootstrap-host.sh installs them"
        )
    stamp = hashlib.sha256(b"".join((SOURCE / name).read_bytes() for name in PACKAGE_FILES)).hexdigest()
    if (CACHE / ".stamp").exists() and (CACHE / ".stamp").read_text() == stamp:
        return CACHE / "validate.mjs"
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    for name in PACKAGE_FILES:
        shutil.copy2(SOURCE / name, CACHE / name)
    # --ignore-scripts: nothing of the package runs at install; the lock's integrity hashes are checked.
    done = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=CACHE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    installed = json.loads((CACHE / "node_modules/@continuedev/config-yaml/package.json").read_text())
    pinned = json.loads((SOURCE / "package.json").read_text())["dependencies"]["@continuedev/config-yaml"]
    assert installed["version"] == pinned
    (CACHE / ".stamp").write_text(stamp)
    return CACHE / "validate.mjs"


def _validate(validator: Path, *files: Path) -> tuple[int, list[dict]]:
    done = subprocess.run(
        ["node", str(validator), *map(str, files)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip(), done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def _endpoint(tmp_path: Path, **extra) -> dict:
    return {
        "base_url": "https://192.0.2.10:8443/v1",
        "model": BUNDLE[0]["name"],
        "key_env": "AIMACHINE_API_KEY",
        "key_file": str(tmp_path / "api_key"),
        "via": "front door",
        "ca_file": "/ctl/frontdoor-ca.crt",
        **extra,
    }


def test_the_multi_model_config_is_valid_with_every_role(validator, tmp_path):
    write_clients(tmp_path / "c", _endpoint(tmp_path, models=BUNDLE))
    rc, [result] = _validate(validator, tmp_path / "c" / "continue-config.yaml")
    assert rc == 0 and result["ok"], result
    assert result["warnings"] == []  # e.g. Continue warns of an instruct model for autocomplete
    assert [m["roles"] for m in result["models"]] == [["chat", "edit", "apply"], ["autocomplete"], ["embed"]]


def test_the_single_model_config_is_valid(validator, tmp_path):
    write_clients(tmp_path / "c", {**_endpoint(tmp_path), "via": "engine (loopback)", "ca_file": None})
    rc, [result] = _validate(validator, tmp_path / "c" / "continue-config.yaml")
    assert rc == 0 and result["ok"] and [m["roles"] for m in result["models"]] == [["chat", "edit", "apply"]]


def test_the_validator_fails_a_wrong_role_an_unknown_key_or_a_missing_model(validator, tmp_path):
    write_clients(tmp_path / "c", _endpoint(tmp_path, models=BUNDLE))
    good = (tmp_path / "c" / "continue-config.yaml").read_text()
    (tmp_path / "role.yaml").write_text(good.replace("  - embed\n", "  - embedding\n"))
    (tmp_path / "key.yaml").write_text(good.replace("apiBase:", "apiBsae:", 1))
    (tmp_path / "model.yaml").write_text(good.replace("  model: Qwen/Qwen3-Embedding-0.6B\n", ""))
    rc, results = _validate(validator, tmp_path / "role.yaml", tmp_path / "key.yaml", tmp_path / "model.yaml")
    assert rc == 1 and [r["ok"] for r in results] == [False, False, False], results
    assert "models.2" in results[0]["errors"][0]
    assert results[1]["errors"] == ["unknown key .models[0].apiBsae (dropped by Continue's schema)"]
    assert "models.2" in results[2]["errors"][0]
