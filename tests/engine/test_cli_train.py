"""``python -m engine train`` and ``embed`` on a small generated file: exit codes, JSON keys, run folder, row order."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine import runs
from engine.cli import main
from engine.embed import embed
from engine.ingest import load
from engine.schema import ColumnType

TINY_SETS = ["--set", "epochs=1", "--set", "d_model=16", "--set", "n_blocks=1", "--set", "batch_size=256",
             "--set", "cpu_threads=1"]
TRAIN_KEYS = {"run_dir", "status", "epochs_done", "best_val_loss", "records_per_s", "device"}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(small_events_file, tmp_path_factory):
    """One CLI training run shared by the tests below (module scope: train once)."""
    runs_dir = tmp_path_factory.mktemp("cli-runs")
    code = main(["train", str(small_events_file), *TINY_SETS, "--exclude-outcome", "--label", "_label.scenario",
                 "--runs-dir", str(runs_dir), "--name", "cli run", "--json"])
    return code, runs_dir


def test_train_writes_a_run_folder_and_the_json_contract(trained, capsys):
    code, runs_dir = trained
    assert code == 0
    (info,) = runs.list_runs(runs_dir)
    assert info.status == "done" and info.name == "cli run" and info.epochs_done == 1
    assert {"config.json", "schema.json", "encoder.json", "metrics.jsonl", "checkpoint_last.pt", "checkpoint_best.pt",
            "status.json"} <= {p.name for p in info.run_dir.iterdir()}
    assert info.config.model.d_model == 16 and info.config.train.epochs == 1
    loaded = runs.load_run(info.run_dir)
    assert loaded.schema.exclude_outcome and loaded.schema["_label.scenario"].type == ColumnType.LABEL
    assert "status_id" not in loaded.encoder.input_columns_ and "_label.scenario" not in loaded.encoder.input_columns_


def test_train_json_output_has_the_contract_keys(small_events_file, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", str(small_events_file), *TINY_SETS, "--set", "objective=contrastive",
                           "--runs-dir", str(tmp_path), "--json")
    assert code == 0
    doc = json.loads(out)
    assert TRAIN_KEYS <= set(doc)
    assert doc["status"] == "done" and doc["epochs_done"] == 1 and doc["records_per_s"] > 0
    assert doc["device"].startswith("CPU") and doc["best_val_loss"] > 0
    assert runs.read_status(doc["run_dir"])["status"] == "done"


def test_config_file_and_preset_apply(small_events_file, tmp_path, capsys, trained):
    _, runs_dir = trained
    (info,) = runs.list_runs(runs_dir)
    code, out, _ = run_cli(capsys, "train", str(small_events_file), "--config", str(info.run_dir / "config.json"),
                           "--set", "n_blocks=2", "--runs-dir", str(tmp_path), "--json")
    assert code == 0
    config = runs.run_info(json.loads(out)["run_dir"]).config
    assert config.model.d_model == 16 and config.model.n_blocks == 2


def test_embed_writes_rows_in_the_order_of_the_data(trained, small_events_file, tmp_path, capsys):
    _, runs_dir = trained
    (info,) = runs.list_runs(runs_dir)
    out_path = tmp_path / "emb.npy"
    code, out, _ = run_cli(capsys, "embed", str(info.run_dir), str(small_events_file), "--out", str(out_path), "--json")
    assert code == 0
    doc = json.loads(out)
    assert {"rows", "dim", "out"} <= set(doc) and doc["dim"] == 16 and doc["out"] == str(out_path)
    matrix = np.load(out_path, allow_pickle=False)
    frame, _ = load(small_events_file)
    assert matrix.shape == (doc["rows"], 16) == (len(frame), 16)
    np.testing.assert_allclose(matrix[:50], embed(runs.load_run(info.run_dir), frame.iloc[:50]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["train", "{tmp}/absent.jsonl"], "absent.jsonl"),
    (["train", "{data}", "--set", "epochs"], "expected KEY=VALUE"),
    (["train", "{data}", "--set", "epochs=zero"], "epochs must be a int"),
    (["train", "{data}", "--set", "warp=9"], "unknown config field 'warp'"),
    (["train", "{data}", "--label", "no.such.column"], "no column named 'no.such.column'"),
    (["train", "{data}", "--config", "{tmp}/bad.json"], "not valid JSON"),
    (["train", "{data}", "--schema", "{tmp}/absent-schema.json"], "cannot read schema"),
    (["embed", "{tmp}", "{data}", "--out", "{tmp}/e.npy"], "not a run folder"),
    (["embed", "{tmp}", "{data}", "--out", "{tmp}/e.txt"], "must be a .npy file"),
])
def test_bad_input_exits_2_with_one_line(argv, message, small_events_file, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    argv = [a.format(tmp=tmp_path, data=small_events_file) for a in argv]
    code, out, err = run_cli(capsys, *argv, "--runs-dir", str(tmp_path / "runs")) if argv[0] == "train" else run_cli(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_python_dash_m_engine_train_help_lists_the_options():
    result = subprocess.run([sys.executable, "-m", "engine", "train", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--schema", "--config", "--set", "--label", "--exclude", "--exclude-outcome", "--runs-dir", "--name", "--json"):
        assert option in result.stdout


def test_a_saved_schema_brings_its_augmentation_settings_and_set_wins(small_events_file, tmp_path, capsys):
    from engine.config import AugmentConfig
    from engine.schema import infer_schema

    frame, _ = load(small_events_file)
    schema_path = tmp_path / "schema.json"
    infer_schema(frame).with_augment(AugmentConfig(noise_level=0.05, swap_prob=0.12)).save(schema_path)
    code, out, _ = run_cli(capsys, "train", str(small_events_file), *TINY_SETS, "--schema", str(schema_path),
                           "--set", "swap_prob=0.18", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert code == 0
    run_dir = json.loads(out)["run_dir"]
    used = runs.run_info(run_dir).config.augment
    assert (used.noise_level, used.swap_prob) == (0.05, 0.18)  # previewed noise, --set swap
    saved = runs.load_run(run_dir).schema.augment
    assert (saved.noise_level, saved.swap_prob) == (0.05, 0.18)  # the run's schema says what was used
