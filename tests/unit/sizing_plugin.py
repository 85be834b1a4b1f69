"""The sizing filter plugin as a module, for the tests (Ansible loads it by path, not by import), and
the recorded card they size for."""

import importlib.util
from pathlib import Path

PATH = Path(__file__).resolve().parents[2] / "roles/llm_server/filter_plugins/llm_sizing.py"

_spec = importlib.util.spec_from_file_location("llm_sizing", PATH)
sizing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sizing)

# GPU facts as aimachine-gpu-facts reports them for the recorded RTX 4080 SUPER
# (scripts/tests/data/nvidia-smi/rtx-4080-super.query-gpu.csv): 16 GB, driving a KDE desktop.
CARD_16GB_DESKTOP = {
    "name": "NVIDIA GeForce RTX 4080 SUPER",
    "memory_total_mib": 16376,
    "memory_reserved_mib": 434,
    "memory_free_mib": 15348,
    "compute_capability": "8.9",
    "display_active": True,
}
