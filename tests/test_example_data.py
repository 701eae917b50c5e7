"""The bundled example data: each record has a unique ``id``, so results join back to it (``--keep id``,
``evaluate --id-field id``), and the file stays small enough to commit."""

from __future__ import annotations

import random

import orjson
from support.data import NYR, read_jsonl, write_jsonl
from typer.testing import CliRunner

from zstc_cli.cli.app import app


def test_every_example_record_has_a_unique_id(nyr_rows):
    ids = [row["id"] for row in nyr_rows]
    assert len(set(ids)) == len(ids) == 5011
    assert ids == list(range(1, len(ids) + 1))
    assert NYR.stat().st_size < 5 * 1024 * 1024


def test_keep_id_then_evaluate_joins_on_id(tmp_path, bert_nli, nyr_rows):
    data = write_jsonl(tmp_path / "data.jsonl", nyr_rows[:40])
    predictions = tmp_path / "predictions.jsonl"
    labels = ",".join(sorted({row["Resolution_Category"] for row in nyr_rows[:40]}))
    runner = CliRunner()
    classified = runner.invoke(
        app,
        ["classify", str(data), str(predictions), "--model", str(bert_nli), "--labels", labels, "--keep", "id", "-q"],
    )
    assert classified.exit_code == 0, classified.output
    lines = predictions.read_bytes().splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == [row["id"] for row in nyr_rows[:40]]
    in_order = runner.invoke(app, ["evaluate", str(data), "--label-field", "Resolution_Category", "--from",
                                   str(predictions), "--labels", labels])  # fmt: skip
    random.Random(0).shuffle(lines)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_bytes(b"\n".join(lines) + b"\n")
    joined = runner.invoke(app, ["evaluate", str(data), "--label-field", "Resolution_Category", "--from",
                                 str(shuffled), "--id-field", "id", "--labels", labels])  # fmt: skip
    assert in_order.exit_code == joined.exit_code == 0, joined.output
    assert "accuracy" in joined.stdout.lower() and joined.stdout == in_order.stdout.replace(
        str(predictions), str(shuffled)
    )
    assert len(read_jsonl(shuffled)) == 40
