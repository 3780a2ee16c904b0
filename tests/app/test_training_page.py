"""AppTest: the Training page starts a real (tiny) run, follows it to the end, lists and compares runs."""
from __future__ import annotations

import json
import time

import pandas as pd

from engine.config import AugmentConfig, RunConfig
from engine.ingest import load
from engine.jobs import TrainingJob
from engine.schema import infer_schema
from engine.train import prepare_data

TINY = {"d_model": 16, "n_blocks": 1, "epochs": 1, "batch_size": 64, "max_rows": 600, "patience": 0}


def _open_training(app):
    [button] = [b for b in app.button if b.label == "Load demo dataset"]
    button.click()
    app.run()
    app.switch_page("pages/training.py")
    app.run()
    assert not app.exception, app.exception


def _finished_run(runs_dir, demo_path, name, **overrides):
    frame, _ = load(demo_path)
    config = RunConfig().with_overrides({**TINY, **overrides})
    data = prepare_data(frame, infer_schema(frame), config, source=str(demo_path))
    job = TrainingJob.create(runs_dir, name, config, data, backend="thread")
    job.start()
    return job.join(timeout=120)


def test_training_asks_for_data_first(app):
    app.switch_page("pages/training.py")
    app.run()
    assert any("Load events on the Data page first" in i.value for i in app.info)


def test_start_a_run_and_follow_it_to_the_end(app, app_env):
    _open_training(app)
    # The strength previewed on the Augmentation page lives in the schema: training must use it.
    app.session_state["schema"] = app.session_state["schema"].with_augment(AugmentConfig(noise_level=0.07))
    [preset] = [r for r in app.radio if r.label == "Preset"]
    preset.set_value("custom")
    app.run()
    [d_model] = [s for s in app.select_slider if s.label == "Embedding size (d_model)"]
    d_model.set_value(32)
    [blocks] = [s for s in app.slider if s.label == "Residual blocks"]
    blocks.set_value(1)
    [rows] = [n for n in app.number_input if n.label.startswith("Rows to train on")]
    rows.set_value(800)
    [epochs] = [n for n in app.number_input if n.label == "Epochs"]
    epochs.set_value(1)
    app.run()
    [start] = [b for b in app.button if b.label == "Start training"]
    start.click()
    app.run()
    assert not app.exception, app.exception
    deadline = time.monotonic() + 180
    while not app.success and not app.error and time.monotonic() < deadline:
        time.sleep(1.0)
        app.run()  # AppTest does not fire run_every timers: rerun by hand
    assert not app.error, [e.value for e in app.error]
    assert any(s.value.startswith("Done: 1 epochs") for s in app.success)
    [run_dir] = list((app_env / "runs").iterdir())
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "done"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["d_model"] == 32 and config["train"]["max_rows"] == 800
    assert config["augment"]["noise_level"] == 0.07
    runs_table = app.dataframe[0].value
    assert list(runs_table["status"]) == ["done"]


def test_compare_two_runs_shows_their_config_difference(app, app_env, small_demo_parquet):
    runs_dir = app_env / "runs"
    first = _finished_run(runs_dir, small_demo_parquet, "narrow", d_model=16)
    second = _finished_run(runs_dir, small_demo_parquet, "wide", d_model=32)
    assert first.status.value == second.status.value == "done"
    _open_training(app)
    runs_table = app.dataframe[0].value
    assert sorted(runs_table["name"]) == ["narrow", "wide"]
    diff: pd.DataFrame = app.dataframe[1].value
    assert list(diff.index) == ["d_model"]
    assert sorted(diff.loc["d_model"].tolist()) == ["16", "32"]


def test_resume_a_stopped_run_from_the_run_list(app, app_env, small_demo_parquet):
    frame, _ = load(small_demo_parquet)
    config = RunConfig().with_overrides({**TINY, "epochs": 4})
    data = prepare_data(frame, infer_schema(frame), config, source=str(small_demo_parquet))
    job = TrainingJob.create(app_env / "runs", "to resume", config, data, backend="thread")
    job.start()
    deadline = time.monotonic() + 60
    while job.snapshot().epoch < 1 and time.monotonic() < deadline:  # stop once the first epoch is saved
        time.sleep(0.05)
    job.request_stop()
    assert job.join(timeout=60).status.value == "stopped"

    _open_training(app)
    [pick] = [s for s in app.selectbox if s.label == "Resume a stopped run"]
    assert pick.value == job.run_id
    [resume] = [b for b in app.button if b.label == "Resume"]
    resume.click()
    app.run()
    deadline = time.monotonic() + 180
    while not app.success and not app.error and time.monotonic() < deadline:
        time.sleep(1.0)
        app.run()
    assert any(s.value.startswith("Done: 4 epochs") for s in app.success), [e.value for e in app.error]
    status = json.loads((job.run_dir / "status.json").read_text())
    assert status["status"] == "done" and status["epochs_done"] == 4
