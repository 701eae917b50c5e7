"""``from zstc_cli import Classifier`` type-checks: the lazy exports are seen by mypy through their
``TYPE_CHECKING`` imports and ``py.typed``, so a user's checker knows the front door's real types (an ``Any``
export would pass any use, right or wrong)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import zstc_cli

USE = """\
from zstc_cli import Classifier, RecordError, RunSummary, Scorer, ScoringError, ZstcError

classifier = Classifier("all-MiniLM-L6-v2", device="cpu")
result = classifier.classify(["I will run a marathon"], ["health", "money"])[0]
reveal_type(result.labels)
reveal_type(classifier.scorer)
summary: RunSummary = classifier.classify_file("in.jsonl", "out.jsonl", labels=["a", "b"])
adapted: Classifier = classifier.adapt("in.jsonl", labels="a,b", adapt_sample=100).load_adaptation("s.json")
scorer: Scorer = adapted.scorer
errors: tuple[type[ZstcError], ...] = (RecordError, ScoringError)
wrong: int = result.scores
classifier.classify(["x"], ["a"], templat="x")
"""


@pytest.mark.slow  # mypy reads torch's and transformers' annotations: about 15 CPU-s
def test_a_users_code_type_checks_against_the_front_door(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "use.py").write_text(USE)
    command = [sys.executable, "-m", "mypy", "--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"),
               "--no-error-summary", "--hide-error-context", "use.py"]  # fmt: skip
    package_root = str(Path(zstc_cli.__file__).resolve().parents[1])  # this checkout, not another install
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "MYPYPATH": package_root}
    )
    found = [line.split("  [")[0] for line in result.stdout.splitlines() if "defined in" not in line]
    assert found == [
        'use.py:5: note: Revealed type is "list[str]"',
        'use.py:6: note: Revealed type is "zstc_cli.scorers.base.Scorer"',
        'use.py:11: error: Incompatible types in assignment (expression has type "list[float]", variable has type "int")',
        'use.py:12: error: Unexpected keyword argument "templat" for "classify" of "Classifier"; did you mean "template"?',
    ], result.stdout + result.stderr
