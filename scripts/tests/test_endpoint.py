"""One key reader for the bench, the quality harness and the verification (aimachine.endpoint)."""

from __future__ import annotations

import argparse

import pytest
from aimachine import endpoint
from aimachine.bench.cli import read_api_key as bench_key
from aimachine.bench.runner import BenchError
from aimachine.quality.client import EndpointError
from aimachine.quality.client import read_api_key as quality_key


def test_file_first_line_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    key_file = tmp_path / "api_key"
    key_file.write_text("  from-file \nsecond line\n", encoding="utf-8")
    assert endpoint.read_api_key(key_file) == "from-file"
    args = argparse.Namespace(api_key_file=key_file, api_key_env="OPENAI_API_KEY")
    assert bench_key(args) == quality_key(key_file) == "from-file"


def test_environment_names_in_order(monkeypatch):
    monkeypatch.delenv("AIMACHINE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "second")
    assert endpoint.read_api_key(None) == "second"
    monkeypatch.setenv("AIMACHINE_API_KEY", "first")
    assert endpoint.read_api_key(None) == "first"
    assert endpoint.read_api_key(None, ("NO_SUCH_KEY_VARIABLE",)) is None


@pytest.mark.parametrize("content", ["", "\n\n", "   \n"])
def test_an_empty_key_file_is_an_error_in_every_tool(tmp_path, content):
    key_file = tmp_path / "api_key"
    key_file.write_text(content, encoding="utf-8")
    with pytest.raises(endpoint.KeyFileError, match="is empty"):
        endpoint.read_api_key(key_file)
    with pytest.raises(BenchError, match=r"--api-key-file: API key file .* is empty"):
        bench_key(argparse.Namespace(api_key_file=key_file, api_key_env="OPENAI_API_KEY"))
    with pytest.raises(EndpointError, match="is empty"):
        quality_key(key_file)


def test_a_missing_key_file_names_the_file(tmp_path):
    with pytest.raises(endpoint.KeyFileError, match=r"cannot read API key file .*missing"):
        endpoint.read_api_key(tmp_path / "missing")
