"""Bad input through the `zstc` command (in-process): FILE:LINE, exit 2, no traceback; --on-error skip loses nothing."""

from __future__ import annotations

import base64
import pickle
import re

import orjson
import pytest
import torch
from support.cli import invoke_zstc
from support.data import read_jsonl

from zstc_cli.cli.options import flag
from zstc_cli.errors import ZstcError, scoring_failure
from zstc_cli.models.spec import load_scorer
from zstc_cli.pipeline import PAIRS_PER_RECORD, classify_stream
from zstc_cli.records import Record
from zstc_cli.storage.files import encode_chunk
from zstc_cli.storage.reading import read_error

GOOD = b'{"text": "I will run more", "categories": ["health", "money"]}'
# (raw line, what the error must say)
BAD = [
    (b'{"text": "cut', "invalid JSON"),
    (b'["a list"]', "expected a JSON object, got an array"),
    (b'{"categories": ["x"]}', "no text field"),
    (b'{"text": "  ", "categories": ["x"]}', "'text' is empty"),
    (b'{"text": 42, "categories": ["x"]}', "'text' must be a string, got a number"),
    (b'{"text": "no labels"}', "no labels"),
    (b'{"text": "a", "categories": []}', "'categories' is empty"),
    (b'{"text": "a", "categories": ["x", 3]}', "must be strings, got 3"),
    (b'{"text": "a", "categories": ["x", "x"]}', "contains 'x' twice"),
    (b'{"text": "a", "categories": ["x"], "multi_label": "yes"}', '"multi_label" must be true or false, got "yes"'),
    (b'{"text": "a", "categories": ["x"], "hypothesis_template": "About it."}', "has no {} placeholder"),
    (b'{"inputs": "a", "parameters": {"candidate_labels": ["x"], "hypothesis_template": "{0} {1}"}}', "placeholder"),
    (b'{"text": "caf\xe9", "categories": ["x"]}', "invalid UTF-8: byte 0xe9 at offset 13"),
    (b"\xef\xbb\xbf" + GOOD, "invalid JSON"),  # a byte-order mark is only accepted on line 1
]


def messy_input(path):
    """Line 1 has a BOM and CRLF; every bad line sits between good ones; blank lines; no final newline."""
    lines = [b"\xef\xbb\xbf" + GOOD + b"\r"]
    for raw, _ in BAD:
        lines += [raw, GOOD + b"\r", b""]
    path.write_bytes(b"\n".join(lines) + b"\n" + GOOD)
    return path, lines + [GOOD]


def test_skip_puts_every_record_in_exactly_one_file(tmp_path, bert_nli):
    src, lines = messy_input(tmp_path / "in.jsonl")
    out, bad = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    result = invoke_zstc(
        "classify", src, out, "--model", bert_nli, "--on-error", "skip", "--errors", bad, "--window", "4"
    )
    assert result.returncode == 0, result.stderr.decode()
    errors = read_jsonl(bad)
    assert [e["line"] for e in errors] == [3 * i + 2 for i in range(len(BAD))]
    for error, (raw, message) in zip(errors, BAD):
        assert message in error["error"] and error["raw"] == raw.decode("utf-8", errors="replace")
        # the exact bytes are recoverable: raw itself when it is UTF-8, else raw_base64 (only then)
        recovered = base64.b64decode(error["raw_base64"]) if "raw_base64" in error else error["raw"].encode()
        assert recovered == raw and ("raw_base64" in error) == (b"\xe9" in raw)
    assert any("raw_base64" in error for error in errors)  # BAD has an invalid-UTF-8 line
    good = [
        number for number, line in enumerate(lines, 1) if line.strip() and number not in {e["line"] for e in errors}
    ]
    results = read_jsonl(out)
    assert len(results) == len(good) == len(BAD) + 2 and all(r["sequence"] == "I will run more" for r in results)
    assert f"{len(good)} records".encode() in result.stderr and f"{len(BAD)} bad records".encode() in result.stderr


def fail_run(tmp_path, model, raw: bytes, *options):
    src = tmp_path / "in.jsonl"
    src.write_bytes(GOOD + b"\n" + raw + b"\n")
    result = invoke_zstc("classify", src, tmp_path / "out.jsonl", "--model", model, "-q", *options)
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert not (tmp_path / "out.jsonl").exists() and list(tmp_path.glob(".out.jsonl*")) == []
    (line,) = result.stderr.decode().strip().splitlines()
    return src, line


def test_fail_names_file_and_line(tmp_path, bert_nli):
    raw, message = BAD[12]
    src, line = fail_run(tmp_path, bert_nli, raw)
    assert line == f"zstc: error: {src}:2: {message}"


@pytest.mark.slow
@pytest.mark.parametrize("raw, message", BAD, ids=[message for _, message in BAD])
def test_fail_on_every_kind_of_bad_line(tmp_path, bert_nli, raw, message):
    src, line = fail_run(tmp_path, bert_nli, raw)
    assert line.startswith(f"zstc: error: {src}:2: ") and message in line


def many_lines(count: int = 600) -> bytes:
    """Distinct records, so that half of the compressed file holds many lines (repeated ones compress to nothing)."""
    return b"".join(orjson.dumps({"text": f"resolution {i}: {i * 7919 % 10007:x}", "categories": ["a", "b"]}) + b"\n"
                    for i in range(count))  # fmt: skip


def corrupt_run(tmp_path, model, name: str, data: bytes, *options):
    """Run classify on ``data`` saved as ``name``; it must stop with exit 2, one line naming the file and a
    line, no traceback, and leave no output, errors file, partial or checkpoint behind."""
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / "out.jsonl"
    result = invoke_zstc("classify", src, out, "--model", model, "-q", "--window", "8", *options)
    assert result.returncode == 2 and b"Traceback" not in result.stderr, result.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name] and result.stdout == b""
    (line,) = result.stderr.decode().strip().splitlines()
    match = re.fullmatch(rf"zstc: error: {re.escape(str(src))}:(\d+): reading stopped at this line: (.*)", line)
    assert match, line
    return int(match.group(1)), match.group(2)


CODECS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}
TRUNCATED = "(EOFError: Compressed file ended before the end-of-stream marker was reached)"


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_compressed_input_stops_even_when_skipping(tmp_path, bert_nli, codec):
    data = encode_chunk(many_lines(), codec)
    skip = ["--on-error", "skip", "--errors", tmp_path / "bad.jsonl"]
    line, message = corrupt_run(tmp_path, bert_nli, f"in.jsonl{codec}", data[: len(data) // 2], *skip)
    assert message == f"the {CODECS[codec]} data is truncated {TRUNCATED}"
    assert 1 <= line <= 600 and (codec != ".gz" or line > 8)  # gzip: windows were written (then discarded)


def test_header_only_gzip_input_names_line_1(tmp_path, bert_nli):
    line, message = corrupt_run(tmp_path, bert_nli, "in.jsonl.gz", encode_chunk(many_lines(), ".gz")[:100])
    assert line == 1 and message == f"the gzip data is truncated {TRUNCATED}"


NOT_COMPRESSED = {
    ".gz": "BadGzipFile: Not a gzipped file (b'{\"')",
    ".bz2": "OSError: Invalid data stream",
    ".xz": "LZMAError: Input format not supported by decoder",
    ".zst": "ZstdError: Unable to decompress Zstandard data: Unknown frame descriptor",
}


@pytest.mark.parametrize("codec", CODECS)
def test_plain_text_with_a_compression_extension(tmp_path, bert_nli, codec):
    line, message = corrupt_run(tmp_path, bert_nli, f"in.jsonl{codec}", GOOD + b"\n")
    name = CODECS[codec]
    expected = f"the {name} data is corrupt, or the file is not {name}-compressed ({NOT_COMPRESSED[codec]})"
    assert line == 1 and message == expected


def test_corrupt_gzip_member_is_not_skipped(tmp_path, bert_nli):
    """A flipped byte inside the deflate data: the CRC or the inflater catches it, whatever --on-error says."""
    data = bytearray(encode_chunk(many_lines(), ".gz"))
    data[len(data) // 2] ^= 0xFF
    skip = ["--on-error", "skip", "--errors", tmp_path / "bad.jsonl"]
    line, message = corrupt_run(tmp_path, bert_nli, "in.jsonl.gz", bytes(data), *skip)
    assert line > 1 and "the gzip data is corrupt" in message


def test_corrupt_gzip_labeled_data_in_evaluate(tmp_path):
    src = tmp_path / "gold.jsonl.gz"
    src.write_bytes(GOOD + b"\n")
    result = invoke_zstc("evaluate", src, "--label-field", "categories", "--from", src)
    (line,) = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and line.startswith(f"zstc: error: {src}:1: reading stopped at this line: the gzip")


def test_disk_errors_and_plain_inputs_are_not_called_corrupt():
    """An OSError with an errno is the disk failing, not the data; only a compressed input can be corrupt."""
    assert read_error("in.jsonl.gz", 3, OSError(5, "Input/output error")) is None
    assert read_error("in.jsonl", 3, EOFError("ended")) is None
    assert str(read_error("in.jsonl.bz2", 3, OSError("Invalid data stream"))).startswith(
        "in.jsonl.bz2:3: reading stopped at this line: the bzip2 data is corrupt"
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (["--hypothesis-template", "About it."], "--hypothesis-template: hypothesis_template 'About it.' has no {}"),
        (["--labels", " , "], "--labels is empty"),
        (["--on-error", "skip"], "--on-error skip needs --errors PATH"),
        (["--num-workers", "2"], "--ray-address, --num-workers and --gpus-per-worker need --engine ray"),
    ],
)
def test_bad_options_are_one_line(tmp_path, options, message):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "a"}\n')
    result = invoke_zstc("classify", src, "--model", tmp_path / "never-loaded", *options)
    (line,) = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and line.startswith(f"zstc: error: {message}")
    assert result.stdout == b""


def typer_usage_error(stderr: bytes) -> str:
    """typer's own usage error, its box drawing and line wrapping undone."""
    return " ".join(stderr.decode().translate(str.maketrans("│╭╮╰╯─", "      ")).split())


@pytest.mark.parametrize(
    "option, value, choices",
    [
        ("--on-error", "ignore", "'fail', 'skip'"),
        ("--engine", "spark", "'local', 'ray'"),
        ("--dtype", "float8", "'auto', 'float32', 'float16', 'bfloat16'"),
        ("--scorer", "bm25", "'auto', 'nli', 'embedding'"),
        ("--quantize", "int4", "'none', 'int8'"),
    ],
)
def test_bad_choices_get_typers_own_error(tmp_path, option, value, choices):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "a"}\n')
    result = invoke_zstc("classify", src, "--model", tmp_path / "never-loaded", option, value)
    assert result.returncode == 2 and result.stdout == b""
    assert f"Invalid value for '{option}': Value error, '{value}' is not one of {choices}." in typer_usage_error(
        result.stderr
    )


def test_long_text_truncates_and_500_labels_work(tmp_path, bert_nli):
    labels = [f"topic {i}" for i in range(500)]
    src = tmp_path / "in.jsonl"
    src.write_bytes(orjson.dumps({"text": "word " * 100_000, "categories": labels[:3]}) + b"\n"
                    + orjson.dumps({"text": "many labels", "categories": labels}) + b"\n")  # fmt: skip
    out = tmp_path / "out.jsonl"
    invoke_zstc("classify", src, out, "--model", bert_nli, "-q", check=True)
    long, many = read_jsonl(out)
    assert len(long["sequence"]) == 500_000 and len(long["labels"]) == 3
    assert sorted(many["labels"]) == sorted(labels) and abs(sum(many["scores"]) - 1) < 1e-6


def test_many_labels_never_build_a_giant_batch(bert_nli):
    scorer = load_scorer(str(bert_nli), device="cpu", max_tokens=2048, batch_size=64).scorer
    record = Record(1, "I will read more books " * 20, tuple(f"topic number {i}" for i in range(500)))
    window = scorer.prepare([record])
    assert sum(len(indices) for indices, _ in window.batches) == 500
    for indices, batch in window.batches:
        assert len(indices) <= 64 and batch["input_ids"].numel() <= 2048


def test_windows_of_many_label_records_close_at_a_pair_budget(bert_nli):
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    labels = tuple(f"topic {i}" for i in range(500))
    records = [Record(i + 1, f"text number {i}", labels) for i in range(4)]
    ends: list[int] = []
    summary = classify_stream(records, scorer, lambda line: None, window=8, on_window=ends.append)
    assert 8 * PAIRS_PER_RECORD < 500 and ends == [1, 2, 3, 4] and summary.records == 4


def test_model_failures_are_not_record_errors(tmp_path, bert_nli):
    """A model that cannot run (embedding table smaller than its tokenizer's vocabulary) stops the run."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    broken = tmp_path / "broken"
    model = AutoModelForSequenceClassification.from_pretrained(bert_nli)
    model.resize_token_embeddings(100)
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(bert_nli).save_pretrained(broken)
    src = tmp_path / "in.jsonl"
    src.write_bytes(GOOD + b"\n" + GOOD + b"\n")
    bad = tmp_path / "bad.jsonl"
    result = invoke_zstc(
        "classify", src, tmp_path / "out.jsonl", "--model", broken, "-q", "--on-error", "skip", "--errors", bad
    )
    assert result.returncode == 1
    (line,) = result.stderr.decode().strip().splitlines()
    assert line.startswith(
        "zstc: error: the model failed while scoring input lines 1-2: IndexError: index out of range"
    )
    assert not bad.exists() and not (tmp_path / "out.jsonl").exists()


def test_out_of_memory_suggests_smaller_batches():
    error = scoring_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), 1001, 1512)
    assert str(error).startswith("out of memory while scoring input lines 1001-1512 (CUDA out of memory.")
    # the library names its parameters; the CLI names the flags that set them, also after pickling (Ray)
    assert "lower max_tokens or batch_size (or window for records" in str(error)
    for copy in (error, pickle.loads(pickle.dumps(error))):
        assert "lower --max-tokens or --batch-size (or --window for records" in copy.naming(flag)
        assert str(copy) == str(error)


def test_a_settings_error_never_reads_a_value_as_a_template():
    from zstc_cli.models.spec import ModelSpec

    with pytest.raises(ZstcError) as caught:
        ModelSpec(scorer="{max_tokens}").check()
    assert str(caught.value) == "scorer '{max_tokens}': expected auto, nli, embedding"
    assert caught.value.naming(flag) == "--scorer '{max_tokens}': expected auto, nli, embedding"
    resumed = caught.value.with_suffix("; {resume} {{x}}")
    assert (str(resumed), resumed.naming(flag)) == (
        f"{caught.value}; resume {{x}}",
        "--scorer '{max_tokens}': expected auto, nli, embedding; --resume {x}",
    )
