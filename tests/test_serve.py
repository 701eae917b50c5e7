"""`zstc serve`: a real uvicorn server on 127.0.0.1 answering real HTTP requests from httpx."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
import torch
from support.cli import invoke_zstc, run_zstc
from support.data import read_jsonl, write_jsonl
from support.serving import LABELS, assert_close, serving, wait_ready, zstc_serve

from zstc_cli.engines.local import classify_texts
from zstc_cli.models.spec import load_scorer
from zstc_cli.records import Record
from zstc_cli.results import assemble
from zstc_cli.scorers.nli import NLIScorer
from zstc_cli.serving.microbatch import MicroBatcher, Overloaded, estimated_tokens

JSON = {"Content-Type": "application/json"}
JSONLINES = {"Content-Type": "application/jsonlines"}


class ExplodesOn(torch.nn.Module):
    """A real model that raises whenever its input holds one token: a failure only some requests cause."""

    def __init__(self, model: torch.nn.Module, token_id: int):
        super().__init__()
        self.model, self.token_id, self.config = model, token_id, model.config

    def forward(self, input_ids, **inputs):
        if bool((input_ids == self.token_id).any()):
            raise RuntimeError("the model exploded")
        return self.model(input_ids=input_ids, **inputs)


class RecordingScorer(NLIScorer):
    """Remembers the records each scorer call got, to see which requests shared a forward pass."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []
        self.records: list[list[Record]] = []

    def prepare(self, records):
        self.calls.append(len(records))
        self.records.append(list(records))
        return super().prepare(records)


class GatedScorer(NLIScorer):
    """Holds every scorer call until ``gate`` opens, so a test can fill the queue deterministically."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.entered, self.gate = threading.Event(), threading.Event()

    def prepare(self, records):
        self.entered.set()
        assert self.gate.wait(60)
        return super().prepare(records)


@pytest.fixture(scope="module")
def scorer(bert_nli) -> NLIScorer:
    return load_scorer(str(bert_nli), device="cpu").scorer


@pytest.fixture(scope="module")
def server(scorer) -> Iterator[str]:
    limits = {"max_labels": 8, "max_chars": 2000, "max_pairs": 200, "max_body_bytes": 64 * 1024}
    with serving(lambda: scorer, **limits, max_wait_ms=20) as ep:
        wait_ready(ep.url)
        yield ep.url


def test_ping_docs_and_execution_parameters(server):
    assert httpx.get(f"{server}/ping").json() == {"status": "healthy"}
    spec = httpx.get(f"{server}/openapi.json").json()
    body = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/jsonlines"}
    assert httpx.get(f"{server}/docs").status_code == 200
    assert httpx.get(f"{server}/execution-parameters").json()["BatchStrategy"] == "MULTI_RECORD"
    missing, wrong_method = httpx.get(f"{server}/nowhere"), httpx.get(f"{server}/invocations")
    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    assert (wrong_method.status_code, wrong_method.json()) == (405, {"error": "Method Not Allowed"})
    assert wrong_method.headers["allow"] == "POST"


def test_ping_is_503_until_the_model_is_loaded(scorer):
    loaded = threading.Event()

    def load():
        assert loaded.wait(60)
        return scorer

    with serving(load) as ep:
        assert httpx.get(f"{ep.url}/ping").status_code == 503
        refused = httpx.post(f"{ep.url}/invocations", json={"inputs": "a", "parameters": {"candidate_labels": "x"}})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        loaded.set()
        wait_ready(ep.url, timeout=30)


def test_answers_equal_classify_for_single_list_and_jsonlines(server, tmp_path, bert_nli, nyr_texts):
    rng = random.Random(3)
    singles = []
    for i, text in enumerate(rng.sample(nyr_texts, 12)):
        labels = rng.sample(LABELS, rng.randint(1, 6))
        singles.append({"inputs": text, "parameters": {"candidate_labels": labels, "multi_label": i % 3 == 0}})
    shared = {"candidate_labels": "health, money, humor", "multi_label": True, "hypothesis_template": "A tweet on {}."}
    listed = rng.sample(nyr_texts, 5)
    classic = [{"text": text, "categories": LABELS[:4]} for text in rng.sample(nyr_texts, 4)]
    rows = singles + [{"inputs": text, "parameters": shared} for text in listed] + classic
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    invoke_zstc("classify", src, tmp_path / "out.jsonl", "--model", bert_nli, "-q", check=True)
    expected = read_jsonl(tmp_path / "out.jsonl")

    for row, want in zip(singles, expected):
        answer = httpx.post(f"{server}/invocations", json=row)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        assert_close(answer.json(), want)
    multi = [want for row, want in zip(singles, expected) if row["parameters"]["multi_label"] and want["labels"][1:]]
    assert multi and all(abs(sum(want["scores"]) - 1) > 1e-3 for want in multi)  # independent per-label scores

    answer = httpx.post(f"{server}/invocations", json={"inputs": listed, "parameters": shared}).json()
    assert isinstance(answer, list) and len(answer) == len(listed)
    for got, want in zip(answer, expected[len(singles) :]):
        assert_close(got, want)

    answer = httpx.post(f"{server}/invocations", content=src.read_bytes(), headers=JSONLINES)
    assert answer.headers["content-type"] == "application/jsonlines"
    lines = [orjson.loads(line) for line in answer.content.splitlines()]
    assert len(lines) == len(rows)
    for got, want in zip(lines, expected):
        assert_close(got, want)


@pytest.mark.parametrize(
    "headers, body, status, message",
    [
        (JSON, b'{"inputs": "a", ', 400, "invalid JSON"),
        (JSON, b'{"inputs": "a"}', 400, "body: no labels"),
        (JSON, b'{"inputs": [], "parameters": {"candidate_labels": "x"}}', 400, '"inputs" is an empty list'),
        (JSON, b'{"inputs": ["a", 7], "parameters": {"candidate_labels": "x"}}', 400, "inputs[1]: 'inputs' must be"),
        (JSONLINES, b'{"text": "a", "categories": "x"}\n\n{"text": "b", \n', 400, "line 3: invalid JSON"),
        (JSONLINES, b'{"text": "a", "categories": "x", "multi_label": 1}\n', 400, 'line 1: "multi_label" must be'),
        (JSONLINES, b"\n\n", 400, "no records"),
        (JSON, b'{"inputs": "a", "parameters": {"candidate_labels": "a,b,c,d,e,f,g,h,i"}}', 400, "--max-labels 8"),
        (JSON, orjson.dumps({"inputs": "a" * 2001, "parameters": {"candidate_labels": "x"}}), 400, "--max-chars 2000"),
        (JSON, orjson.dumps({"inputs": "a" * 70_000}), 413, "--max-body-bytes 65536"),
        (
            JSON,
            orjson.dumps({"inputs": ["a"] * 26, "parameters": {"candidate_labels": "a,b,c,d,e,f,g,h"}}),
            413,
            "26 texts x their labels make 208 pairs, more than --max-pairs 200 per request: split it into requests of "
            "at most 25 texts",
        ),
        (
            JSONLINES,
            b'{"text": "a", "categories": "a,b,c,d,e,f,g,h"}\n' * 30,
            413,
            "split it into requests of at most 25",
        ),
        (
            JSON,
            orjson.dumps(
                {"inputs": "a", "parameters": {"candidate_labels": "x", "hypothesis_template": "x" * 2000 + "{}"}}
            ),
            413,
            "hypothesis_template of 2002 characters, more than --max-chars 2000",
        ),
        ({"Content-Type": "text/plain"}, b"hello", 415, "application/jsonlines"),
    ],
)
def test_bad_requests_get_a_json_error(server, headers, body, status, message):
    answer = httpx.post(f"{server}/invocations", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json" and message in answer.json()["error"]


def test_oversized_chunked_body_is_413(server):
    def chunks():  # no Content-Length: the server must count as the body arrives
        for _ in range(20):
            yield b" " * 4096

    answer = httpx.post(f"{server}/invocations", content=chunks(), headers=JSON)
    assert answer.status_code == 413 and "--max-body-bytes" in answer.json()["error"]


def test_a_model_failure_is_500_for_that_request_only_and_the_server_keeps_serving(scorer):
    token_id = scorer.tokenizer.convert_tokens_to_ids("volcano")
    assert token_id != scorer.tokenizer.unk_token_id
    exploding = NLIScorer(ExplodesOn(scorer.model, token_id), scorer.tokenizer)
    params = {"candidate_labels": LABELS}
    texts = ["I will run a marathon", "a volcano erupted", "save more money", "call my mother"]
    with serving(lambda: exploding, max_wait_ms=200) as ep:
        wait_ready(ep.url)
        with ThreadPoolExecutor(len(texts)) as pool:  # arriving together, they first share one forward pass
            payloads = [{"inputs": text, "parameters": params} for text in texts]
            answers = list(pool.map(lambda payload: httpx.post(f"{ep.url}/invocations", json=payload), payloads))
        assert [a.status_code for a in answers] == [200, 500, 200, 200]
        assert answers[1].json()["error"] == "scoring failed: RuntimeError: the model exploded"
        for text, answer in zip(texts[::2], answers[::2]):
            assert_close(answer.json(), classify_texts(scorer, [text], LABELS)[0])
        after = httpx.post(f"{ep.url}/invocations", json={"inputs": texts[3], "parameters": params})
        assert after.status_code == 200 and httpx.get(f"{ep.url}/ping").status_code == 200


def test_full_queue_is_503_with_retry_after(scorer):
    gated = GatedScorer(scorer.model, scorer.tokenizer)
    payload = {"inputs": "I will run a marathon", "parameters": {"candidate_labels": LABELS}}
    with serving(lambda: gated, max_queue=2, max_wait_ms=0) as ep, ThreadPoolExecutor(2) as pool:
        wait_ready(ep.url)
        first = pool.submit(httpx.post, f"{ep.url}/invocations", json=payload, timeout=60)
        assert gated.entered.wait(30)  # the worker holds the first request: one unanswered
        second = pool.submit(httpx.post, f"{ep.url}/invocations", json=payload, timeout=60)
        deadline = time.monotonic() + 30
        while ep.app.state.batcher.unanswered < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = httpx.post(f"{ep.url}/invocations", json=payload)
        gated.gate.set()
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "overloaded" in refused.json()["error"]
        assert first.result().status_code == 200 and second.result().status_code == 200


def test_eight_concurrent_clients_of_25_requests_all_get_their_own_answers(server, scorer, nyr_texts):
    rng = random.Random(11)
    requests = []
    for i in range(8 * 25):
        texts, labels = rng.sample(nyr_texts, 1 + (i % 5 == 0)), rng.sample(LABELS, rng.randint(2, 6))
        expected = classify_texts(scorer, texts, labels, multi_label=i % 2 == 1)
        parameters = {"candidate_labels": labels, "multi_label": i % 2 == 1}
        if len(texts) == 1:  # a single input is answered by one object, a list by a list
            requests.append(({"inputs": texts[0], "parameters": parameters}, expected[0]))
        else:
            requests.append(({"inputs": texts, "parameters": parameters}, expected))

    def client(share: list) -> int:
        with httpx.Client(base_url=server, timeout=60) as http:
            for payload, expected in share:
                answer = http.post("/invocations", json=payload)
                assert answer.status_code == 200, answer.text
                got = answer.json()
                assert isinstance(got, list) == isinstance(expected, list)
                for one, want in zip(*(x if isinstance(x, list) else [x] for x in (got, expected))):
                    assert_close(one, want)
        return len(share)

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(client, [requests[i::8] for i in range(8)])) == 200


def test_concurrent_requests_share_scorer_calls_within_the_token_budget(scorer):
    recording = RecordingScorer(scorer.model, scorer.tokenizer)
    records = [[Record(1, f"text number {i} about running", tuple(LABELS))] for i in range(8)]

    async def submit_all(batcher: MicroBatcher) -> list:
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.score(r) for r in records))
        finally:
            await batcher.close()

    shared = asyncio.run(submit_all(MicroBatcher(recording, max_wait_ms=500)))
    assert recording.calls == [8]
    for got, (record,) in zip(shared, records, strict=True):  # each request's own result, as if scored alone
        assert_close(got[0], assemble(record, scorer.score_records([record])[0]))

    recording.calls.clear()
    asyncio.run(submit_all(MicroBatcher(recording, max_wait_ms=500, batching=False)))
    assert recording.calls == [1] * 8

    recording.calls.clear()
    asyncio.run(submit_all(MicroBatcher(recording, max_wait_ms=500, max_batch_tokens=150)))
    assert sum(recording.calls) == 8 and len(recording.calls) > 1 and max(recording.calls) < 8


class EnteredScorer(NLIScorer):
    """Records each scorer call's size and signals the first, so a test can send a request mid-way."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []
        self.entered = threading.Event()

    def prepare(self, records):
        self.calls.append(len(records))
        self.entered.set()
        return super().prepare(records)


def test_a_small_request_behind_a_large_one_is_answered_first(scorer, nyr_texts):
    entering = EnteredScorer(scorer.model, scorer.tokenizer)
    large = [Record(i + 1, text, tuple(LABELS)) for i, text in enumerate(nyr_texts[:60])]
    small = [Record(1, "I will run a marathon", tuple(LABELS[:2]))]
    finished: list[str] = []

    async def large_then_small() -> tuple[list, list]:
        batcher = MicroBatcher(entering, slice_tokens=400, max_wait_ms=0)  # slices of a few records
        batcher.start()

        async def score(name: str, records: list[Record]) -> list:
            scores = await batcher.score(records)
            finished.append(name)
            return scores

        try:
            big = asyncio.ensure_future(score("large", large))
            assert await asyncio.to_thread(entering.entered.wait, 30)  # the large request's first slice
            return await asyncio.gather(big, score("small", small))
        finally:
            await batcher.close()

    big, little = asyncio.run(large_then_small())
    assert finished == ["small", "large"]
    assert len(entering.calls) > 3 and sum(entering.calls) == len(large) + 1  # sliced, every record once
    for record, got, want in zip(
        large + small, big + little, scorer.score_records(large) + scorer.score_records(small), strict=True
    ):
        assert_close(got, assemble(record, want))


def test_slices_go_shortest_first_and_answers_keep_the_request_order(scorer, nyr_texts):
    recording = RecordingScorer(scorer.model, scorer.tokenizer)
    texts = [text * (1 + i % 4) for i, text in enumerate(nyr_texts[:16])]  # lengths up and down
    records = [Record(i + 1, text, tuple(LABELS[: 2 + i % 3])) for i, text in enumerate(texts)]

    async def one_request() -> list:
        batcher = MicroBatcher(recording, slice_tokens=200, max_wait_ms=0)
        batcher.start()
        try:
            return await batcher.score(records)
        finally:
            await batcher.close()

    answer = asyncio.run(one_request())
    assert len(recording.calls) > 2  # sliced
    costs = [estimated_tokens(record) for call in recording.records for record in call]
    assert costs == sorted(costs) != [estimated_tokens(record) for record in records]  # shortest first
    for record, got in zip(records, answer, strict=True):
        (want,) = scorer.score_records([record])
        assert_close(got, assemble(record, want))


def test_requests_take_turns_and_a_stream_of_small_ones_cannot_starve_a_large_one(scorer, nyr_texts):
    recording = RecordingScorer(scorer.model, scorer.tokenizer)
    large = [Record(i + 1, text, tuple(LABELS)) for i, text in enumerate(nyr_texts[:12])]
    finished: list[str] = []

    async def crowd() -> None:
        batcher = MicroBatcher(recording, max_batch_tokens=1, max_wait_ms=0)  # one record per scorer call
        batcher.start()

        async def score(name: str, records: list[Record]) -> None:
            await batcher.score(records)
            finished.append(name)

        async def stream() -> None:  # a new one-record request before every scorer call
            for i in range(30):
                await score(f"small {i}", [Record(1, nyr_texts[i], tuple(LABELS))])

        try:
            await asyncio.gather(score("large", large), stream(), stream())
        finally:
            await batcher.close()

    asyncio.run(crowd())
    # Two waiting small requests per round besides the large one: it gets every third call.
    assert finished.index("large") < 3 * len(large) + 2 < len(finished)


def test_close_fails_the_group_being_scored_instead_of_leaving_it_waiting(scorer):
    gated = GatedScorer(scorer.model, scorer.tokenizer)

    async def close_while_scoring() -> None:
        batcher = MicroBatcher(gated, max_wait_ms=0)
        batcher.start()
        answer = asyncio.ensure_future(batcher.score([Record(1, "I will run a marathon", tuple(LABELS))]))
        assert await asyncio.to_thread(gated.entered.wait, 30)  # the model thread holds the request
        await batcher.close()
        with pytest.raises(Overloaded, match="shutting down"):
            await asyncio.wait_for(answer, 10)

    try:
        asyncio.run(close_while_scoring())
    finally:
        gated.gate.set()


def test_close_fails_the_group_being_collected(scorer):
    async def close_while_collecting() -> None:
        batcher = MicroBatcher(scorer, max_wait_ms=60_000)  # the worker waits for company for a minute
        batcher.start()
        answer = asyncio.ensure_future(batcher.score([Record(1, "I will run a marathon", tuple(LABELS))]))
        await asyncio.sleep(0.05)  # the worker has the request and waits for company
        await batcher.close()
        with pytest.raises(Overloaded, match="shutting down"):
            await asyncio.wait_for(answer, 10)

    asyncio.run(close_while_collecting())


def test_zstc_serve_command_serves_and_stops_on_interrupt(bert_nli):
    with zstc_serve("--model", str(bert_nli), "--labels", "health,money", "--threads", "1") as served:
        answer = httpx.post(f"{served.url}/invocations", json={"inputs": "I will run a marathon"})  # --labels fill in
        assert answer.status_code == 200 and sorted(answer.json()["labels"]) == ["health", "money"]
    assert served.returncode == 0, served.stderr.decode()
    assert served.stdout == b"" and b"POST /invocations" in served.stderr  # logs go to stderr


@pytest.mark.parametrize(
    ("options", "ready"),
    [((), "ready (micro-batches of up to 8192 tokens, forward passes of up to 2048 tokens and 64 pairs, at most 4096 pairs "
          "per request"),
     (("--max-tokens", "512", "--batch-size", "8", "--max-batch-tokens", "1000"),
      "ready (micro-batches of up to 1000 tokens, forward passes of up to 512 tokens and 8 pairs, at most 512 pairs per "
      "request"),
     pytest.param(("--max-pairs", "100",), "and 64 pairs, at most 100 pairs per request", marks=pytest.mark.slow)],
)  # fmt: skip  # --max-pairs from the command line to the server's limit: in the slow set, which CI runs
def test_zstc_serve_scores_with_classifys_budget(bert_nli, options, ready):
    """``--max-batch-tokens`` bounds a micro-batch of requests; each forward pass keeps the device's budget
    (the CPU's smaller one) unless ``--max-tokens`` / ``--batch-size`` say otherwise, as in classify."""
    with zstc_serve("--model", str(bert_nli), "--device", "cpu", "--threads", "1", *options) as served:
        pass
    assert f"{ready})".encode() in served.stderr


def test_zstc_serve_fails_in_one_line_for_a_missing_model_or_a_busy_port(tmp_path):
    missing = run_zstc("serve", "--model", str(tmp_path / "nope"), "--port", "0", "-q")
    assert missing.returncode == 2 and b"Traceback" not in missing.stderr
    (line,) = missing.stderr.decode().strip().splitlines()
    assert line == f"zstc: error: --model {tmp_path / 'nope'}: no such directory"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run_zstc("serve", "--model", str(tmp_path), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1].startswith(f"zstc: error: cannot listen on 127.0.0.1:{port}")
