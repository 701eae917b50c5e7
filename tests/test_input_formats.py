"""CSV, TSV, Parquet and plain-text inputs: read as the JSON lines they stand for, through classify, evaluate
and --resume, with FILE:LINE errors numbered as the file is (a CSV's header is line 1)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.cli import invoke_zstc
from support.data import read_jsonl, write_jsonl

from zstc_cli.cli.progress import count_lines
from zstc_cli.engines.local import classify_file
from zstc_cli.errors import Interrupted, RecordError, ZstcError
from zstc_cli.models.spec import load_scorer
from zstc_cli.pipeline import iter_records
from zstc_cli.records import RecordDefaults
from zstc_cli.storage.files import format_of
from zstc_cli.storage.jobs import list_inputs
from zstc_cli.storage.reading import BadRow, iter_lines

LABELS = "health,money,humor"


@pytest.fixture(scope="module")
def rows(nyr_rows) -> list[dict]:
    """Texts with commas, quotes and a newline inside, so that CSV quoting is exercised."""
    picked = [{"id": str(row["id"]), "text": row["text"], "topic": row["Resolution_Category"]} for row in nyr_rows[:30]]
    picked[3]["text"] = 'Say "no" more often,\nand mean it'
    return picked


def write_delimited(path, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_format_comes_from_the_extension_after_any_compression_and_an_explicit_one_wins():
    assert [format_of(name) for name in ("a.csv", "a.TSV.gz", "a.parquet", "a.txt.zst", "a.jsonl", "a.ndjson")] == [
        "csv", "tsv", "parquet", "text", "jsonl", "jsonl",
    ]  # fmt: skip
    assert format_of("-") == "jsonl" and format_of("data.dat", "csv") == "csv" and format_of("a.csv", "text") == "text"


def test_csv_rows_are_numbered_by_the_line_they_start_on(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'\xef\xbb\xbfid,text\r\n1,plain\r\n\r\n2,"two\r\nlines"\r\n3,"a ""quote"""\r\n4,x,extra\r\n')
    got = list(iter_lines(str(path)))
    assert got[:3] == [
        (2, b'{"id":"1","text":"plain"}'),
        (4, b'{"id":"2","text":"two\\r\\nlines"}'),
        (6, b'{"id":"3","text":"a \\"quote\\""}'),
    ]
    assert got[3] == (7, BadRow("3 fields, but the header row names 2 columns", b'["4","x","extra"]'))
    assert list(iter_lines(str(path), after_line=4)) == got[2:]


def test_a_header_naming_a_column_twice_is_refused_at_its_line(tmp_path):
    path = tmp_path / "in.tsv"
    path.write_text("\n\ntext\tid\ttext\na\t1\tb\n")
    with pytest.raises(RecordError, match=r"in\.tsv:3: column 'text' appears twice in the header row"):
        list(iter_lines(str(path)))


def test_text_lines_are_records_with_a_text_field_and_blank_lines_keep_their_numbers(tmp_path):
    path = tmp_path / "in.txt.gz"
    path.write_bytes(gzip.compress(b'\xef\xbb\xbfone\n\n  \n"two", with quotes\r\nbad \xff\n'))
    got = list(iter_lines(str(path)))
    assert got == [(1, b'{"text":"one"}'), (4, b'{"text":"\\"two\\", with quotes"}'), (5, b"bad \xff")]
    items = list(iter_records(str(path), RecordDefaults(labels="a,b")))
    assert [item.text for item in items[:2]] == ["one", '"two", with quotes']
    assert isinstance(items[2], RecordError) and str(items[2]).startswith(f"{path}:5: invalid UTF-8: byte 0xff")


def test_parquet_rows_are_numbered_from_one_and_resume_skips_whole_batches(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(3000)), "text": [f"t{i}" for i in range(3000)]}), path)
    got = list(iter_lines(str(path), after_line=2500))
    assert got[0] == (2501, b'{"id":2500,"text":"t2500"}') and len(got) == 500
    with pytest.raises(ZstcError, match=r"compressed inside; name it \.parquet, without \.gz"):
        list(iter_lines(str(tmp_path / "in.parquet.gz")))
    (tmp_path / "not.parquet").write_bytes(b'{"text": "json"}\n')
    with pytest.raises(ZstcError, match=r"not\.parquet: not a Parquet file"):
        list(iter_lines(str(tmp_path / "not.parquet")))


def test_a_folder_contributes_its_data_files_and_txt_only_when_asked(tmp_path):
    for name in ("a.jsonl", "b.csv.gz", "c.tsv", "d.parquet", "e.txt", "labels.txt", "f.parquet.gz", ".h.csv"):
        (tmp_path / name).write_bytes(b"")
    assert list_inputs(str(tmp_path)) == ["a.jsonl", "b.csv.gz", "c.tsv", "d.parquet"]
    assert list_inputs(str(tmp_path), "text") == ["e.txt", "labels.txt"]
    only_csv = tmp_path / "only-csv"
    only_csv.mkdir()
    (only_csv / "x.csv").write_bytes(b"")
    with pytest.raises(ZstcError, match=r"no \*\.tsv files"):
        list_inputs(str(only_csv), "tsv")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, rows) -> dict[str, str]:
    """The same records as JSON lines, CSV, TSV, Parquet and (texts only) plain text."""
    folder = tmp_path_factory.mktemp("formats")
    pq.write_table(pa.Table.from_pylist(rows), folder / "in.parquet")
    (folder / "in.txt").write_text("".join(row["text"].replace("\n", " ") + "\n" for row in rows), encoding="utf-8")
    return {
        "jsonl": str(write_jsonl(folder / "in.jsonl", rows)),
        "csv": str(write_delimited(folder / "in.csv", rows)),
        "tsv": str(write_delimited(folder / "in.tsv", rows, "\t")),
        "parquet": str(folder / "in.parquet"),
        "text": str(folder / "in.txt"),
    }


CLASSIFY = ("--labels", LABELS, "--keep", "id,topic", "--window", "7")


@pytest.fixture(scope="module")
def from_json_lines(bert_nli, inputs) -> bytes:
    return invoke_zstc("classify", inputs["jsonl"], "-", "--model", bert_nli, *CLASSIFY, check=True).stdout


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet"])
def test_classify_reads_each_format_as_the_same_records_in_json_lines(
    tmp_path, bert_nli, inputs, from_json_lines, kind
):
    args, want = ("--model", bert_nli, *CLASSIFY), from_json_lines
    got = invoke_zstc("classify", inputs[kind], "-", *args, check=True)
    assert got.stdout == want  # byte-identical: same texts, same order, kept columns as the file holds them
    assert b"30 records" in got.stderr
    renamed = tmp_path / "data.dat"
    renamed.write_bytes(Path(inputs[kind]).read_bytes())
    forced = invoke_zstc("classify", renamed, "-", *args, "--input-format", kind, check=True)
    assert forced.stdout == want


def test_classify_reads_plain_text_one_record_a_line(bert_nli, inputs, rows):
    got = invoke_zstc("classify", inputs["text"], "-", "--model", bert_nli, "--labels", LABELS, check=True)
    assert [line["sequence"] for line in read_jsonl_bytes(got.stdout)] == [r["text"].replace("\n", " ") for r in rows]


def read_jsonl_bytes(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines()]


def test_csv_from_stdin_needs_the_format_named(bert_nli, inputs):
    data = Path(inputs["csv"]).read_bytes()
    named = invoke_zstc("classify", "-", "--model", bert_nli, "--labels", LABELS, "--input-format", "csv", input=data)
    assert named.returncode == 0 and len(named.stdout.splitlines()) == 30
    unnamed = invoke_zstc("classify", "-", "--model", bert_nli, "--labels", LABELS, input=data)
    assert unnamed.returncode == 2 and b"zstc: error: -:1: invalid JSON" in unnamed.stderr


def test_a_csv_row_with_extra_fields_is_a_bad_record_named_by_its_line(tmp_path, bert_nli):
    src = tmp_path / "in.csv"
    src.write_text('text,id\nfine,1\n"two\nlines",2\noops,3,4\nlast,5\n')
    failed = invoke_zstc("classify", src, "-", "--model", bert_nli, "--labels", LABELS)
    assert failed.returncode == 2 and failed.stdout == b""
    assert failed.stderr.decode().strip().splitlines()[-1] == (
        f"zstc: error: {src}:5: 3 fields, but the header row names 2 columns"
    )
    bad = tmp_path / "bad.jsonl"
    skipped = invoke_zstc("classify", src, "-", "--model", bert_nli, "--labels", LABELS, "--keep", "id",
                       "--on-error", "skip", "--errors", bad, check=True)  # fmt: skip
    assert [line["id"] for line in read_jsonl_bytes(skipped.stdout)] == ["1", "2", "5"]
    assert read_jsonl(bad) == [{"line": 5, "error": "3 fields, but the header row names 2 columns",
                                "raw": '["oops","3","4"]'}]  # fmt: skip


def test_evaluate_reads_gold_labels_from_csv_and_parquet_as_from_json_lines(tmp_path, bert_nli, inputs):
    args = ("--label-field", "topic", "--model", bert_nli, "--report", "-")
    want = orjson.loads(invoke_zstc("evaluate", inputs["jsonl"], *args, check=True).stdout)["metrics"]
    assert want["confusion_matrix"]
    predictions = tmp_path / "predictions.jsonl"
    got = invoke_zstc("evaluate", inputs["csv"], *args, "--id-field", "id", "--predictions", predictions, check=True)
    assert orjson.loads(got.stdout)["metrics"] == want
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", list(reversed(read_jsonl(predictions))))
    joined = invoke_zstc("evaluate", inputs["parquet"], "--label-field", "topic", "--from", shuffled, "--id-field", "id",
                      "--report", "-", check=True)  # fmt: skip
    assert orjson.loads(joined.stdout)["metrics"] == want  # gold from Parquet joined to predictions on its id column


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet", "text"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_output(tmp_path, bert_nli, inputs, kind):
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    defaults = scorer.with_default_template(RecordDefaults(labels=LABELS))
    clean = tmp_path / "clean.jsonl"
    classify_file(inputs[kind], clean, scorer, defaults, window=4, keep=("id",))
    out = tmp_path / "out.jsonl"
    seen = []

    def stop_after_two_windows(n: int) -> None:
        seen.append(n)
        if len(seen) == 3:  # the resumed count (0), then two windows
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        classify_file(inputs[kind], out, scorer, defaults, window=4, keep=("id",), progress=stop_after_two_windows)
    assert not out.exists()
    summary = classify_file(inputs[kind], out, scorer, defaults, window=4, keep=("id",), resume=True)
    assert summary.resumed == 8 and summary.records == 30
    assert out.read_bytes() == clean.read_bytes()


def test_the_progress_total_counts_records_not_lines(inputs):
    assert [count_lines(inputs[kind]) for kind in ("csv", "tsv", "parquet", "text", "jsonl")] == [30, 30, 30, 30, 30]
    lines = [line for line in Path(inputs["csv"]).read_bytes().split(b"\n") if line.strip()]
    assert count_lines(inputs["csv"], "text") == len(lines) > 31  # read as told: the header and split texts count
