"""`zstc evaluate` (in-process) on New Year's resolutions, with a tiny (random) NLI model.

Scores mean nothing, so the tests check that each report agrees with the predictions it was computed from.
"""

from __future__ import annotations

import random
import sys
from collections import Counter

import orjson
import pytest
from sklearn.metrics import f1_score, hamming_loss
from support.cli import invoke_zstc, run_zstc
from support.data import read_jsonl, write_jsonl

from zstc_cli.engines.local import classify_texts
from zstc_cli.models.spec import load_scorer

FIELD = "Resolution_Category"


@pytest.fixture(scope="module")
def nyr_slice(nyr_rows, tmp_path_factory):
    """60 tweets with a unique id (the data's tweet_id is rounded, so not unique)."""
    rows = [{"id": f"r{i}", **row} for i, row in enumerate(nyr_rows[:60])]
    return write_jsonl(tmp_path_factory.mktemp("slice") / "nyr60.jsonl", rows), rows


@pytest.fixture(scope="module")
def evaluated(nyr_slice, bert_nli, tmp_path_factory):
    src, rows = nyr_slice
    out = tmp_path_factory.mktemp("evaluated")
    paths = {name: out / name for name in ("report.json", "pred.jsonl", "cm.png")}
    result = invoke_zstc(
        "evaluate", src, "--label-field", FIELD, "--model", bert_nli, "--id-field", "id",
        "--report", paths["report.json"], "--predictions", paths["pred.jsonl"], "--plot", paths["cm.png"],
        check=True,
    )  # fmt: skip
    return rows, result, orjson.loads(paths["report.json"].read_bytes()), paths


def test_report_agrees_with_its_predictions(evaluated, bert_nli):
    rows, result, report, paths = evaluated
    predictions = read_jsonl(paths["pred.jsonl"])
    gold = [row[FIELD] for row in rows]
    top = [p["labels"][0] for p in predictions]
    assert [p["id"] for p in predictions] == [row["id"] for row in rows]
    assert [p[FIELD] for p in predictions] == gold  # the gold label is kept next to the prediction
    assert [p["sequence"] for p in predictions] == [row["text"] for row in rows]

    m = report["metrics"]
    assert report["candidate_labels"] == sorted(set(gold))
    assert m["kind"] == "single-label" and m["n"] == 60
    assert m["accuracy"] == pytest.approx(sum(t == g for t, g in zip(top, gold)) / 60)
    assert m["top3_accuracy"] == pytest.approx(sum(g in p["labels"][:3] for g, p in zip(gold, predictions)) / 60)
    assert m["macro"]["f1"] == pytest.approx(f1_score(gold, top, average="macro", zero_division=0))
    support = Counter(gold)
    assert {row["label"]: row["support"] for row in m["per_label"]} == {l: support[l] for l in sorted(support)}
    assert {row["label"]: row["predicted"] for row in m["per_label"]} == {l: top.count(l) for l in sorted(support)}
    matrix = m["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == 60 and sum(matrix[i][i] for i in range(len(matrix))) == round(m["accuracy"] * 60)
    label, count = support.most_common(1)[0]
    assert m["majority_baseline"] == {"label": label, "accuracy": pytest.approx(count / 60)}

    run = report["run"]
    assert run["model"] == str(bert_nli) and run["model_source"] == "local" and run["scorer"] == "nli"
    assert (run["device"], run["dtype"], run["hypothesis_template"]) == ("cpu", "float32", "This example is {}.")
    assert run["records_per_second"] > 0 and report["zstc_version"]

    table = result.stdout.decode()
    assert f"{100 * m['accuracy']:.1f}%" in table and "majority baseline" in table and "Most confused" in table
    assert all(label in table for label in ("Health & Fitness", "Personal Growth"))
    assert "60 records" in result.stderr.decode()


def test_plot_is_a_png_of_the_confusion_matrix(evaluated):
    import matplotlib.image

    png = evaluated[3]["cm.png"]
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    height, width, _ = matplotlib.image.imread(png).shape
    assert width > 400 and height > 400


def test_from_scores_a_predictions_file_by_line_order_or_by_id(evaluated, nyr_slice, tmp_path):
    rows, _, report, paths = evaluated
    src, _ = nyr_slice
    # --model names nothing loadable: scoring a predictions file must not load a model.
    again = invoke_zstc(
        "evaluate", src, "--label-field", FIELD, "--from", paths["pred.jsonl"], "--model", "nobody/none",
        "--report", tmp_path / "again.json", check=True,
    )  # fmt: skip
    assert orjson.loads((tmp_path / "again.json").read_bytes())["metrics"] == report["metrics"]
    assert again.stdout.decode().count("accuracy") >= 1

    shuffled = read_jsonl(paths["pred.jsonl"])
    random.Random(1).shuffle(shuffled)
    write_jsonl(tmp_path / "shuffled.jsonl", shuffled)
    by_id = invoke_zstc(
        "evaluate", src, "--label-field", FIELD, "--from", tmp_path / "shuffled.jsonl", "--id-field", "id",
        "--report", tmp_path / "by_id.json", check=True,
    )  # fmt: skip
    assert by_id.returncode == 0
    assert orjson.loads((tmp_path / "by_id.json").read_bytes())["metrics"] == report["metrics"]

    wrong = invoke_zstc("evaluate", src, "--label-field", FIELD, "--from", tmp_path / "shuffled.jsonl")
    assert wrong.returncode == 2
    (line,) = wrong.stderr.decode().strip().splitlines()
    assert line.startswith(f"zstc: error: {tmp_path / 'shuffled.jsonl'}:1: sequence differs") and "--id-field" in line


def test_stdin_label_map_and_predictions_on_stdout(nyr_slice, bert_nli, tmp_path):
    src, rows = nyr_slice
    mapping = {"Health & Fitness": "health and fitness", "Humor": "a joke", "Nope": "never used"}
    (tmp_path / "map.json").write_bytes(orjson.dumps(mapping))
    result = invoke_zstc(
        "evaluate", "-", "--label-field", FIELD, "--model", bert_nli, "--label-map", f"@{tmp_path / 'map.json'}",
        "--predictions", "-", "--report", tmp_path / "r.json", "-t", "This tweet is about {}.",
        input=src.read_bytes(), check=True,
    )  # fmt: skip
    predictions = [orjson.loads(line) for line in result.stdout.splitlines()]  # stdout holds only predictions
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    gold = [mapping.get(row[FIELD], row[FIELD]) for row in rows]
    assert report["candidate_labels"] == sorted(set(gold))
    assert all(set(p["labels"]) == set(report["candidate_labels"]) for p in predictions)
    accuracy = sum(p["labels"][0] == g for p, g in zip(predictions, gold)) / len(rows)
    assert report["metrics"]["accuracy"] == pytest.approx(accuracy)
    assert report["run"]["hypothesis_template"] == "This tweet is about {}."
    stderr = result.stderr.decode()
    assert "top-3 accuracy" in stderr and "a joke" in stderr  # the table goes to stderr
    warning = "zstc: warning: label map key 'Nope' matches no gold label"
    assert stderr.count(warning) == 1 and stderr.index(warning) < stderr.index("zstc: 60 records")  # before scoring
    assert orjson.loads((tmp_path / "r.json").read_bytes())["warnings"] == [warning.removeprefix("zstc: warning: ")]


def test_multi_label_gold_lists(nyr_slice, bert_nli, tmp_path):
    _, rows = nyr_slice
    extra = ["Personal Growth", "Humor"]
    data = [
        {"text": row["text"], "gold": sorted({row[FIELD], extra[i % 2]}) if i % 3 == 0 else [row[FIELD]]}
        for i, row in enumerate(rows[:30])
    ]
    src = write_jsonl(tmp_path / "multi.jsonl", data)
    invoke_zstc(
        "evaluate", src, "--label-field", "gold", "--model", bert_nli, "--threshold", "0.4",
        "--predictions", tmp_path / "p.jsonl", "--report", tmp_path / "r.json", check=True,
    )  # fmt: skip
    m = orjson.loads((tmp_path / "r.json").read_bytes())["metrics"]
    predictions = read_jsonl(tmp_path / "p.jsonl")
    assert any(abs(sum(p["scores"]) - 1) > 0.01 for p in predictions)  # scored label by label
    labels = sorted({label for row in data for label in row["gold"]})
    truth = [[label in row["gold"] for label in labels] for row in data]
    guess = [[dict(zip(p["labels"], p["scores"]))[label] >= 0.4 for label in labels] for p in predictions]
    assert m["kind"] == "multi-label" and m["threshold"] == 0.4
    assert m["subset_accuracy"] == pytest.approx(sum(t == g for t, g in zip(truth, guess)) / 30)
    assert m["hamming_loss"] == pytest.approx(hamming_loss(truth, guess))
    assert m["micro"]["f1"] == pytest.approx(f1_score(truth, guess, average="micro", zero_division=0))


def test_gold_sep_and_label_map_on_a_known_predictions_file(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", [{"text": "one", "tags": "Money | Health"}, {"text": "two", "tags": "Fun"}])
    pred = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"labels": ["money", "health", "fun"], "scores": [0.9, 0.6, 0.1]},
            {"labels": ["money", "fun", "health"], "scores": [0.7, 0.2, 0.1]},
        ],
    )
    invoke_zstc(
        "evaluate", src, "--label-field", "tags", "--gold-sep", "|", "--label-map", "Money=money,Health=health,Fun=fun",
        "--from", pred, "--report", tmp_path / "r.json", check=True,
    )  # fmt: skip
    m = orjson.loads((tmp_path / "r.json").read_bytes())["metrics"]
    # predicted {money, health}, {money}; gold {money, health}, {fun}
    assert m["subset_accuracy"] == 0.5 and m["hamming_loss"] == pytest.approx(2 / 6)
    assert m["micro"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})


def test_mixed_gold_shapes_are_refused_unless_multi_label_is_asked(tmp_path):
    """One `[]` among string golds does not switch the report to multi-label: it is a FILE:LINE error."""
    src = write_jsonl(tmp_path / "d.jsonl", [{"text": "one", "y": "money"}, {"text": "two", "y": []}])
    pred = write_jsonl(tmp_path / "p.jsonl", [{"labels": ["money"], "scores": [0.9]}] * 2)
    refused = invoke_zstc("evaluate", src, "--label-field", "y", "--from", pred)
    assert refused.returncode == 2 and refused.stderr.decode().splitlines() == [
        f"zstc: error: {src}:2: 'y' is a list of labels but on line 1 it is one label; mixed gold shapes: pass "
        "--multi-label to read every gold value as a set of labels (or --gold-sep to split strings)"
    ]
    asked = invoke_zstc("evaluate", src, "--label-field", "y", "--from", pred, "--multi-label", "--report", "-")
    assert asked.returncode == 0, asked.stderr.decode()
    assert orjson.loads(asked.stdout)["metrics"]["subset_accuracy"] == 0.5  # {money} right, {} predicted {money}


def test_bad_gold_field_is_a_file_line_error_before_any_model_loads(nyr_slice, tmp_path):
    _, rows = nyr_slice
    bad = [rows[0], rows[1], {"text": "no gold here"}, rows[3]]
    src = write_jsonl(tmp_path / "bad.jsonl", bad)
    report = tmp_path / "r.json"
    result = invoke_zstc("evaluate", src, "--label-field", FIELD, "--model", "nobody/none", "--report", report)
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert line == f"zstc: error: {src}:3: no {FIELD!r} field (the --label-field)"
    assert not report.exists()
    write_jsonl(src, [rows[0], {"text": "x", FIELD: 7}])
    result = invoke_zstc("evaluate", "-", "--label-field", FIELD, "--from", src, input=src.read_bytes())
    assert result.stderr.decode().strip() == f"zstc: error: -:2: {FIELD!r} must be a label or a list of labels, got 7"


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, nyr_slice):
    src, _ = nyr_slice
    shim = tmp_path / "shim" / "matplotlib"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('matplotlib is not installed')\n")
    env = {"PYTHONPATH": f"{shim.parent}:{':'.join(sys.path)}"}
    result = run_zstc("evaluate", src, "--label-field", FIELD, "--from", src, "--plot", tmp_path / "cm.png", env=env)
    assert result.returncode == 2
    assert (
        result.stderr.decode().strip()
        == "zstc: error: --plot needs matplotlib: pip install -e '.[plot]' (from a checkout)"
    )


@pytest.mark.slow
def test_data_predictions_and_report_on_s3(evaluated, nyr_slice):
    import boto3
    from moto.server import ThreadedMotoServer

    src, _ = nyr_slice
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }  # fmt: skip
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
        s3.create_bucket(Bucket="eval")
        s3.put_object(Bucket="eval", Key="data.jsonl", Body=src.read_bytes())
        s3.put_object(Bucket="eval", Key="pred.jsonl", Body=evaluated[3]["pred.jsonl"].read_bytes())
        run_zstc(
            "evaluate", "s3://eval/data.jsonl", "--label-field", FIELD, "--from", "s3://eval/pred.jsonl",
            "--report", "s3://eval/report.json", "--plot", "s3://eval/cm.png", env=env, check=True,
        )  # fmt: skip
        report = orjson.loads(s3.get_object(Bucket="eval", Key="report.json")["Body"].read())
        assert report["metrics"] == evaluated[2]["metrics"]
        assert s3.get_object(Bucket="eval", Key="cm.png")["Body"].read().startswith(b"\x89PNG")
    finally:
        server.stop()


def test_record_label_fields_cannot_leak_the_gold_answer(nyr_slice, bert_nli, tmp_path):
    """A record's own categories/multi_label/template never replace evaluate's candidates and settings."""
    _, rows = nyr_slice
    leaky = [
        {"text": row["text"], "categories": row[FIELD], "multi_label": True, "hypothesis_template": "{}!"}
        for row in rows[:12]
    ]
    src = write_jsonl(tmp_path / "leaky.jsonl", leaky)
    invoke_zstc(
        "evaluate", src, "--label-field", "categories", "--model", bert_nli, "--labels", "Humor,Career,Finance",
        "--predictions", tmp_path / "p.jsonl", "--report", tmp_path / "r.json", "-q", check=True,
    )  # fmt: skip
    predictions = read_jsonl(tmp_path / "p.jsonl")
    scorer = load_scorer(str(bert_nli), quiet=True).scorer
    expected = classify_texts(scorer, [row["text"] for row in leaky], ["Humor", "Career", "Finance"])  # defaults
    for got, want in zip(predictions, expected, strict=True):
        assert got["labels"] == want["labels"]
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    assert report["run"]["hypothesis_template"] == "This example is {}."


@pytest.mark.parametrize(
    "options, message",
    [
        (["--predictions", "data.jsonl"], "--predictions data.jsonl is also DATA"),
        (["--report", "./data.jsonl"], "--report ./data.jsonl is also DATA"),
        (["--from", "pred.jsonl", "--report", "pred.jsonl"], "--report pred.jsonl is also --from"),
        (["--report", "r.json", "--plot", "r.json"], "--plot r.json is also --report"),
        (["--report", "sub"], "--report sub is a folder: it must be a file path"),
        (["--plot", "nowhere/cm.png"], "--plot nowhere/cm.png: folder 'nowhere' does not exist"),
        (["--plot", "newdir/"], "--plot newdir/ names a folder: it must be a file path"),
    ],
)
def test_outputs_that_would_overwrite_data_are_refused_before_the_model_loads(nyr_slice, tmp_path, options, message):
    src, _ = nyr_slice
    (tmp_path / "sub").mkdir()
    for name in ("data.jsonl", "pred.jsonl"):
        (tmp_path / name).write_bytes(src.read_bytes())
    result = invoke_zstc(
        "evaluate", "data.jsonl", "--label-field", FIELD, "--model", "never-loaded", *options, cwd=tmp_path
    )
    (line,) = result.stderr.decode().splitlines()
    assert result.returncode == 2 and line.startswith(f"zstc: error: {message}")
    assert all((tmp_path / name).read_bytes() == src.read_bytes() for name in ("data.jsonl", "pred.jsonl"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "pred.jsonl", "sub"]


def test_only_one_output_may_go_to_stdout(nyr_slice, tmp_path):
    src, _ = nyr_slice
    result = invoke_zstc("evaluate", "-", "--label-field", FIELD, "--from", "-", input=src.read_bytes())
    assert result.returncode == 2 and result.stderr == b"zstc: error: DATA and --from cannot both be - (stdin)\n"
    empty = invoke_zstc("evaluate", "-", "--label-field", FIELD, "--model", "never-loaded", input=b"")
    assert empty.returncode == 2 and empty.stderr == b"zstc: error: -: no records\n"  # not stdin's temporary copy
    result = invoke_zstc("evaluate", src, "--label-field", FIELD, "--report", "-", "--plot", "-", "--model", "x/y")
    assert result.returncode == 2 and b"--report and --plot cannot all be - (stdout)" in result.stderr
    result = invoke_zstc("evaluate", src, "--label-field", FIELD, "--from", src, "--predictions", tmp_path / "p")
    assert result.returncode == 2 and b"with --from there is nothing to write" in result.stderr


@pytest.fixture(scope="module")
def classified_over_all(nyr_rows, nyr_slice, bert_nli, tmp_path_factory):
    """`zstc classify` of the 60 tweets over all 10 categories, more than the slice's gold labels."""
    src, rows = nyr_slice
    labels = sorted({row[FIELD] for row in nyr_rows})
    assert len(labels) == 10 and {row[FIELD] for row in rows} < set(labels)
    out = tmp_path_factory.mktemp("all") / "p60.jsonl"
    invoke_zstc("classify", src, out, "--model", bert_nli, "--labels", ",".join(labels), "-q", check=True)
    return labels, out


def test_from_predictions_over_other_labels_is_a_file_line_error(nyr_slice, classified_over_all, tmp_path):
    """Predictions over 10 labels are not scored as a 2-label (or gold-label) evaluation: exit 2, FILE:LINE."""
    src, rows = nyr_slice
    labels, pred = classified_over_all
    others = ", ".join(repr(label) for label in labels if label not in ("Career", "Humor"))
    not_gold = ", ".join(repr(label) for label in labels if label not in {row[FIELD] for row in rows})
    cases = [
        (["-l", "Career,Humor"], f"2 candidate labels (unexpected: {others})"),
        ([], f"{len({row[FIELD] for row in rows})} candidate labels (unexpected: {not_gold})"),  # the gold labels
        (["-l", ",".join([*labels, "Astrology"])], "11 candidate labels (missing: 'Astrology')"),
    ]
    for args, problem in cases:
        result = invoke_zstc("evaluate", src, "--label-field", FIELD, "--from", pred, *args, "--report", tmp_path / "r")
        assert result.returncode == 2 and result.stdout == b""
        *warnings, line = result.stderr.decode().strip().splitlines()  # warnings about the gold come first
        assert all(w.startswith("zstc: warning: gold labels that are not candidate labels") for w in warnings)
        assert line.startswith(f"zstc: error: {pred}:1: the prediction ranks other labels than the {problem}; ")
        assert line.endswith("pass --labels with the labels the predictions were made with "
                             "(without it, the candidates are the distinct gold labels)")  # fmt: skip
        assert not (tmp_path / "r").exists()


def test_from_with_its_own_labels_the_warning_table_and_report_agree(nyr_slice, classified_over_all, tmp_path):
    """With the labels it was made with (any order) a file is scored as is; restricted files keep gold misses."""
    from sklearn.metrics import accuracy_score

    src, rows = nyr_slice
    labels, pred = classified_over_all
    gold = [row[FIELD] for row in rows]
    run = invoke_zstc(
        "evaluate", src, "--label-field", FIELD, "--from", pred, "-l", ",".join(labels[::-1]),
        "--report", tmp_path / "all.json", check=True,
    )  # fmt: skip
    report = orjson.loads((tmp_path / "all.json").read_bytes())
    top = [p["labels"][0] for p in read_jsonl(pred)]
    assert report["candidate_labels"] == labels[::-1] and report["warnings"] == []
    assert [row["label"] for row in report["metrics"]["per_label"]] == labels[::-1]
    assert report["metrics"]["accuracy"] == pytest.approx(accuracy_score(gold, top))
    assert report["metrics"]["macro"]["f1"] == pytest.approx(f1_score(gold, top, average="macro", zero_division=0))
    assert "(single-label, 10 candidate labels)" in run.stdout.decode() and run.stderr == b""
    assert "top-3 accuracy" in run.stdout.decode()

    # The same ranking cut down to two labels, as a 2-label classify would rank them: every other gold is a miss.
    two = ["Career", "Humor"]
    cut = [{"labels": [l for l in p["labels"] if l in two], "scores": [0.6, 0.4]} for p in read_jsonl(pred)]
    write_jsonl(tmp_path / "p2.jsonl", cut)
    run = invoke_zstc(
        "evaluate", src, "--label-field", FIELD, "--from", tmp_path / "p2.jsonl", "-l", "Humor,Career",
        "--report", tmp_path / "two.json", check=True,
    )  # fmt: skip
    report, top = orjson.loads((tmp_path / "two.json").read_bytes()), [p["labels"][0] for p in cut]
    outside = sorted(set(gold) - set(two))
    m = report["metrics"]
    assert report["candidate_labels"] == ["Humor", "Career"]
    assert report["warnings"] == [f"gold labels that are not candidate labels count as errors: {', '.join(outside)} "
                                  "(map them to candidate labels with a label map)"]  # fmt: skip
    assert m["accuracy"] == pytest.approx(accuracy_score(gold, top))
    assert m["accuracy"] <= sum(g in two for g in gold) / len(gold)
    assert m["macro"]["f1"] == pytest.approx(f1_score(gold, top, average="macro", zero_division=0))
    rows_ = {row["label"]: row for row in m["per_label"]}
    assert list(rows_) == ["Humor", "Career", *outside]
    assert all(rows_[label]["predicted"] == 0 and rows_[label]["recall"] == 0 for label in outside)
    table = run.stdout.decode()
    assert "(single-label, 2 candidate labels)" in table and f"{100 * m['accuracy']:.1f}%" in table
    assert "top-3 accuracy" not in table  # always 100% with 2 candidates
    assert f"zstc: warning: {report['warnings'][0]}" in run.stderr.decode()


def test_a_folder_as_data_is_named_as_a_folder(tmp_path):
    result = invoke_zstc("evaluate", tmp_path, "--label-field", FIELD, "--model", "never-loaded")
    assert result.returncode == 2 and result.stderr.decode() == f"zstc: error: {tmp_path}: a folder, not a file\n"
