"""``python -m engine inspect``: exit codes, the human report and the --json document."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"


@pytest.fixture()
def events_with_a_bad_line(tmp_path) -> Path:
    lines = (FIXTURES / "auth_network.jsonl").read_text().splitlines()
    lines.insert(2, '{"class_uid": 3002, "user": {"name": ')  # line 3: truncated
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_json(capsys, *args: str) -> dict:
    assert cli.main(["inspect", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_document_has_the_contract_keys(capsys, events_with_a_bad_line):
    doc = run_json(capsys, str(events_with_a_bad_line))
    assert (doc["rows_read"], doc["rows_kept"], doc["rows_rejected"]) == (7, 6, 1)
    assert doc["problems"] == [{"line": 3, "reason": doc["problems"][0]["reason"]}]
    assert doc["problems"][0]["reason"].startswith("truncated JSON")
    names = [c["name"] for c in doc["columns"]]
    assert len(names) == len(set(names)) == doc["n_columns"]
    for column in doc["columns"]:
        assert {"name", "type", "role", "augment", "reason"} <= set(column)
    by_name = {c["name"]: c for c in doc["columns"]}
    assert by_name["status_id"]["augment"] == "protected"
    assert by_name["src_endpoint.ip"]["type"] in ("categorical", "ignore")
    assert by_name["observables.count"]["type"] in ("numeric", "ignore", "categorical")


def test_exclude_outcome_keeps_the_outcome_out_of_the_inputs(capsys):
    path = str(FIXTURES / "api_flat_underscored.csv")
    plain = {c["name"]: c for c in run_json(capsys, path)["columns"]}
    excluded_doc = run_json(capsys, path, "--exclude-outcome")
    excluded = {c["name"]: c for c in excluded_doc["columns"]}
    assert excluded_doc["exclude_outcome"] is True
    for outcome in ("status_id", "http_response.code"):
        assert plain[outcome]["input"] is True and excluded[outcome]["input"] is False
        assert excluded[outcome]["outcome_family"] is True  # still typed: it colours and scores
    assert plain["bytes_in"]["input"] is excluded["bytes_in"]["input"] is True
    assert [c["name"] for c in excluded_doc["columns"]] == list(plain)


def test_human_report_lists_counts_problems_and_columns(capsys, events_with_a_bad_line):
    assert cli.main(["inspect", str(events_with_a_bad_line)]) == 0
    out = capsys.readouterr().out
    assert "7 rows read, 6 kept, 1 rejected" in out
    assert "line 3: truncated JSON" in out
    assert "src_endpoint.ip" in out and "augment" in out and "reason" in out


@pytest.mark.parametrize("filename, content, expected", [
    ("noise.jsonl", bytes(range(256)) * 8, "binary"),
    ("empty.csv", b"", "empty"),
    ("events.xml", b"<events/>", "unknown file type"),
])
def test_bad_input_exits_2_with_one_line_naming_the_file(tmp_path, capsys, filename, content, expected):
    path = tmp_path / filename
    path.write_bytes(content)
    assert cli.main(["inspect", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and filename in lines[0] and expected in lines[0]


def test_missing_file_exits_2(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "absent.parquet")]) == 2
    assert "absent.parquet: file not found" in capsys.readouterr().err
