from __future__ import annotations

import json

import pytest

from traces import load_azure_csv, load_mooncake_jsonl, load_trace

AZURE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:48.0000000,10,0
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_azure_csv_shifts_to_zero_and_sorts(tmp_path):
    trace = load_trace(write(tmp_path, "t.csv", AZURE))
    assert len(trace) == 3
    assert [r.arrival_s for r in trace.requests] == pytest.approx([0.0, 1.31941, 4.314579])
    assert [(r.prompt_len, r.output_len) for r in trace.requests] == [(374, 44), (10, 0),
                                                                       (396, 109)]
    assert trace.duration_s == pytest.approx(4.314579)
    assert trace.rate == pytest.approx(3 / 4.314579)


@pytest.mark.parametrize("row, field", [
    ("2023-11-16 18:15:46.1,abc,44", "ContextTokens"),
    ("2023-11-16 18:15:46.1,12,-3", "GeneratedTokens"),
    ("yesterday,12,3", "TIMESTAMP"),
])
def test_azure_bad_row_names_line_and_field(tmp_path, row, field):
    path = write(tmp_path, "bad.csv", AZURE + row + "\n")
    with pytest.raises(ValueError, match=rf"line 5: field {field}"):
        load_azure_csv(path)


def test_azure_header_and_short_rows(tmp_path):
    with pytest.raises(ValueError, match="line 1: header lacks column"):
        load_azure_csv(write(tmp_path, "h.csv", "time,ContextTokens,GeneratedTokens\n1,2,3\n"))
    with pytest.raises(ValueError, match="line 2: expected 3 fields"):
        load_azure_csv(write(tmp_path, "s.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n1,2\n"))
    with pytest.raises(ValueError, match="no requests"):
        load_azure_csv(write(tmp_path, "e.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"))


def test_mooncake_jsonl_milliseconds_and_classes(tmp_path):
    lines = [{"timestamp": 3052, "input_length": 7234, "output_length": 794, "hash_ids": [0]},
             {"timestamp": 0, "input_length": 6755, "output_length": 500, "slo_class": "chat"}]
    trace = load_trace(write(tmp_path, "m.jsonl", "\n".join(json.dumps(x) for x in lines)))
    assert [r.arrival_s for r in trace.requests] == [0.0, 3.052]
    assert trace.requests[0].slo_class == "chat"
    assert trace.classes() == ["chat", "default"]


@pytest.mark.parametrize("line, message", [
    ('{"timestamp": 1, "input_length": 5}', "line 2: field output_length: missing"),
    ('{"timestamp": -1, "input_length": 5, "output_length": 1}', "line 2: field timestamp"),
    ('{"timestamp": 1, "input_length": 5.5, "output_length": 1}', "line 2: field input_length"),
    ('{"timestamp": 1, "input_length": true, "output_length": 1}', "line 2: field input_length"),
    ("not json", "line 2: not valid JSON"),
    ("[1, 2]", "line 2: expected a JSON object"),
])
def test_mooncake_bad_line_names_line_and_field(tmp_path, line, message):
    good = '{"timestamp": 0, "input_length": 5, "output_length": 1}'
    with pytest.raises(ValueError, match=message):
        load_mooncake_jsonl(write(tmp_path, "b.jsonl", good + "\n" + line + "\n"))


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        load_trace(write(tmp_path, "t.txt", "x"))
    with pytest.raises(FileNotFoundError):
        load_trace(tmp_path / "nope.csv")
