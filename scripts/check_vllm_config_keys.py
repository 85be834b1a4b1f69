#!/usr/bin/env python3
"""Check a rendered `vllm serve --config` YAML against vLLM's own argument definitions.

Run it with the Python of a venv that has the pinned vLLM (nothing is started, no GPU needed):

    /path/to/vllm-venv/bin/python scripts/check_vllm_config_keys.py vllm-config.yaml

Fails (exit 1) when a key is not a `vllm serve` option (renamed or removed flag), when a key set
to false has no --no-<key> form (vLLM would silently drop it), when vLLM's parser rejects a value,
when its serve-argument validation fails, or when the tool-call/reasoning parser is not one vLLM
knows, or when a speculative-config is not a SpeculativeConfig (unknown field or method).
A rendered EnvironmentFile (a path ending in .env) is checked too: every VLLM_* name in it must be
one of the variables vLLM reads (vllm.envs), so a renamed or removed one fails instead of being
ignored.
Deprecated options are reported, and fail with --strict.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import os
import sys
from pathlib import Path
from typing import Any

# Building vLLM's parser computes config defaults, and the device default fails on a host
# without an accelerator ("Failed to infer device type"). VLLM_TARGET_DEVICE=cpu makes vLLM use
# its CPU platform, as its own CPU-only CI does; option names do not depend on the platform.
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")


def build_serve_parser() -> tuple[Any, Any]:
    """(top-level parser, `vllm serve` subparser), built the way `vllm serve` builds them."""
    from vllm.utils.argparse_utils import FlexibleArgumentParser  # noqa: PLC0415

    parser = FlexibleArgumentParser(prog="vllm")
    subparsers = parser.add_subparsers(dest="subparser")
    try:
        from vllm.entrypoints.cli.serve import ServeSubcommand  # noqa: PLC0415

        serve = ServeSubcommand().subparser_init(subparsers)
    except ImportError:  # older layouts
        from vllm.entrypoints.openai.cli_args import make_arg_parser  # noqa: PLC0415

        serve = make_arg_parser(subparsers.add_parser("serve"))
    return parser, serve


def check_keys(config: dict[str, Any], serve: Any) -> tuple[list[str], list[str]]:
    """Errors and warnings about the keys themselves (names, false booleans, deprecations)."""
    errors: list[str] = []
    warnings: list[str] = []
    options = serve._option_string_actions  # argparse's own index of option strings
    deprecated = getattr(serve, "_deprecated", set())
    known = sorted(o[2:] for o in options if o.startswith("--"))
    for key, value in config.items():
        if not isinstance(key, str) or not key:
            errors.append(f"{key!r}: keys must be option names")
            continue
        # vLLM turns underscores in option names into dashes before parsing.
        option = "--" + key.replace("_", "-")
        action = options.get(option)
        if action is None:
            close = difflib.get_close_matches(key.replace("_", "-"), known, n=3)
            hint = f" (did you mean: {', '.join(close)}?)" if close else ""
            errors.append(f"{key}: not a `vllm serve` option{hint}")
            continue
        if value is False and ("--no-" + key.replace("_", "-")) not in options:
            errors.append(f"{key}: false has no --no-{key} form, so vLLM drops it silently; remove the key")
        if action in deprecated:
            warnings.append(f"{key}: deprecated in this vLLM")
    return errors, warnings


def _literal_values(tp: Any) -> set[str]:
    """Every string of a (nested) typing.Literal."""
    import typing  # noqa: PLC0415

    values: set[str] = set()
    for arg in typing.get_args(tp):
        if isinstance(arg, str):
            values.add(arg)
        else:
            values |= _literal_values(arg)
    return values


def check_speculative_config(spec: Any) -> list[str]:
    """The parsed --speculative-config against vLLM's SpeculativeConfig: a mapping whose keys are
    its fields and whose method is one it knows (the rest needs the model: vLLM checks it at start)."""
    import dataclasses  # noqa: PLC0415

    from vllm.config.speculative import SpeculativeConfig, SpeculativeMethod  # noqa: PLC0415

    if not isinstance(spec, dict):
        return [f"speculative-config must be a JSON object, got {type(spec).__name__}"]
    errors = []
    fields = {f.name for f in dataclasses.fields(SpeculativeConfig)}
    for key in sorted(set(spec) - fields):
        close = difflib.get_close_matches(key, sorted(fields), n=3)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        errors.append(f"speculative-config: {key} is not a SpeculativeConfig field{hint}")
    methods = _literal_values(SpeculativeMethod)
    method = spec.get("method")
    if method is not None and method not in methods:
        known = ", ".join(sorted(methods))
        errors.append(f"speculative-config: method {method!r} is not one of vLLM's: {known}")
    return errors


def check_values(path: Path, parser: Any, config: dict[str, Any]) -> list[str]:
    """Let vLLM parse the file as `vllm serve --config` does, then run its serve-argument checks."""
    errors: list[str] = []
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(["serve", "--config", str(path)])
    except SystemExit:
        lines = stderr.getvalue().strip().splitlines() or ["(no message)"]
        return [f"vLLM's parser rejected the file: {lines[-1]}"]
    except (ValueError, TypeError) as error:
        return [f"vLLM's parser rejected the file: {error}"]

    from vllm.entrypoints.common.cli_args import validate_parsed_serve_args  # noqa: PLC0415

    try:
        validate_parsed_serve_args(args)
    except (TypeError, ValueError, KeyError) as error:
        errors.append(f"vLLM's serve-argument validation: {error}")

    spec = getattr(args, "speculative_config", None)
    if spec is not None:
        errors += check_speculative_config(spec)
    if config.get("tool-call-parser") or config.get("tool_call_parser"):
        from vllm.tool_parsers import ToolParserManager  # noqa: PLC0415

        known = ToolParserManager.list_registered()
        if args.tool_call_parser not in known:
            errors.append(
                f"tool-call-parser {args.tool_call_parser!r} is not one of vLLM's: {', '.join(known)}"
            )
    if config.get("reasoning-parser") or config.get("reasoning_parser"):
        from vllm.reasoning import ReasoningParserManager  # noqa: PLC0415

        known = ReasoningParserManager.list_registered()
        if args.reasoning_parser not in known:
            errors.append(
                f"reasoning-parser {args.reasoning_parser!r} is not one of vLLM's: {', '.join(known)}"
            )
    return errors


def check_env_file(path: Path) -> tuple[list[str], int]:
    """(errors, how many VLLM_* names) for an EnvironmentFile's VLLM_* variables."""
    from vllm import envs  # noqa: PLC0415

    known = set(envs.environment_variables)
    names = []
    for line in path.read_text().splitlines():
        name = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and name.startswith("VLLM_"):
            names.append(name)
    errors = []
    for name in names:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            errors.append(
                f"{name} is not a variable vLLM reads" + (f" (did you mean {near[0]}?)" if near else "")
            )
    return errors, len(names)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("configs", nargs="+", type=Path, help="rendered vLLM config YAML (and .env) files")
    cli.add_argument("--strict", action="store_true", help="deprecated options fail too")
    args = cli.parse_args(argv)

    import yaml  # noqa: PLC0415 - vLLM depends on PyYAML
    from vllm import __version__ as vllm_version  # noqa: PLC0415

    parser, serve = build_serve_parser()
    failed = False
    for path in args.configs:
        if path.suffix == ".env":
            errors, count = check_env_file(path)
            for error in errors:
                print(f"{path}: error: {error}", file=sys.stderr)
            failed = failed or bool(errors)
            if not errors:
                print(f"{path}: {count} VLLM_* variables are read by vLLM {vllm_version}")
            continue
        if path.suffix not in (".yaml", ".yml"):
            print(f"{path}: vLLM only reads .yaml/.yml config files", file=sys.stderr)
            failed = True
            continue
        config = yaml.safe_load(path.read_text())
        if not isinstance(config, dict) or not config:
            print(f"{path}: not a YAML mapping of options", file=sys.stderr)
            failed = True
            continue
        errors, warnings = check_keys(config, serve)
        if not errors:
            errors = check_values(path, parser, config)
        if args.strict:
            errors += warnings
            warnings = []
        for warning in warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        for error in errors:
            print(f"{path}: error: {error}", file=sys.stderr)
        if errors:
            failed = True
        else:
            print(f"{path}: {len(config)} keys are valid `vllm serve` options of vLLM {vllm_version}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
