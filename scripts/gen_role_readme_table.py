"""Print the variables table of a role's README from its meta/argument_specs.yml.

Usage: python scripts/gen_role_readme_table.py roles/<role>
"""

import sys
from pathlib import Path

import yaml


def table(role: Path) -> str:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name, spec in specs.items():
        desc = spec.get("description", "")
        desc = " ".join(desc) if isinstance(desc, list) else desc
        default = spec.get("default", "(required)" if spec.get("required") else "(computed)")
        shown = "" if default == "" else default
        rows.append(f"| `{name}` | {spec.get('type', '')} | `{shown}` | {desc.replace('|', '/')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
