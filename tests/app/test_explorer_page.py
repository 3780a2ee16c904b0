"""AppTest: the Explorer shows a map at once, then the scorecard beside its baselines, and anomaly scores."""
from __future__ import annotations

import time

from engine.config import RunConfig
from engine.ingest import load
from engine.jobs import TrainingJob
from engine.schema import infer_schema
from engine.train import prepare_data

TINY = {"d_model": 16, "n_blocks": 1, "epochs": 1, "batch_size": 64, "patience": 0}


def _tiny_run(runs_dir, demo_path):
    frame, _ = load(demo_path)
    config = RunConfig().with_overrides(TINY)
    data = prepare_data(frame, infer_schema(frame, exclude_outcome=True), config, source=str(demo_path))
    job = TrainingJob.create(runs_dir, "tiny", config, data, backend="thread")
    job.start()
    assert job.join(timeout=120).status.value == "done"


def _wait_for(app, predicate, seconds=180):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(1.0)
        app.run()  # AppTest does not fire run_every timers
    assert not app.exception, app.exception
    return predicate()


def test_explorer_asks_for_a_run_first(app):
    app.switch_page("pages/explorer.py")
    app.run()
    assert any("train a model" in i.value for i in app.info)


def test_map_scorecard_and_anomalies(app, app_env, small_demo_parquet):
    _tiny_run(app_env / "runs", small_demo_parquet)
    [button] = [b for b in app.button if b.label == "Load demo dataset"]
    button.click()
    app.run()
    app.switch_page("pages/explorer.py")
    app.run()
    assert not app.exception, app.exception
    captions = [c.value for c in app.caption]
    assert any("3,000 of 3,000 events shown" in c for c in captions)  # a picture at once (PCA), every point
    assert _wait_for(app, lambda: any("Threshold" in d.value.columns for d in app.dataframe))
    [scorecard] = [d.value for d in app.dataframe if "Threshold" in d.value.columns]
    assert list(scorecard.columns) == ["Trained model", "Raw encoded features", "Untrained network", "Threshold"]
    value, light = scorecard.loc["Stability (5% noise)", "Trained model"].split(" · ")
    assert 0.0 <= float(value) <= 1.0 and light in ("good", "fair", "poor")
    verdict = [m.value for m in app.markdown if "Success" in m.value]
    assert verdict, "a plain sentence says whether success and failure separate"
    metrics = {m.label: m.value for m in app.metric}
    assert "AUROC, Isolation Forest on raw features" in metrics  # the demo has _label.is_anomaly

    [colour] = [s for s in app.selectbox if s.label == "Colour by"]
    colour.set_value("anomaly score")
    app.run()
    assert _wait_for(app, lambda: any(s.value == "Most anomalous events" for s in app.subheader))
    top = [d.value for d in app.dataframe if "anomaly_score" in d.value.columns][0]
    assert top["anomaly_score"].is_monotonic_decreasing and len(top) > 0
