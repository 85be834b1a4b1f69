"""Render every config run7.sh serves, through the appliance's own rendering, on the CPU machine.

Usage (from the checkout's root, Ansible in .venv): python scripts/gpu-proving-run/render_run7.py [OUT]
OUT defaults to .gpu/render7 (git-ignored; the lead carries it). Each file is what
playbooks/render-serving-config.yml writes for the lent H200 capped to a 16 GiB card's budget
(gpu-memory-utilization 0.10826 = 15.13 GiB of CUDA's 139.8 GiB, as in issue 15's table) with
max-model-len 32768; the only edit afterwards is the model path for the generated checkpoints.

- profile.yaml: the 7B AWQ chat model as the appliance sizes it (max-num-seqs from the KV cache).
- profile-256.yaml: profile.yaml with max_num_seqs 256 (vLLM's default below 70 GiB), port 8002 (run 9).
- defaults.yaml: vLLM's defaults with the same cap, max-model-len, model, name and port.
- spec-ngram.yaml, spec-suffix.yaml: profile.yaml with llm_server_vllm_speculation set.
- chat.yaml, coder.yaml, embed.yaml: issue 16's bundle (llm_bundle_sizing on a 16 GiB card, each
  share rescaled to the H200's memory so every instance gets the same bytes), ports 8000-8002.
- tp2-14b.yaml: issue 21's Qwen2.5-14B-Instruct-AWQ over two GPUs, each capped the same way.
- aimachine-llm.env (the unit's environment; placeholder key) and predictions.json (the sizing
  of every file: the KV tokens to hold against vLLM's "GPU KV cache size" line).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks/render-serving-config.yml"
H200 = {
    "name": "NVIDIA H200",
    "memory_total_mib": 143771,
    "memory_reserved_mib": 615,
    "compute_capability": "9.0",
}
CUDA_TOTAL_MIB = H200["memory_total_mib"] - H200["memory_reserved_mib"]
CAP = 0.10826
CARD_16GIB = {"name": "16 GiB card", "memory_total_mib": 16384, "compute_capability": "9.0"}
# The generated coder is the 4-bit variant (make_checkpoint.py qwen2.5-coder-1.5b-awq, 1.15 GB as the
# catalog's variant note computes): the 16-bit one does not fit beside the chat model (docs/sizing.md).
CODER_AWQ = {"weights_gb": 1.15, "quantization": "awq"}
MODELS = {
    "chat": (
        "qwen2.5-7b-instruct-awq",
        "/var/lib/aimachine/models/Qwen2.5-7B-Instruct-AWQ",
        "qwen2.5-7b-instruct",
    ),
    "coder": ("qwen2.5-coder-1.5b", "/tmp/m-coder", "qwen2.5-coder-1.5b"),
    "embed": ("qwen3-embedding-0.6b", "/tmp/m-embed", "qwen3-embedding-0.6b"),
    "tp2-14b": ("qwen2.5-14b-instruct-awq", "/tmp/m-14b", "qwen2.5-14b-instruct"),
}


def _sizing_module():
    spec = importlib.util.spec_from_file_location(
        "llm_sizing", REPO / "roles/llm_server/filter_plugins/llm_sizing.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(
    out: Path, name: str, model: str, path: str, served: str, *, profile: dict, gpus: list, **extra
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        variables = {
            "render_dir": tmp,
            "render_model": model,
            "render_model_path": path,
            "render_served_model_name": served,
            "render_gpus": gpus,
            "render_profile": profile,
            **extra,
        }
        done = subprocess.run(
            [
                shutil.which("ansible-playbook", path=str(REPO / ".venv/bin")) or "ansible-playbook",
                str(PLAYBOOK),
                "-e",
                json.dumps(variables),
            ],
            cwd=REPO,
            env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode:
            sys.exit(f"{name}: render failed\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
        shutil.copy(Path(tmp) / "aimachine-llm.yaml", out / f"{name}.yaml")
        if not (out / "aimachine-llm.env").exists():
            shutil.copy(Path(tmp) / "aimachine-llm.env", out / "aimachine-llm.env")
        sizing = json.loads((Path(tmp) / "sizing.json").read_text())
    print(
        f"{name}.yaml: max-num-seqs {sizing['max_num_seqs']}, KV {sizing['kv_cache_tokens']} tokens, "
        f"utilization {sizing['gpu_memory_utilization']}"
    )
    return sizing


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / ".gpu/render7")
    out.mkdir(parents=True, exist_ok=True)
    # The first render writes the unit's environment afresh (an older one would be kept otherwise).
    (out / "aimachine-llm.env").unlink(missing_ok=True)
    predictions: dict[str, dict] = {}
    base = {"gpu_memory_utilization": CAP, "max_model_len": 32768}
    model, path, served = MODELS["chat"]
    predictions["profile"] = render(out, "profile", model, path, served, profile=base, gpus=[H200])
    predictions["profile-256"] = render(
        out,
        "profile-256",
        model,
        path,
        served,
        profile=dict(base, max_num_seqs=256),
        gpus=[H200],
        render_port=8002,
    )
    for method in ("ngram", "suffix"):
        predictions[f"spec-{method}"] = render(
            out, f"spec-{method}", model, path, served, profile=base, gpus=[H200], render_speculation=method
        )
    profile = yaml.safe_load((out / "profile.yaml").read_text())
    keep = (
        "model",
        "served-model-name",
        "host",
        "port",
        "max-model-len",
        "gpu-memory-utilization",
        "enable-auto-tool-choice",
        "tool-call-parser",
        "generation-config",
    )
    defaults = {k: profile[k] for k in keep if k in profile}
    (out / "defaults.yaml").write_text(
        "# vLLM's defaults: only the model, its name, the address, the cap, the context (and tools).\n"
        + yaml.safe_dump(defaults, sort_keys=False)
    )

    # Issue 16: the bundle on a 16 GiB card, each share rescaled to the same bytes of the H200.
    sizing = _sizing_module()
    catalog = yaml.safe_load((REPO / "roles/vm-llm-aimachine/vars/catalog.yml").read_text())
    catalog = catalog["__vm_llm_aimachine_catalog"]

    def props(key: str, overrides: dict | None = None) -> dict:
        entry = dict(catalog[key], **(overrides or {}))
        return dict(
            entry["shape"], weights_bytes=int(entry["weights_gb"] * 1e9), quantization=entry["quantization"]
        )

    roles = {"chat": "chat", "coder": "autocomplete", "embed": "embed"}
    bundle = sizing.bundle_sizing(
        [
            {"name": n, "role": roles[n], "model": props(MODELS[n][0], CODER_AWQ if n == "coder" else None)}
            for n in roles
        ],
        CARD_16GIB,
    )
    predictions["bundle"] = {"arithmetic": bundle["arithmetic"], "card": CARD_16GIB}
    for port, instance in enumerate(bundle["instances"], start=8000):
        name = instance["name"]
        wishes = {k: v for k, v in sizing.ROLE_PROFILES[instance["role"]].items() if k != "kv_tokens"}
        wishes["gpu_memory_utilization"] = round(
            instance["gpu_memory_utilization"] * CARD_16GIB["memory_total_mib"] / CUDA_TOTAL_MIB, 6
        )
        model, path, served = MODELS[name]
        predictions[name] = render(
            out,
            name,
            model,
            path,
            served,
            profile=wishes,
            gpus=[H200],
            render_port=port,
            render_entry_overrides=CODER_AWQ if name == "coder" else {},
        )
        predictions[name]["bundle_share_of_16gib"] = instance["gpu_memory_utilization"]

    # Issue 21: the 14B over two GPUs, each capped to a 16 GiB card's budget.
    model, path, served = MODELS["tp2-14b"]
    predictions["tp2-14b"] = render(
        out, "tp2-14b", model, path, served, profile=dict(base, tensor_parallel_size=2), gpus=[H200, H200]
    )
    (out / "predictions.json").write_text(json.dumps(predictions, indent=1))
    print(f"wrote {sorted(p.name for p in out.iterdir())}")


if __name__ == "__main__":
    main()
