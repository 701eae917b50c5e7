"""S3 through a real S3 API (moto server mode on 127.0.0.1) and local folders, via the `zstc` command.

The S3 runs are real processes: boto3's default session caches the credentials it first resolves, for the
life of the process, so in-process runs would not see each test's own (or bad) credentials."""

from __future__ import annotations

import gzip

import orjson
import pytest
from support.cli import invoke_zstc, run_zstc
from support.data import read_jsonl, write_jsonl

from zstc_cli.engines.local import classify_texts
from zstc_cli.errors import ZstcError
from zstc_cli.models.spec import load_scorer
from zstc_cli.storage.jobs import Job, list_inputs, plan_jobs

BUCKET = "zstc-test"
ROWS = [{"id": i, "text": f"I will {verb} more this year", "categories": ["health", "money", "fun"]}
        for i, verb in enumerate(["run", "save", "read", "travel", "cook", "swim", "paint"])]  # fmt: skip


def jsonl(rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def lines(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def expected(model_dir, rows):
    scorer = load_scorer(str(model_dir), device="cpu").scorer
    return [classify_texts(scorer, [row["text"]], row["categories"])[0]["labels"] for row in rows]


def get(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def keys(s3) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_s3_single_file_gzip_in_and_out(s3, bert_nli):
    s3.put_object(Bucket=BUCKET, Key="in/data.jsonl.gz", Body=gzip.compress(jsonl(ROWS)))
    result = run_zstc("classify", f"s3://{BUCKET}/in/data.jsonl.gz", f"s3://{BUCKET}/out/data.jsonl.gz",
                      "--model", bert_nli, "--keep", "id", "--window", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    out = lines(gzip.decompress(get(s3, "out/data.jsonl.gz")))  # several gzip members, one per window
    assert [row["id"] for row in out] == [row["id"] for row in ROWS]
    assert [row["labels"] for row in out] == expected(bert_nli, ROWS)


def test_s3_prefix_to_prefix_one_out_per_file(s3, bert_nli):
    s3.put_object(Bucket=BUCKET, Key="in/b/second.jsonl.gz", Body=gzip.compress(jsonl(ROWS[3:])))
    s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=jsonl(ROWS[:3]) + b"not json\n")
    s3.put_object(Bucket=BUCKET, Key="in/readme.txt", Body=b"not an input")
    s3.put_object(Bucket=BUCKET, Key="in/.hidden.jsonl", Body=b"not an input either")
    result = run_zstc("classify", f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out", "--model", bert_nli, "--keep", "id",
                      "--on-error", "skip", "--errors", f"s3://{BUCKET}/bad/")  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert [k for k in keys(s3) if k.startswith("out/")] == ["out/a.jsonl.out", "out/b/second.jsonl.out.gz"]
    assert [row["id"] for row in lines(get(s3, "out/a.jsonl.out"))] == [0, 1, 2]
    assert [row["id"] for row in lines(gzip.decompress(get(s3, "out/b/second.jsonl.out.gz")))] == [3, 4, 5, 6]
    (bad,) = lines(get(s3, "bad/a.jsonl.errors"))
    assert bad["line"] == 4 and bad["raw"] == "not json"
    assert b"7 records" in result.stderr and b"1 bad record in" in result.stderr


@pytest.mark.parametrize(
    "uri, message",
    [
        (f"s3://{BUCKET}/no/such.jsonl", f"s3://{BUCKET}/no/such.jsonl: no such key"),
        ("s3://no-such-bucket-zstc/in.jsonl", "bucket 'no-such-bucket-zstc' does not exist"),
    ],
)
def test_missing_key_or_bucket_is_one_line(s3, tmp_path, uri, message):
    result = run_zstc("classify", uri, tmp_path / "out.jsonl", "--model", tmp_path / "never-loaded")
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert message in line and b"Traceback" not in result.stderr


def test_output_to_missing_bucket_is_one_line(s3_env, tmp_path, bert_nli):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    result = run_zstc("classify", src, "s3://no-such-bucket-zstc/out.jsonl", "--model", bert_nli, "-q")
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert line == "zstc: error: s3://no-such-bucket-zstc/out.jsonl: bucket 'no-such-bucket-zstc' does not exist"


def test_bad_credentials_are_one_line(s3_checking_credentials, tmp_path):
    result = run_zstc("classify", f"s3://{BUCKET}/in.jsonl", tmp_path / "out.jsonl", env=s3_checking_credentials)
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert "access key id is not valid" in line or "access denied" in line
    assert b"Traceback" not in result.stderr


def test_failed_run_leaves_no_s3_object(s3, bert_nli):
    s3.put_object(Bucket=BUCKET, Key="in.jsonl", Body=jsonl(ROWS) * 3 + b"[1]\n")
    result = run_zstc("classify", f"s3://{BUCKET}/in.jsonl", f"s3://{BUCKET}/out.jsonl", "--model", bert_nli,
                      "--window", "2")  # fmt: skip
    assert result.returncode == 2 and b"in.jsonl:22: expected a JSON object" in result.stderr
    assert keys(s3) == ["in.jsonl"]  # the multipart upload was aborted
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_local_folder_to_folder(tmp_path, bert_nli):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_jsonl(tmp_path / "in" / "b.jsonl", ROWS[2:])
    (tmp_path / "in" / "sub" / "a.jsonl.gz").write_bytes(gzip.compress(jsonl(ROWS[:2])))
    (tmp_path / "in" / "notes.md").write_text("ignored")
    result = invoke_zstc("classify", tmp_path / "in", tmp_path / "out", "--model", bert_nli, "--keep", "id")
    assert result.returncode == 0, result.stderr.decode()
    outputs = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert outputs == ["b.jsonl.out", "sub", "sub/a.jsonl.out.gz"]
    assert [row["id"] for row in read_jsonl(tmp_path / "out" / "b.jsonl.out")] == [2, 3, 4, 5, 6]
    assert [
        row["id"] for row in lines(gzip.decompress((tmp_path / "out" / "sub" / "a.jsonl.out.gz").read_bytes()))
    ] == [0, 1]
    assert b"7 records" in result.stderr
    to_stdout = invoke_zstc("classify", tmp_path / "in", "-", "--model", bert_nli)
    assert to_stdout.returncode == 2 and b"OUTPUT must be a folder or prefix too" in to_stdout.stderr


# What a folder or prefix contributes, for both engines: *.jsonl (+ compressed, .xz too), "_" names included,
# hidden files and hidden folders at any depth, other extensions (.ndjson, .txt) left out.
LAYOUT = {"a.jsonl": b"", "_b.jsonl": b"", ".hidden.jsonl": b"", "sub/.x.jsonl": b"", ".git/c.jsonl": b"",
          "c.txt": b"", "d.ndjson": b"", "sub/e.jsonl.xz": b"", "sub/f.jsonl.gz": b""}  # fmt: skip
LISTED = ["_b.jsonl", "a.jsonl", "sub/e.jsonl.xz", "sub/f.jsonl.gz"]


def test_list_inputs_of_a_local_folder_and_an_s3_prefix_agree(tmp_path, s3):
    for name, body in LAYOUT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(body)
        s3.put_object(Bucket=BUCKET, Key=f"in/{name}", Body=body)
    assert list_inputs(str(tmp_path)) == list_inputs(f"s3://{BUCKET}/in/") == list_inputs(f"s3://{BUCKET}/in") == LISTED
    jobs = plan_jobs(f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/")
    assert [job.source for job in jobs] == [f"s3://{BUCKET}/in/{name}" for name in LISTED]
    assert list_inputs(str(tmp_path / "a.jsonl")) is None
    assert plan_jobs(str(tmp_path / "c.txt"), "out.jsonl") == [Job(str(tmp_path / "c.txt"), "out.jsonl")]
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / ".hidden.jsonl").write_bytes(b"")
    with pytest.raises(ZstcError, match=r"no \*\.jsonl, \*\.csv, \*\.tsv, \*\.parquet files"):
        list_inputs(str(tmp_path / "none"))
