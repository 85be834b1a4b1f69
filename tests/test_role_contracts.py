"""Every role documents and validates exactly the variables it has.

The role README lists every variable of meta/argument_specs.yml, every variable in
defaults/main.yml has a spec, and a spec's default equals the value in defaults/main.yml.
"""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").exists())


def _specs(role: Path) -> dict:
    path = role / "meta" / "argument_specs.yml"
    assert path.exists(), f"{role.name} has no meta/argument_specs.yml"
    return yaml.safe_load(path.read_text())["argument_specs"]["main"]["options"]


def _defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _prefix(role: Path) -> str:
    return role.name.replace("-", "_") + "_"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_default_has_a_spec(role):
    missing = sorted(set(_defaults(role)) - set(_specs(role)))
    assert not missing, f"{role.name}: defaults without argument_specs: {missing}"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_variables_carry_the_role_prefix(role):
    wrong = sorted(v for v in _specs(role) if not v.startswith(_prefix(role)))
    assert not wrong, f"{role.name}: variables without the {_prefix(role)} prefix: {wrong}"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_spec_defaults_match_defaults_file(role):
    defaults = _defaults(role)
    for name, spec in _specs(role).items():
        if "default" in spec and name in defaults and "{{" not in str(defaults[name]):
            assert spec["default"] == defaults[name], (
                f"{role.name}: {name} spec default differs from defaults/main.yml"
            )


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_readme_lists_every_variable(role):
    readme = role / "README.md"
    assert readme.exists(), f"{role.name} has no README.md"
    text = readme.read_text()
    missing = sorted(v for v in _specs(role) if f"`{v}`" not in text)
    assert not missing, f"{role.name}/README.md does not list: {missing}"
    # And nothing stale: every variable-looking name in the README's table exists.
    table_vars = {
        cell.strip("` ")
        for line in text.splitlines()
        if line.startswith("| `" + _prefix(role))
        for cell in [line.split("|")[1]]
    }
    stale = sorted(table_vars - set(_specs(role)))
    assert not stale, f"{role.name}/README.md lists variables the role does not have: {stale}"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_spec_is_described_and_typed(role):
    for name, spec in _specs(role).items():
        assert spec.get("description"), f"{role.name}: {name} has no description"
        assert spec.get("type"), f"{role.name}: {name} has no type"
