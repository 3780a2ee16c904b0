"""AppTest: Home's one-click demo lands on the Data page with the report, preview and schema."""
from __future__ import annotations

import json

import pandas as pd

from engine.schema import ColumnType, Schema


def _click(at, label):
    [button] = [b for b in at.button if b.label == label]
    button.click()
    at.run()
    assert not at.exception, at.exception


def test_home_explains_the_tool_and_offers_the_demo(app):
    assert app.title[0].value == "OCSF Embedding Studio"
    assert any(b.label == "Load demo dataset" for b in app.button)
    assert "dataset" not in app.session_state


def test_load_demo_dataset_shows_report_preview_and_schema(app):
    _click(app, "Load demo dataset")
    assert [h.value for h in app.header] == ["Ingest report", "Preview", "Schema"]
    data = app.session_state["dataset"]
    assert data.rows == 3_000
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rows kept"] == "3,000"
    schema: Schema = app.session_state["schema"]
    assert schema["status_id"].outcome_family and schema["status_id"].type == ColumnType.CATEGORICAL
    assert "_label.is_anomaly" in schema.labels
    # The preview shows the first rows; the schema table lists every column of the data, once.
    preview, schema_table = app.dataframe
    assert len(preview.value) == 200
    assert sorted(schema_table.value["column"]) == sorted(data.frame.columns)


def test_outcome_toggle_removes_the_outcome_family_from_inputs(app):
    _click(app, "Load demo dataset")
    assert "status_id" in app.session_state["schema"].categorical
    app.toggle[0].set_value(True)
    app.run()
    schema: Schema = app.session_state["schema"]
    assert schema.exclude_outcome
    assert "status_id" not in schema.categorical
    assert "status_id" in schema  # still there for colouring and evaluation


def test_bad_path_shows_a_clear_error_not_a_traceback(app, tmp_path):
    bad = tmp_path / "garbage.parquet"
    bad.write_bytes(b"\x00\x01not a parquet file at all")
    app.switch_page("pages/data.py")
    app.run()
    app.text_input[0].input(str(bad))
    [submit] = [b for b in app.button if b.label == "Load file"]
    submit.click()
    app.run()
    assert not app.exception
    assert any("garbage.parquet" in e.value for e in app.error)
