import pytest

from zstc_cli.errors import RecordError
from zstc_cli.pipeline import iter_records
from zstc_cli.records import RecordDefaults, check_template, parse_line
from zstc_cli.results import result_line, result_object

DEFAULTS = RecordDefaults()


def parse(raw: bytes, defaults=DEFAULTS, line=1):
    return parse_line(raw, line, defaults)


def test_card_shape():
    record = parse(b'{"text": "hi", "categories": ["a", "b"], "multi_label": true}')
    assert (record.text, record.labels, record.multi_label) == ("hi", ("a", "b"), True)


def test_hosted_endpoint_shape():
    raw = b'{"inputs": "hi", "parameters": {"candidate_labels": ["a"], "multi_label": true, "hypothesis_template": "It is {}."}}'
    record = parse(raw)
    assert (record.text, record.labels, record.multi_label, record.template) == ("hi", ("a",), True, "It is {}.")
    assert record.hypotheses == ["It is a."]


@pytest.mark.parametrize(
    "raw",
    [b'{"sequence": "hi", "candidate_labels": "a, b ,,c"}', b'{"inputs": "hi", "categories": "a,b,c"}'],
)
def test_aliases_and_comma_strings(raw):
    assert parse(raw).labels == ("a", "b", "c")


def test_defaults_and_custom_fields():
    defaults = RecordDefaults(labels=("x", "y"), multi_label=True, template="About {}.", text_field="body")
    record = parse(b'{"body": "hello", "text": "ignored"}', defaults)
    assert (record.text, record.labels, record.multi_label, record.template) == ("hello", ("x", "y"), True, "About {}.")
    defaults = RecordDefaults(labels_field="tags")
    assert parse(b'{"text": "t", "tags": ["p"]}', defaults).labels == ("p",)


def test_bom_on_line_one_and_crlf_are_accepted():
    assert parse(b'\xef\xbb\xbf{"text": "a", "categories": ["x"]}\r').text == "a"


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"text": "a", ', "invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"categories": ["x"]}', "no text field"),
        (b'{"text": "", "categories": ["x"]}', "is empty"),
        (b'{"text": 3, "categories": ["x"]}', "must be a string"),
        (b'{"text": "a"}', "no labels"),
        (b'{"text": "a", "categories": []}', "is empty"),
        (b'{"text": "a", "categories": [1]}', "must be strings"),
        (b'{"text": "a", "categories": ["x", "x"]}', "twice"),
        (b'{"text": "a", "categories": ["x"], "multi_label": "yes"}', "true or false"),
        (b'{"text": "a", "categories": ["x"], "hypothesis_template": "no slot"}', "placeholder"),
        (b'{"text": "\xff\xfe", "categories": ["x"]}', "invalid UTF-8: byte 0xff at offset 10"),
        (b'\xef\xbb\xbf{"text": "a", "categories": ["x"]}', "invalid JSON"),  # a BOM is only allowed on line 1
    ],
)
def test_bad_records_say_what_is_wrong(raw, message):
    with pytest.raises(ValueError, match=message):
        parse(raw, line=2 if raw.startswith(b"\xef") else 1)


def test_template_check():
    assert check_template("Topic: {}") == "Topic: {}"
    for bad in ["none", "{label}", "{0} {1}"]:
        with pytest.raises(ValueError):
            check_template(bad)


def test_iter_records_yields_errors_with_line_numbers(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "a", "categories": ["x"]}\n\n   \nnot json\n{"text": "b", "categories": ["y"]}\n')
    items = list(iter_records(str(path), DEFAULTS))
    assert [type(item).__name__ for item in items] == ["Record", "RecordError", "Record"]
    error = items[1]
    assert isinstance(error, RecordError) and error.line == 4 and str(error).startswith(f"{path}:4: invalid JSON")
    assert items[2].line == 5


def test_result_line_keeps_requested_fields():
    record = parse(b'{"text": "t", "categories": ["x"], "id": 7, "sequence_id": "s"}')
    line = result_line(result_object(record, ["x"], [1.0], keep=("id", "missing")))
    assert line == b'{"sequence":"t","labels":["x"],"scores":[1.0],"id":7}\n'
    everything = result_line(result_object(record, ["x"], [1.0], keep=("*",)))
    assert b'"sequence_id":"s"' in everything and everything.count(b'"sequence"') == 1
