"""The sizing filter plugin as a module, for the tests (Ansible loads it by path, not by import)."""

import importlib.util
from pathlib import Path

PATH = Path(__file__).resolve().parents[2] / "roles/llm_server/filter_plugins/llm_sizing.py"

_spec = importlib.util.spec_from_file_location("llm_sizing", PATH)
sizing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sizing)
