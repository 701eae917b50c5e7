"""The `zstc` command: files, pipes, compression, order, errors (in-process; real processes for the pipes)."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys

import orjson
import pytest
from support.cli import invoke_zstc
from support.data import read_jsonl, write_jsonl

from zstc_cli.engines.local import classify_texts
from zstc_cli.models.spec import load_scorer

LABELS = ["health", "money", "humor", "career", "family"]


@pytest.fixture(scope="module")
def mixed_rows(nyr_texts):
    """Shuffled lengths and per-record label sets of different sizes."""
    rng = random.Random(7)
    rows = []
    for i in range(60):
        text = " ".join(rng.sample(nyr_texts, rng.choice([1, 1, 2, 6])))
        rows.append(
            {"id": i, "text": text, "categories": rng.sample(LABELS, rng.randint(1, 5)), "multi_label": i % 4 == 0}
        )
    return rows


def expected_for(model_dir, rows):
    scorer = load_scorer(str(model_dir), device="cpu").scorer
    return [classify_texts(scorer, [row["text"]], row["categories"], multi_label=row["multi_label"])[0] for row in rows]


def assert_same(results, expected):
    assert len(results) == len(expected)
    for got, want in zip(results, expected, strict=True):
        assert got["sequence"] == want["sequence"]
        assert got["labels"] == want["labels"]
        assert max(abs(a - b) for a, b in zip(got["scores"], want["scores"])) < 1e-5


def test_file_to_file_keeps_order_across_windows(tmp_path, bert_nli, mixed_rows):
    src = write_jsonl(tmp_path / "in.jsonl", mixed_rows)
    out = tmp_path / "out.jsonl"
    result = invoke_zstc(
        "classify", src, out, "--model", bert_nli, "--window", "7", "--max-tokens", "300", "--keep", "id"
    )
    assert result.returncode == 0, result.stderr.decode()
    results = read_jsonl(out)
    assert [r["id"] for r in results] == list(range(60))
    assert_same(results, expected_for(bert_nli, mixed_rows))
    assert b"60 records" in result.stderr and result.stdout == b""


@pytest.mark.slow
def test_stdin_to_stdout_in_a_shell_pipeline(tmp_path, bart_nli, nyr_rows):
    src = write_jsonl(tmp_path / "in.jsonl", nyr_rows[:25])
    zstc = f"{sys.executable} -m zstc_cli"
    command = f'cat {src} | {zstc} classify - --model {bart_nli} --labels "health,money,humor" -q | head -n 25'
    result = subprocess.run(command, shell=True, capture_output=True, check=True)
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [line["sequence"] for line in lines] == [row["text"] for row in nyr_rows[:25]]
    assert result.stderr == b""  # --quiet: nothing on stderr, only JSON on stdout


def test_compressed_input_and_output(tmp_path, bert_nli, mixed_rows):
    src = tmp_path / "in.jsonl.gz"
    src.write_bytes(gzip.compress(b"".join(orjson.dumps(row) + b"\n" for row in mixed_rows[:20])))
    out = tmp_path / "out.jsonl.gz"
    invoke_zstc("classify", src, out, "--model", bert_nli, "-q", check=True)
    results = [orjson.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
    assert_same(results, expected_for(bert_nli, mixed_rows[:20]))


def zstd_module():
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd  # what smart-open[zst] installs before 3.14
    return zstd


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst"])
def test_compressions_round_trip_across_windows_and_when_empty(tmp_path, bert_nli, mixed_rows, suffix):
    """Each window is its own compressed stream or frame (for --resume); standard decoders read them all, and
    an output without lines (here the errors file, and all of an empty input's outputs) is a valid empty stream."""
    import bz2
    import lzma

    module = {".gz": gzip, ".bz2": bz2, ".xz": lzma, ".zst": zstd_module()}[suffix]
    src = tmp_path / f"in.jsonl{suffix}"
    src.write_bytes(module.compress(b"".join(orjson.dumps(row) + b"\n" for row in mixed_rows[:20])))
    out, bad = tmp_path / f"out.jsonl{suffix}", tmp_path / f"bad.jsonl{suffix}"
    invoke_zstc("classify", src, out, "--model", bert_nli, "--window", "7", "--on-error", "skip", "--errors", bad, "-q",
             check=True)  # fmt: skip
    results = [orjson.loads(line) for line in module.decompress(out.read_bytes()).splitlines()]
    assert_same(results, expected_for(bert_nli, mixed_rows[:20]))
    assert module.decompress(bad.read_bytes()) == b""

    empty = tmp_path / f"empty.jsonl{suffix}"
    empty.write_bytes(module.compress(b""))
    invoke_zstc("classify", empty, out, "--model", bert_nli, "--on-error", "skip", "--errors", bad, "-q", check=True)
    assert module.decompress(out.read_bytes()) == b"" == module.decompress(bad.read_bytes())


def test_record_fields_and_multi_label_options(tmp_path, bert_nli, nyr_texts):
    """--text-field and --labels-field name the fields; --multi-label is the default a record may override."""
    rows = [{"body": text, "tags": ["health", "money", "humor"]} for text in nyr_texts[:4]]
    rows.append({"body": nyr_texts[4], "tags": ["health", "money"], "multi_label": False})
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    result = invoke_zstc("classify", src, "-", "--model", bert_nli, "--text-field", "body", "--labels-field", "tags",
                      "--multi-label", "-q", check=True)  # fmt: skip
    results = [orjson.loads(line) for line in result.stdout.splitlines()]
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    expected = [classify_texts(scorer, [row["body"]], row["tags"], multi_label=row.get("multi_label", True))[0]
                for row in rows]  # fmt: skip
    assert_same(results, expected)
    assert sum(results[0]["scores"]) != pytest.approx(1.0) and sum(results[4]["scores"]) == pytest.approx(1.0)

    single = invoke_zstc("classify", src, "-", "--model", bert_nli, "--text-field", "body", "--labels-field", "tags",
                      "--single-label", "-q", check=True)  # fmt: skip
    assert all(sum(orjson.loads(line)["scores"]) == pytest.approx(1.0) for line in single.stdout.splitlines())
    missing = invoke_zstc("classify", src, "-", "--model", bert_nli, "--labels-field", "tags")
    assert missing.returncode == 2 and f"{src}:1: no text field".encode() in missing.stderr


def test_bad_line_is_one_clear_error_and_leaves_no_output(tmp_path, bert_nli):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "fine", "categories": ["a"]}\n{"text": "broken", \n')
    out = tmp_path / "out.jsonl"
    result = invoke_zstc("classify", src, out, "--model", bert_nli)
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1].startswith(f"zstc: error: {src}:2: invalid JSON")
    assert b"Traceback" not in result.stderr
    assert not out.exists() and list(tmp_path.glob(".out.jsonl*")) == []
    debug = invoke_zstc("classify", src, out, "--model", bert_nli, "--debug")
    assert debug.returncode == 2 and b"Traceback" in debug.stderr


def test_labels_from_file_and_hosted_shape(tmp_path, bert_nli):
    (tmp_path / "labels.txt").write_text("\ufeffhealth\n\nmoney\n", encoding="utf-8")  # as Notepad saves it
    src = write_jsonl(
        tmp_path / "in.jsonl", [{"inputs": "I will run a marathon"}, {"text": "save money", "categories": "humor"}]
    )
    result = invoke_zstc("classify", src, "-", "--model", bert_nli, "--labels", f"@{tmp_path / 'labels.txt'}", "-q")
    first, second = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted(first["labels"]) == ["health", "money"] and second["labels"] == ["humor"]


def test_missing_model_fails_fast_in_one_line(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a", "categories": ["x"]}])
    result = invoke_zstc("classify", src, "--model", "nobody/no-such-model")
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert "nobody/no-such-model" in line and "HF_HUB_OFFLINE" in line


def test_help_and_version():
    assert invoke_zstc("--version", check=True).stdout.decode().startswith("zstc ")
    assert b"zstc classify examples/new_years_resolutions.jsonl" in invoke_zstc("classify", "--help", check=True).stdout


def test_errors_file_without_skip_is_refused(tmp_path, bert_nli):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a", "categories": ["x"]}])
    result = invoke_zstc(
        "classify", src, tmp_path / "out.jsonl", "--model", bert_nli, "--errors", tmp_path / "bad.jsonl"
    )
    assert result.returncode == 2 and b"--errors is only written with --on-error skip" in result.stderr


def test_tokenizer_failure_in_the_background_thread_names_the_lines(tmp_path, bert_nli):
    """prepare() runs in a background thread; its failures still stop the run with an error naming the lines."""
    from zstc_cli.errors import ZstcError
    from zstc_cli.pipeline import classify_stream, iter_records
    from zstc_cli.records import RecordDefaults

    scorer = load_scorer(str(bert_nli), device="cpu").scorer

    def broken_tokenizer(*args, **kwargs):
        raise RuntimeError("tokenizer exploded")

    scorer._encode = broken_tokenizer
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{i}", "categories": ["x", "y"]} for i in range(5)])
    with pytest.raises(ZstcError, match=r"lines 1-5.*tokenizer exploded"):
        classify_stream(iter_records(str(src), RecordDefaults()), scorer, lambda line: None, window=10)


def test_classify_texts_validates_like_file_records(bert_nli):
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    with pytest.raises(ValueError, match="text 2: 'text' is empty"):
        classify_texts(scorer, ["fine", "  "], ["a", "b"])
    with pytest.raises(ValueError, match="placeholder"):
        classify_texts(scorer, ["fine"], ["a"], template="no slot")
    assert classify_texts(scorer, ["fine"], "a, b")[0]["labels"] in (["a", "b"], ["b", "a"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["in.jsonl", "in.jsonl"], "OUTPUT in.jsonl is also INPUT: it would be overwritten"),
        (["in.jsonl", "./sub/../in.jsonl"], "OUTPUT ./sub/../in.jsonl is also INPUT"),
        (["in.jsonl", "out.jsonl", "--on-error", "skip", "--errors", "out.jsonl"], "--errors out.jsonl is also OUTPUT"),
        (["in.jsonl", "out.jsonl", "--on-error", "skip", "--errors", "in.jsonl"], "--errors in.jsonl is also INPUT"),
        (["in.jsonl", "-", "--on-error", "skip", "--errors", "-"], "OUTPUT and --errors cannot both be - (stdout)"),
        (["in.jsonl", "sub"], "OUTPUT sub is a folder: it must be a file path"),
        (["in.jsonl", "newdir/"], "OUTPUT newdir/ names a folder: it must be a file path"),
        (["in.jsonl", "s3://bucket/out/"], "OUTPUT s3://bucket/out/ names a folder: it must be a file path"),
        ([".out.jsonl.partial", "out.jsonl"], "OUTPUT out.jsonl is also INPUT"),  # its partial is the input
        (
            ["in.jsonl", ".bad.jsonl.partial", "--on-error", "skip", "--errors", "bad.jsonl"],
            "--errors bad.jsonl is also OUTPUT",
        ),
        (
            ["sub", "out", "--on-error", "skip", "--errors", "-"],
            "sub is a folder or prefix, so --errors must be a folder",
        ),
        (["in.jsonl", "nowhere/out.jsonl"], "OUTPUT nowhere/out.jsonl: folder 'nowhere' does not exist"),
        (["in.jsonl", "out.jsonl", "--keep", "id,labels"], "--keep labels: every output line has its own sequence"),
    ],
)
def test_outputs_that_would_destroy_data_are_refused_before_any_work(tmp_path, args, message):
    (tmp_path / "sub").mkdir()
    original = b'{"text": "keep me", "categories": ["a", "b"]}\n'
    for name in ("in.jsonl", ".out.jsonl.partial", "sub/in.jsonl"):
        (tmp_path / name).write_bytes(original)
    result = invoke_zstc("classify", *args, "--model", "never-loaded", cwd=tmp_path)
    (line,) = result.stderr.decode().splitlines()
    assert result.returncode == 2 and line.startswith(f"zstc: error: {message}")
    assert result.stdout == b"" and sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.jsonl.partial",
        "in.jsonl",
        "sub",
    ]
    assert all(
        (tmp_path / name).read_bytes() == original for name in ("in.jsonl", ".out.jsonl.partial", "sub/in.jsonl")
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["in.jsonl", "hard.jsonl"], "OUTPUT hard.jsonl is also INPUT: it would be overwritten"),
        (["in.jsonl", "soft.jsonl"], "OUTPUT soft.jsonl is also INPUT: it would be overwritten"),
        (
            ["in.jsonl", "out.jsonl", "--on-error", "skip", "--errors", "hard.jsonl"],
            "--errors hard.jsonl is also INPUT",
        ),
        (["in.jsonl", "ro.jsonl"], "OUTPUT ro.jsonl is read-only (mode 0444): zstc will not replace it"),
        (["in.jsonl", "ro.jsonl", "--resume"], "OUTPUT ro.jsonl is read-only (mode 0444)"),
        (["in.jsonl", "out.jsonl", "--on-error", "skip", "--errors", "ro.jsonl"], "--errors ro.jsonl is read-only"),
        (["folder", "outs"], "OUTPUT outs/in.jsonl.out is read-only (mode 0444)"),
        (["folder", "folder"], "OUTPUT folder/in.jsonl.out is also an input"),
    ],
)
def test_links_to_the_input_and_read_only_outputs_are_refused(tmp_path, args, message):
    """A hard link or symlink to INPUT is INPUT; a 0444 output stays as it is (a rename would replace it, even as root)."""
    original = b'{"text": "keep me", "categories": ["a", "b"]}\n'
    (tmp_path / "in.jsonl").write_bytes(original)
    os.link(tmp_path / "in.jsonl", tmp_path / "hard.jsonl")
    (tmp_path / "soft.jsonl").symlink_to(tmp_path / "in.jsonl")
    for name in ("ro.jsonl", "outs/in.jsonl.out"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"precious\n")
        (tmp_path / name).chmod(0o444)
    (tmp_path / "folder").mkdir()
    os.link(tmp_path / "in.jsonl", tmp_path / "folder" / "in.jsonl")
    os.link(tmp_path / "in.jsonl", tmp_path / "folder" / "in.jsonl.out")  # an output hard-linked to an input
    result = invoke_zstc("classify", *args, "--model", "never-loaded", cwd=tmp_path)
    (line,) = result.stderr.decode().splitlines()
    assert result.returncode == 2 and line.startswith(f"zstc: error: {message}"), line
    assert (tmp_path / "in.jsonl").read_bytes() == original and (tmp_path / "ro.jsonl").read_bytes() == b"precious\n"
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_a_reader_that_stops_early_ends_the_run_quietly(tmp_path, bert_nli, nyr_rows):
    """`zstc classify ... - | head -n 1`: once head exits, zstc stops with SIGPIPE's status and says nothing."""
    src = write_jsonl(tmp_path / "in.jsonl", nyr_rows[:40])
    zstc = [sys.executable, "-m", "zstc_cli", "classify", str(src), "-", "--model", str(bert_nli), "-l", "a,b",
            "--window", "4", "-q"]  # fmt: skip
    process = subprocess.Popen(zstc, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()  # what head does after its first line
    assert orjson.loads(first)["sequence"] == nyr_rows[0]["text"]
    assert process.wait(timeout=120) == 141 and process.stderr.read() == b""


@pytest.mark.slow
def test_a_closed_stdout_that_carried_only_bad_records_says_the_output_was_not_written(tmp_path, bert_nli, nyr_rows):
    rows = [orjson.dumps({"text": row["text"]}) + b"\n" + b'{"broken\n' for row in nyr_rows[:40]]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(rows))
    zstc = [sys.executable, "-m", "zstc_cli", "classify", str(src), str(tmp_path / "out.jsonl"), "--model", str(bert_nli),
            "-l", "a,b", "--on-error", "skip", "--errors", "-", "--window", "4", "-q"]  # fmt: skip
    process = subprocess.Popen(zstc, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert orjson.loads(process.stdout.readline())["line"] == 2
    process.stdout.close()
    assert process.wait(timeout=120) == 141
    assert (
        process.stderr.read().decode() == "zstc: stdout was closed before the run ended; no output file was written\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_python_api_takes_paths_and_label_strings_and_refuses_a_bare_text(tmp_path, bert_nli):
    from zstc_cli import InvalidValue, RecordDefaults
    from zstc_cli.engines.local import classify_file

    defaults = RecordDefaults(labels="health, money")  # split like a record's "a,b", not into characters
    assert defaults.labels == ("health", "money")
    with pytest.raises(InvalidValue, match="contains 'a' twice"):  # a ZstcError, as the docs promise
        RecordDefaults(labels=("a", "a"))
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "I will save more"}])
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    classify_file(src, tmp_path / "out.jsonl", scorer, defaults, log=lambda message: None)  # pathlib.Path works
    assert sorted(read_jsonl(tmp_path / "out.jsonl")[0]["labels"]) == ["health", "money"]
    with pytest.raises(TypeError, match="for one text, pass"):
        classify_texts(scorer, "I will run", ["a", "b"])
    with pytest.raises(InvalidValue, match="^text 2: 'text' is empty$"):
        classify_texts(scorer, ["I will run", ""], ["a", "b"])
