"""The hosted endpoint's own client, boto3's `sagemaker-runtime`, against the real `zstc serve` process.

Client code written for a hosted zero-shot endpoint calls ``invoke_endpoint``; pointed at zstc with
``endpoint_url=``, the same call must answer as classify does, and refusals must reach the caller as the
SDK's ``ModelError`` carrying zstc's message and status. A batch-transform job, which calls the container's
``/invocations`` with mini-batches of lines, must get one answer line per input line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import httpx
import orjson
import pytest
from botocore.config import Config
from support.cli import invoke_zstc
from support.data import read_jsonl, write_jsonl
from support.serving import LABELS, Served, assert_close, zstc_serve

JSON, JSONLINES = "application/json", "application/jsonlines"
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def served(bert_nli) -> Iterator[Served]:
    options = ["--max-labels", "8", "--max-body-bytes", str(MAX_BODY), "--threads", "1", "-q"]
    with zstc_serve("--model", str(bert_nli), *options) as served:
        yield served
    assert served.returncode == 0, served.stderr.decode()


@pytest.fixture(scope="module")
def runtime(served):
    """The client exactly as hosted-endpoint code builds it, plus ``endpoint_url`` and dummy credentials."""
    return boto3.client(
        "sagemaker-runtime", endpoint_url=served.url, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(retries={"mode": "standard"}),
    )  # fmt: skip


def invoke(runtime, body: bytes | str, content_type: str = JSON, accept: str = JSON, name: str = "zero-shot"):
    """``invoke_endpoint`` as the hosted endpoint's users call it; returns the response and its body."""
    response = runtime.invoke_endpoint(EndpointName=name, ContentType=content_type, Accept=accept, Body=body)
    return response, response["Body"].read()


def classified(tmp_path, model, rows: list[dict]) -> list[dict]:
    """What `zstc classify` answers for ``rows``: the reference every answer is compared with."""
    src = write_jsonl(tmp_path / "rows.jsonl", rows)
    invoke_zstc("classify", src, tmp_path / "classified.jsonl", "--model", model, "-q", check=True)
    return read_jsonl(tmp_path / "classified.jsonl")


def test_single_label_multi_label_and_a_list_of_inputs_answer_as_classify(runtime, tmp_path, bert_nli, nyr_texts):
    single = {"inputs": nyr_texts[0], "parameters": {"candidate_labels": LABELS[:4]}}
    multi = {"inputs": nyr_texts[1], "parameters": {"candidate_labels": LABELS, "multi_label": True}}
    shared = {"candidate_labels": "health, money, humor", "hypothesis_template": "This tweet is about {}."}
    listed = nyr_texts[2:7]
    want = classified(tmp_path, bert_nli, [single, multi, *({"inputs": text, "parameters": shared} for text in listed)])

    # Any endpoint name works, the SDK's escaping of odd ones included.
    for payload, expected, name in [(single, want[0], "zero-shot"), (multi, want[1], "tweets/v2 (staging)")]:
        response, body = invoke(runtime, json.dumps(payload), name=name)
        assert response["ContentType"] == JSON and response["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert_close(json.loads(body), expected)
    assert abs(sum(want[1]["scores"]) - 1) > 1e-3  # multi-label: independent per-label scores

    response, body = invoke(runtime, json.dumps({"inputs": listed, "parameters": shared}))
    answers = json.loads(body)
    assert isinstance(answers, list) and len(answers) == len(listed)
    for got, expected in zip(answers, want[2:]):
        assert_close(got, expected)


def test_json_lines_bodies_and_the_accept_header(runtime, tmp_path, bert_nli, nyr_texts):
    rows = [{"text": text, "categories": LABELS[: 2 + i % 4]} for i, text in enumerate(nyr_texts[10:16])]
    rows[1] = {"inputs": rows[1]["text"], "parameters": {"candidate_labels": LABELS[:3], "multi_label": True}}
    want = classified(tmp_path, bert_nli, rows)
    lines = b"".join(orjson.dumps(row) + b"\n" for row in rows)

    response, body = invoke(runtime, lines, JSONLINES, JSONLINES)
    assert response["ContentType"] == JSONLINES
    answers = [orjson.loads(line) for line in body.splitlines()]
    assert len(answers) == len(rows)
    for got, expected in zip(answers, want):
        assert_close(got, expected)

    response, body = invoke(runtime, lines, JSONLINES, JSON)  # the same records, answered as one JSON list
    assert response["ContentType"] == JSON and len(json.loads(body)) == len(rows)
    for got, expected in zip(json.loads(body), want):
        assert_close(got, expected)

    response, body = invoke(runtime, json.dumps({"inputs": rows[0]["text"], "parameters": {
        "candidate_labels": rows[0]["categories"]}}), JSON, JSONLINES)  # fmt: skip
    assert response["ContentType"] == JSONLINES and body.count(b"\n") == 1
    assert_close(orjson.loads(body), want[0])

    response, body = invoke(runtime, lines, JSONLINES, "*/*")  # a wildcard: the body's own type
    assert response["ContentType"] == JSONLINES and body.count(b"\n") == len(rows)


@pytest.mark.parametrize(
    "content_type, accept, body, status, message",
    [
        (JSONLINES, JSONLINES, b'{"text": "a", "categories": "x"}\n{"text": "b"}\n', 400, "line 2: no labels"),
        (JSON, JSON, b'{"inputs": "a", "parameters": {"candidate_labels": []}}', 400, "body: "),
        (JSON, JSON, b'{"inputs": "a", "parameters": {"candidate_labels": "a,b,c,d,e,f,g,h,i"}}', 400, "labels, more"),
        (JSON, JSON, orjson.dumps({"inputs": "a" * (MAX_BODY + 1)}), 413, f"--max-body-bytes {MAX_BODY}"),
        (JSON, JSON, b"a" * (7 << 20), 413, f"--max-body-bytes {MAX_BODY}"),  # refused while the SDK still sends
        (JSON, JSON, orjson.dumps({"inputs": ["a"] * 600, "parameters": {"candidate_labels": "a,b,c,d,e,f,g,h"}}),
         413, "4800 pairs, more than --max-pairs"),
        (JSON, JSON, orjson.dumps({"inputs": "a", "parameters": {"candidate_labels": "x",
         "hypothesis_template": "x" * 10_000 + "{}"}}), 413, "10002 characters, more than --max-chars"),
        (JSON, "text/csv", b'{"inputs": "a", "parameters": {"candidate_labels": "x"}}', 406, "'text/csv'"),
        ("text/csv", JSON, b"a,b\n", 415, "application/jsonlines"),
    ],
)  # fmt: skip
def test_refusals_are_model_errors_with_zstcs_message_and_status(runtime, content_type, accept, body, status, message):
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        invoke(runtime, body, content_type, accept)
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError" and message in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424 and error["ResponseMetadata"]["RetryAttempts"] == 0
    assert error["OriginalStatusCode"] == status and message in json.loads(error["OriginalMessage"])["error"]
    assert f"({status})" in str(raised.value)  # what a traceback shows


def test_the_container_paths_keep_their_contract(served):
    """``/invocations`` still answers errors with its own status and ``{"error"}``, not the runtime's 424."""
    assert httpx.get(f"{served.url}/ping").json() == {"status": "healthy"}
    assert httpx.get(f"{served.url}/execution-parameters").json()["BatchStrategy"] == "MULTI_RECORD"
    refused = httpx.post(f"{served.url}/invocations", json={"inputs": "a"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("body: no labels")


def mini_batches(data: bytes, max_bytes: int) -> list[bytes]:
    """Split by line and pack whole lines up to ``max_bytes`` per request: batch transform's SplitType=Line
    with BatchStrategy=MultiRecord (a record is never cut)."""
    batches, current = [], b""
    for line in data.splitlines(keepends=True):
        if current and len(current) + len(line) > max_bytes:
            batches.append(current)
            current = b""
        current += line
    return [*batches, current] if current else batches


def test_a_batch_transform_job_is_answered_line_for_line(served, tmp_path, bert_nli, nyr_rows):
    rows = [{"text": row["text"], "categories": LABELS, "tweet_id": row["tweet_id"]} for row in nyr_rows[:60]]
    want = classified(tmp_path, bert_nli, rows)
    parameters = httpx.get(f"{served.url}/execution-parameters").json()
    assert parameters["BatchStrategy"] == "MULTI_RECORD" and parameters["MaxPayloadInMB"] >= 1
    # A job's MaxPayloadInMB is at least 1 MB; 2 KB here makes the 60 lines several mini-batches.
    batches = mini_batches((tmp_path / "rows.jsonl").read_bytes(), 2048)
    assert len(batches) > 3

    assembled = b""
    for batch in batches:
        answer = httpx.post(f"{served.url}/invocations", content=batch,
                            headers={"Content-Type": JSONLINES, "Accept": JSONLINES})  # fmt: skip
        assert answer.status_code == 200 and answer.headers["content-type"] == JSONLINES
        assert answer.content.count(b"\n") == batch.count(b"\n")
        assembled += answer.content  # AssembleWith=Line
    answers = [orjson.loads(line) for line in assembled.splitlines()]
    assert len(answers) == len(rows)
    for got, expected in zip(answers, want):
        assert_close(got, expected)
