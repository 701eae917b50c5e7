"""``--adapt``, ``--save-adaptation`` and ``--adaptation`` through the real ``zstc`` command, bundled model."""

from __future__ import annotations

import signal

import httpx
import orjson
import pytest
from support.cli import invoke_zstc, run_zstc
from support.data import NYR, read_jsonl, write_jsonl
from support.interrupt import checkpoint, stop_after, zstc
from support.serving import zstc_serve

from zstc_cli.errors import ZstcError

MODEL = ("--model", "all-MiniLM-L6-v2", "--device", "cpu")
LABELS = "Health & Fitness,Humor,Personal Growth,Philanthropic,Recreation & Leisure,Career,Finance"


@pytest.fixture(scope="module")
def tweets(tmp_path_factory):
    rows = [{"text": row["text"], "id": i} for i, row in enumerate(read_jsonl(NYR)[:120])]
    return write_jsonl(tmp_path_factory.mktemp("adapt") / "tweets.jsonl", rows)


@pytest.fixture(scope="module")
def adapted_run(tweets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapted")
    out, state = folder / "out.jsonl", folder / "state.json"
    args = (tweets, out, *MODEL, "--labels", LABELS, "--adapt", "--adapt-sample", "80", "--save-adaptation", state)
    result = invoke_zstc("classify", *args, check=True)
    return out, state, result.stderr.decode()


def test_adapt_says_the_safeguard_decision_and_is_deterministic(tweets, adapted_run, tmp_path):
    out, state, stderr = adapted_run
    assert "zstc: adapt [Health & Fitness" in stderr and "records 80" in stderr
    assert "refinement adopted" in stderr or "refinement declined" in stderr
    again = tmp_path / "again.jsonl"
    invoke_zstc("classify", tweets, again, *MODEL, "--labels", LABELS, "--adapt", "--adapt-sample", "80", check=True)
    assert again.read_bytes() == out.read_bytes()
    plain = tmp_path / "plain.jsonl"
    invoke_zstc("classify", tweets, plain, *MODEL, "--labels", LABELS, check=True)
    assert plain.read_bytes() != out.read_bytes()  # the calibrated scores differ from the fixed constants


def test_saved_state_round_trips_to_the_same_output(tweets, adapted_run, tmp_path):
    out, state, _ = adapted_run
    saved = orjson.loads(state.read_bytes())
    assert saved["format"] == "zstc-adaptation" and saved["labels"] == LABELS.split(",")
    assert saved["sample_size"] == 80 and "adopted" in saved["decision"]
    reused = tmp_path / "reused.jsonl"
    result = invoke_zstc("classify", tweets, reused, *MODEL, "--labels", LABELS, "--adaptation", state, check=True)
    # the same scores; not byte-equal: the --adapt run reuses the sample's embeddings, batched apart
    for mine, theirs in zip(read_jsonl(reused), read_jsonl(out), strict=True):
        assert mine["labels"][0] == theirs["labels"][0]
        assert dict(zip(mine["labels"], mine["scores"])) == pytest.approx(
            dict(zip(theirs["labels"], theirs["scores"])), abs=1e-5
        )
    assert "zstc: adapt [" in result.stderr.decode()


def test_multi_label_adapt_keeps_each_records_top_label_and_its_state_round_trips(tweets, tmp_path):
    out, state, reused = tmp_path / "out.jsonl", tmp_path / "state.json", tmp_path / "reused.jsonl"
    common = (*MODEL, "--labels", LABELS, "--multi-label")
    said = invoke_zstc("classify", tweets, out, *common, "--adapt", "--adapt-sample", "80", "--save-adaptation", state,
                       check=True).stderr.decode()  # fmt: skip
    assert "top label adopted" in said
    saved = orjson.loads(state.read_bytes())
    assert saved["top_label"]["ratio"] > 0 and saved["decision"]["components"]["top label"]["adopted"]
    adapted = read_jsonl(out)
    assert all(max(row["scores"]) >= 0.5 for row in adapted)  # the top label is kept at the 0.5 threshold
    invoke_zstc("classify", tweets, reused, *common, "--adaptation", state, check=True)
    for mine, theirs in zip(read_jsonl(reused), adapted, strict=True):
        assert dict(zip(mine["labels"], mine["scores"])) == pytest.approx(
            dict(zip(theirs["labels"], theirs["scores"])), abs=1e-5
        )


@pytest.mark.parametrize(
    "change, words",
    [
        (("--labels", "Humor,Career"), "fitted for labels"),
        (("--labels", LABELS, "-t", "The topic is {}."), "fitted for templates"),
    ],
)
def test_a_state_for_other_labels_or_template_is_refused(tweets, adapted_run, tmp_path, change, words):
    _, state, _ = adapted_run
    result = invoke_zstc("classify", tweets, tmp_path / "o.jsonl", *MODEL, *change, "--adaptation", state)
    stderr = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and stderr[-1].startswith("zstc: error: --adaptation") and words in stderr[-1]
    assert "Traceback" not in result.stderr.decode()


def test_a_file_that_is_no_state_is_refused(tweets, tmp_path):
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    result = invoke_zstc("classify", tweets, tmp_path / "o.jsonl", *MODEL, "--labels", LABELS, "--adaptation", bogus)
    assert result.returncode == 2 and "not a zstc adaptation state" in result.stderr.decode()


def test_each_label_set_is_adapted_apart_and_a_small_one_is_not(tweets, tmp_path):
    rows = read_jsonl(tweets)
    rows[3]["categories"] = ["yes", "no"]  # one record with a label set of its own: too few to fit
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = invoke_zstc("classify", data, out, *MODEL, "--labels", LABELS, "--adapt", check=True)
    stderr = result.stderr.decode()
    assert "adapt [yes,no]: not adapted (1 sample records for 2 labels" in stderr
    assert "adapt [Health & Fitness" in stderr and "calibrated" in stderr
    plain = tmp_path / "plain.jsonl"
    invoke_zstc("classify", data, plain, *MODEL, "--labels", LABELS, check=True)
    # not adapted: the plain scores (to float noise: --adapt scored the record in its sample's batch)
    adapted, unadapted = read_jsonl(out)[3], read_jsonl(plain)[3]
    assert adapted["labels"] == unadapted["labels"]
    assert adapted["scores"] == pytest.approx(unadapted["scores"], abs=1e-5)
    assert len(read_jsonl(out)) == len(rows)


def test_stdin_is_spooled_and_gives_the_file_result(tweets, adapted_run):
    out, _, _ = adapted_run
    args = ("-", "-", *MODEL, "--labels", LABELS, "--adapt", "--adapt-sample", "80")
    result = invoke_zstc("classify", *args, input=tweets.read_bytes(), check=True)
    assert result.stdout == out.read_bytes()


def test_nli_scorer_adapts_at_score_level(tweets, bert_nli, tmp_path):
    out = tmp_path / "nli.jsonl"
    result = invoke_zstc(
        "classify", tweets, out, "--model", bert_nli, "--labels", "Humor,Career", "--adapt", check=True
    )
    assert "score-level adaptation only" in result.stderr.decode()
    assert len(read_jsonl(out)) == 120


def labeled(tmp_path, poison_last: bool = False):
    rows = [{"text": r["text"], "topic": r["Resolution_Category"]} for r in read_jsonl(NYR)[:60]]
    if poison_last:
        rows[-1]["topic"] = 42  # read_gold refuses it the moment it reads the gold field
    return write_jsonl(tmp_path / "labeled.jsonl", rows)


def test_evaluate_adapt_reads_no_gold_before_the_predictions_are_final(tmp_path):
    data, predictions = labeled(tmp_path, poison_last=True), tmp_path / "predictions.jsonl"
    args = ("evaluate", data, "--label-field", "topic", *MODEL, "--labels", LABELS, "--predictions", predictions)
    blind = invoke_zstc(*args, "--adapt", "--adapt-sample", "40")
    assert blind.returncode == 2 and "labeled.jsonl:60" in blind.stderr.decode()
    assert len(read_jsonl(predictions)) == 60  # every prediction was written before the gold field was read
    predictions.unlink()
    plain = invoke_zstc(*args)  # without --adapt, gold is read first: the same error comes before any prediction
    assert plain.returncode == 2 and "labeled.jsonl:60" in plain.stderr.decode() and not predictions.exists()


def test_evaluate_adapt_reports_the_decision(tmp_path):
    data, report = labeled(tmp_path), tmp_path / "report.json"
    args = ("evaluate", data, "--label-field", "topic", *MODEL, "--labels", LABELS, "--report", report)
    invoke_zstc(*args, "--adapt", "--adapt-sample", "40", check=True)
    adaptation = orjson.loads(report.read_bytes())["run"]["adaptation"]
    assert len(adaptation) == 1 and adaptation[0]["figures"]["records"] == 40
    assert adaptation[0]["adapted"] and isinstance(adaptation[0]["adopted"], bool) and adaptation[0]["reasons"]


def test_evaluate_adapt_without_labels_takes_only_the_candidate_set_from_the_gold(tmp_path):
    """Without --labels the candidates are the distinct gold values; every record is still scored against
    the whole set, so the predictions equal those of --labels naming the same set: no record's own gold
    reached the fit or the scorer."""
    data = labeled(tmp_path)
    candidates = sorted({row["topic"] for row in read_jsonl(data)})
    named, blind = tmp_path / "named.jsonl", tmp_path / "blind.jsonl"
    common = ("evaluate", data, "--label-field", "topic", *MODEL, "--adapt", "--adapt-sample", "40")
    invoke_zstc(*common, "--labels", ",".join(candidates), "--predictions", named, check=True)
    said = invoke_zstc(*common, "--predictions", blind, "--label-map", "No such gold=x", check=True).stderr.decode()
    assert blind.read_bytes() == named.read_bytes()
    assert said.count("label map key 'No such gold' matches no gold label") == 1  # said once, not per reading


@pytest.mark.slow
def test_resume_with_adapt_reuses_the_checkpointed_state_and_equals_a_clean_run(tmp_path):
    rows = [{"text": row["text"], "id": i} for i, row in enumerate(read_jsonl(NYR)[:300])]
    src = write_jsonl(tmp_path / "tweets.jsonl", rows)
    clean, out = tmp_path / "clean.jsonl", tmp_path / "out.jsonl"
    common = (*MODEL, "--labels", LABELS, "--adapt", "--window", "8")
    run_zstc("classify", src, clean, *common, "--adapt-sample", "100", env={"OMP_NUM_THREADS": "1"}, check=True)
    stop_after(zstc("classify", str(src), str(out), *common, "--adapt-sample", "100"), out, 60, signal.SIGKILL)
    assert not out.exists() and checkpoint(out)["line"] >= 60
    # Another sample size would fit another state; the resumed run must keep the interrupted run's.
    resumed = run_zstc("classify", src, out, *common, "--adapt-sample", "30", "--resume", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert "from its checkpoint" in resumed.stderr.decode() and "records 100" in resumed.stderr.decode()
    assert out.read_bytes() == clean.read_bytes()


@pytest.mark.slow
def test_serve_answers_with_a_saved_state_and_refuses_one_for_other_labels(tweets, adapted_run):
    out, state, _ = adapted_run
    first = read_jsonl(tweets)[0]["text"]
    with zstc_serve(*MODEL, "--labels", LABELS, "--adaptation", str(state), "--threads", "1") as served:
        answer = httpx.post(f"{served.url}/invocations", json={"inputs": first})
        other = httpx.post(
            f"{served.url}/invocations", json={"inputs": first, "parameters": {"candidate_labels": "a,b"}}
        )
    # classify --adapt's own answer: the same labels in order; scores equal up to float noise, as the --adapt run
    # reuses the sample's embeddings, batched with other records, while serve embeds the record alone
    want = read_jsonl(out)[0]
    assert answer.status_code == 200 and answer.json()["labels"] == want["labels"]
    assert answer.json()["sequence"] == want["sequence"]
    assert answer.json()["scores"] == pytest.approx(want["scores"], abs=1e-5)
    assert other.status_code == 200 and sorted(other.json()["labels"]) == ["a", "b"]  # no state: plain scores
    assert served.returncode == 0 and "zstc: adapt [Health & Fitness" in served.stderr.decode()
    refused = run_zstc("serve", *MODEL, "--labels", "Humor,Career", "--adaptation", state, "--port", "0")
    assert refused.returncode == 2 and "fitted for labels" in refused.stderr.decode().strip().splitlines()[-1]


def test_python_api_fits_saves_and_loads_a_state(tweets, bert_nli, tmp_path):
    from zstc_cli import RecordDefaults, Scorer
    from zstc_cli.engines.local import classify_texts
    from zstc_cli.engines.run import fit_on as adapt
    from zstc_cli.models.spec import load_scorer
    from zstc_cli.scorers.adapted import load_states as load_adaptation
    from zstc_cli.scorers.adapted import save_states as save_adaptation

    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    defaults = RecordDefaults(labels=("Humor", "Career"))
    adapted = adapt(str(tweets), scorer, defaults, sample_size=60)
    assert adapted.notes and adapted.notes[0]["figures"]["records"] == 60
    assert isinstance(adapted, Scorer) and (adapted.model, adapted.batch_size) == (scorer.model, scorer.batch_size)
    save_adaptation(adapted, str(tmp_path / "state.json"))
    loaded = load_adaptation(str(tmp_path / "state.json"), scorer, labels=defaults.labels)
    texts = [row["text"] for row in read_jsonl(tweets)[:5]]
    # The same texts at the same positions as in the file: ``adapted`` reuses their sample scores (scored in
    # another batch, so equal up to float noise), ``loaded`` computes them.
    for got, want in zip(
        classify_texts(loaded, texts, defaults.labels), classify_texts(adapted, texts, defaults.labels)
    ):
        assert got["labels"] == want["labels"] and got["scores"] == pytest.approx(want["scores"], abs=1e-5)
    assert classify_texts(loaded, texts, defaults.labels) != classify_texts(scorer, texts, defaults.labels)
    with pytest.raises(ZstcError, match="fitted for labels"):
        load_adaptation(str(tmp_path / "state.json"), scorer, labels=("Humor", "Finance"))


def test_a_state_fitted_with_label_descriptions_needs_the_same_descriptions(tweets, tmp_path):
    described, plain = tmp_path / "described.txt", tmp_path / "plain.txt"
    described.write_text("Humor: jokes and funny resolutions\nCareer\n")
    plain.write_text("Humor\nCareer\n")
    state = tmp_path / "state.json"
    args = ("classify", tweets, tmp_path / "out.jsonl", *MODEL, "--adapt-sample", "60")
    invoke_zstc(*args, "--labels", f"@{described}", "--adapt", "--save-adaptation", state, check=True)
    assert orjson.loads(state.read_bytes())["extra"]["descriptions"] == {"Humor": "jokes and funny resolutions"}
    reused = invoke_zstc(
        "classify", tweets, tmp_path / "again.jsonl", *MODEL, "--labels", f"@{described}", "--adaptation", state
    )
    assert reused.returncode == 0, reused.stderr.decode()
    refused = invoke_zstc(
        "classify", tweets, tmp_path / "other.jsonl", *MODEL, "--labels", f"@{plain}", "--adaptation", state
    )
    assert refused.returncode == 2 and "fitted with label descriptions" in refused.stderr.decode()


def test_evaluate_adapt_draws_the_confusion_matrix(tmp_path):
    data, plot = labeled(tmp_path), tmp_path / "confusion.png"
    args = ("evaluate", data, "--label-field", "topic", *MODEL, "--labels", LABELS, "--plot", plot)
    invoke_zstc(*args, "--adapt", "--adapt-sample", "40", check=True)
    assert plot.read_bytes().startswith(b"\x89PNG")
