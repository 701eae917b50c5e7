"""What the input alone decides is refused before any model loads: the loader is never called, no 0% bar
is drawn, and the error is the FILE:LINE one-liner with exit code 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from zstc_cli.cli.app import app
from zstc_cli.models.spec import ModelSpec


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the model fails the test: a refusal must come first."""
    calls = []

    def load(self, quiet=False):
        calls.append(self.name)
        raise AssertionError(f"the model {self.name} was loaded before the input was checked")

    monkeypatch.setattr(ModelSpec, "load", load)
    return calls


CASES = {
    "invalid JSON": (b'{"text": "cut off\n{"text": "fine"}\n', (), ":1: invalid JSON: unexpected end of data: line 1 column 18 (char 17)"),
    "no labels": (b'{"text": "fine"}\n', ("--labels-field", "tags"), ":1: no labels: no 'tags' field, and --labels not given"),
    "no text field": (b'{"body": "fine", "categories": ["a", "b"]}\n', (), ":1: no text field (looked for 'text', 'inputs', 'sequence')"),
    "csv without the column": (b"id,body\n1,fine\n", ("--labels", "a,b"), ":2: no text field (looked for 'text', 'inputs', 'sequence')"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_refused_before_the_model_loads(tmp_path, no_loading, name):
    data, extra, message = CASES[name]
    src = tmp_path / ("in.csv" if name.startswith("csv") else "in.jsonl")
    src.write_bytes(data)
    result = CliRunner().invoke(app, ["classify", str(src), str(tmp_path / "out.jsonl"), *extra])
    assert result.exit_code == 2 and no_loading == []
    assert result.stderr == f"zstc: error: {src}{message}\n"  # one line: no bar, no traceback
    assert not (tmp_path / "out.jsonl").exists()


def test_a_bad_first_record_with_on_error_skip_still_runs(tmp_path, no_loading):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "cut off\n{"text": "fine"}\n')
    bad = tmp_path / "bad.jsonl"
    result = CliRunner().invoke(
        app, ["classify", str(src), "-", "--labels", "a,b", "--on-error", "skip", "--errors", str(bad)]
    )
    assert no_loading == ["facebook/bart-large-mnli"]  # skipping bad records is asked for: the run goes on to load
    assert result.exit_code == 1


def test_evaluate_refuses_a_record_without_text_before_the_model_loads(tmp_path, no_loading):
    src = tmp_path / "gold.jsonl"
    src.write_bytes(b'{"body": "fine", "topic": "a"}\n{"body": "also", "topic": "b"}\n')
    result = CliRunner().invoke(app, ["evaluate", str(src), "--label-field", "topic"])
    assert result.exit_code == 2 and no_loading == []
    assert result.stderr == f"zstc: error: {src}:1: no text field (looked for 'text', 'inputs', 'sequence')\n"
