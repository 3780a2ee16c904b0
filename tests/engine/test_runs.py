"""Run folders: creation, status, listing, metrics, safe checkpoint loading, loading for inference."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from engine import runs
from engine.errors import UserError
from engine.features import FeatureEncoder
from engine.model import TabularResNet
from engine.schema import Schema
from engine.train import train
from tests.engine.test_train import new_run, tiny_config, tiny_data

RUN_FILES = {"config.json", "schema.json", "encoder.json", "metrics.jsonl", "checkpoint_last.pt", "checkpoint_best.pt", "status.json"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("run")
    config = tiny_config(epochs=2)
    data = tiny_data(config)
    run_dir = new_run(tmp_path, config, data, "Trained: run #1")
    result = train(config, data, run_dir=run_dir)
    return run_dir, config, data, result


class Unpicklable:
    """A custom class: weights_only loading must refuse it."""

    def __init__(self) -> None:
        self.payload = "anything"


def test_run_folder_has_every_file_and_a_complete_status(trained_run):
    run_dir, config, data, result = trained_run
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    assert run_dir.name.endswith("-trained-run-1")
    status = runs.read_status(run_dir)
    assert status["status"] == "done" and status["epochs_done"] == 2 and status["error"] is None
    assert status["best_val_loss"] == pytest.approx(result.best_val_loss)
    assert status["records_per_s"] > 0 and status["device"].startswith("CPU")
    assert status["source"] == "tiny" and status["n_rows"] == data.n_rows
    assert status["started"] and status["finished"]
    assert Schema.load(run_dir / "schema.json") == data.schema
    assert FeatureEncoder.from_json(json.loads((run_dir / "encoder.json").read_text())).to_json() == data.encoder.to_json()
    kinds = [r["kind"] for r in runs.read_metrics(run_dir)]
    assert kinds[0] == "start" and kinds.count("epoch") == 2 and kinds.count("step") == result.global_step


def test_create_run_gives_unique_folders(tmp_path):
    config = tiny_config()
    data = tiny_data(config, n_rows=200)
    first = runs.create_run(tmp_path, "same name", config, data.schema, data.encoder)
    second = runs.create_run(tmp_path, "same name", config, data.schema, data.encoder)
    assert first != second and first.parent == second.parent == tmp_path
    assert runs.read_status(first)["status"] == "created"
    assert runs.slugify("  Ünïcode / ../Name!! ") == "n-code-name"
    assert runs.slugify("///") == "run"


def test_list_runs_newest_first_with_status(tmp_path, trained_run):
    assert runs.list_runs(tmp_path / "absent") == []
    run_dir, config, *_ = trained_run
    infos = runs.list_runs(run_dir.parent)
    assert run_dir.name in [i.run_id for i in infos]
    info = next(i for i in infos if i.run_id == run_dir.name)
    assert info.status == "done" and info.config == config and info.epochs_done == 2 and info.has_checkpoint
    assert [i.run_id for i in infos] == sorted((i.run_id for i in infos), reverse=True)
    (run_dir.parent / "not-a-run").mkdir(exist_ok=True)
    assert "not-a-run" not in [i.run_id for i in runs.list_runs(run_dir.parent)]


def test_status_of_a_run_whose_process_died_is_interrupted(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    runs.write_status(run_dir, status="running", pid=int(dead.stdout))
    assert runs.effective_status(runs.read_status(run_dir)) == "interrupted"
    runs.write_status(run_dir, pid=os.getpid())
    assert runs.effective_status(runs.read_status(run_dir)) == "running"


def test_write_status_merges_and_survives_a_corrupt_file(tmp_path):
    runs.write_status(tmp_path, status="running", epochs_done=1)
    runs.write_status(tmp_path, epochs_done=2)
    assert runs.read_status(tmp_path)["status"] == "running" and runs.read_status(tmp_path)["epochs_done"] == 2
    (tmp_path / "status.json").write_text('{"status": "runn')
    assert runs.read_status(tmp_path) == {"status": "unknown"}


def test_read_metrics_skips_a_truncated_last_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "step", "step": 1}\n{"kind": "step", "step": 2}\n{"kind": "st')
    assert [r["step"] for r in runs.read_metrics(tmp_path)] == [1, 2]
    assert runs.read_metrics(tmp_path / "nowhere") == []


def test_metrics_up_to_keeps_what_a_checkpoint_saw():
    records = [{"kind": "start"}, {"kind": "step", "step": 1}, {"kind": "step", "step": 2}, {"kind": "epoch", "epoch": 1, "step": 2},
               {"kind": "step", "step": 3}, {"kind": "start"}]
    kept = runs.metrics_up_to(records, global_step=2, epochs_done=1)
    assert kept == [records[0], records[1], records[2], records[3], records[5]]


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path, trained_run):
    run_dir, *_ = trained_run
    state = runs.load_checkpoint(run_dir / runs.CHECKPOINT_BEST)
    state["extra"] = Unpicklable()
    evil = tmp_path / "evil.pt"
    torch.save(state, evil)
    with pytest.raises(UserError, match="pickled object"):
        runs.load_checkpoint(evil)


def test_load_run_refuses_a_run_whose_checkpoint_was_replaced_by_a_pickle(tmp_path, trained_run):
    run_dir, *_ = trained_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "schema.json", "encoder.json", "status.json"):
        (copy / name).write_bytes((run_dir / name).read_bytes())
    torch.save({"format": 1, "model": Unpicklable()}, copy / runs.CHECKPOINT_BEST)
    with pytest.raises(runs.CheckpointError, match="refused"):
        runs.load_run(copy)


def test_corrupt_or_foreign_checkpoints_are_refused_in_one_line(tmp_path, trained_run):
    run_dir, *_ = trained_run
    blob = (run_dir / runs.CHECKPOINT_BEST).read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(runs.CheckpointError, match="corrupt") as caught:
        runs.load_checkpoint(truncated)
    assert "\n" not in str(caught.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(runs.CheckpointError, match="not a checkpoint of this tool"):
        runs.load_checkpoint(foreign)
    with pytest.raises(runs.CheckpointError, match="not found"):
        runs.load_checkpoint(tmp_path / "absent.pt")


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    runs.save_checkpoint(path, {"value": torch.ones(3)})

    def crash(src, dst):
        raise OSError("power cut before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        runs.save_checkpoint(path, {"value": torch.zeros(3)})
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_load_run_gives_an_eval_mode_model_and_everything_around_it(trained_run):
    run_dir, config, data, result = trained_run
    loaded = runs.load_run(run_dir)
    assert isinstance(loaded.model, TabularResNet) and not loaded.model.training
    assert loaded.config == config and loaded.schema == data.schema
    assert loaded.checkpoint == "best" and loaded.epochs_done == result.best_epoch
    assert loaded.status["status"] == "done" and len(loaded.metrics) > 0
    assert runs.load_run(run_dir, "last").epochs_done == 2


def test_load_run_falls_back_to_last_before_a_best_exists(tmp_path, trained_run):
    run_dir, *_ = trained_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "schema.json", "encoder.json", runs.CHECKPOINT_LAST):
        (copy / name).write_bytes((run_dir / name).read_bytes())
    assert runs.load_run(copy, "best").checkpoint == "last"


def test_load_run_bad_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        runs.load_run(tmp_path / "nope")
    with pytest.raises(UserError, match="not a run folder"):
        runs.load_run(tmp_path)
    with pytest.raises(UserError, match="checkpoint must be one of"):
        runs.checkpoint_path(tmp_path, "newest")


def test_a_checkpoint_of_an_older_format_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": 1, "model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(runs.CheckpointError, match="format 1 is from another version"):
        runs.load_checkpoint(path)
