"""``python -m engine evaluate``: the table, the --json contract, and one-line exit 2 on bad input."""
from __future__ import annotations

import json

import pytest

from engine import cli
from tests.engine.test_explore import CONTRACT_ANOMALY, CONTRACT_METRICS, make_events, train_tiny_run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path, df = make_events(tmp_path_factory.mktemp("cli-evaluate-data"), n_events=800, seed=1)
    run_dir = train_tiny_run(tmp_path_factory.mktemp("cli-evaluate-run"), df)
    return str(run_dir), str(path)


def test_json_output_follows_the_contract(setup, capsys):
    run_dir, data = setup
    assert cli.main(["evaluate", run_dir, data, "--json", "--scorer", "lof", "--checkpoint", "last"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["label"] == "outcome"
    assert CONTRACT_METRICS <= set(doc["scorecard"])
    assert set(doc["baselines"]) == {"raw", "untrained"}
    assert all(CONTRACT_METRICS <= set(card) for card in doc["baselines"].values())
    assert CONTRACT_ANOMALY <= set(doc["anomaly"]) and doc["anomaly"]["scorer"] == "lof"
    assert 0.0 <= doc["anomaly"]["auroc"] <= 1.0 and doc["checkpoint"] == "last"


def test_text_output_shows_the_table_verdict_and_anomalies(setup, capsys):
    run_dir, data = setup
    assert cli.main(["evaluate", run_dir, data, "--label", "_label.scenario", "--anomaly-label", "_label.is_anomaly"]) == 0
    out = capsys.readouterr().out
    for text in ("embeddings", "raw features", "untrained net", "silhouette", "kNN accuracy", "Davies-Bouldin",
                 "stability", "> 0.92", "AUROC", "Isolation Forest, raw features", "label _label.scenario"):
        assert text in out, text
    assert any(light in out for light in (" good", " fair", " poor"))


def test_no_anomaly_label_gives_a_null_anomaly_section(setup, capsys, tmp_path):
    from engine.ingest import load

    run_dir, data = setup
    df, _ = load(data)
    unlabelled = tmp_path / "unlabelled.parquet"
    df.drop(columns=[c for c in df.columns if c.startswith("_label")]).to_parquet(unlabelled)
    assert cli.main(["evaluate", run_dir, str(unlabelled), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["anomaly"] is None


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "{tmp}/no-such-run", "{data}"], "run folder not found"),
    (["evaluate", "{run}", "{data}", "--label", "no_such_column"], "no_such_column"),
    (["evaluate", "{run}", "{data}", "--anomaly-label", "no_such_truth"], "no_such_truth"),
    (["evaluate", "{run}", "{tmp}/missing.parquet"], "missing.parquet"),
])
def test_bad_input_exits_2_with_one_line(setup, capsys, tmp_path, argv, message):
    run_dir, data = setup
    args = [a.format(tmp=tmp_path, data=data, run=run_dir) for a in argv]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
