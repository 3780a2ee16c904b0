"""The training loop: smoke, stop within one batch, exact resume, checkpoints, NaN guard, device and threads.

Tiny data and models (d_model 16, a few steps) with one CPU thread, so the module runs in seconds
and results are bitwise reproducible. The helpers here are shared by the other training tests.
"""
from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from engine import runs
from engine import train as train_module
from engine.config import RunConfig
from engine.device import ThreadTuner, autocast_dtype, select_device, thread_candidates
from engine.errors import UserError
from engine.schema import ColumnSpec, ColumnType, Policy, Role, Schema
from engine.train import EpochRecord, RunStarted, StepRecord, TrainData, prepare_data, record_from_json, train, warmup_cosine

# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------
N_ROWS = 640
TINY = {"d_model": 16, "n_blocks": 1, "epochs": 2, "batch_size": 64, "cpu_threads": 1, "device": "cpu",
        "patience": 0, "warmup_frac": 0.1, "dropout": 0.1}


def tiny_frame(n_rows: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users = [f"user{i}" for i in range(12)]
    return pd.DataFrame({
        "duration": rng.lognormal(3.0, 1.0, n_rows),
        "traffic.bytes_out": rng.integers(100, 10_000, n_rows).astype(float),
        "user.name": rng.choice(users, n_rows),
        "status_id": rng.choice([1, 1, 1, 2], n_rows),
        "http_request.http_method": rng.choice(["GET", "POST", "PUT"], n_rows),
        "time": 1_700_000_000_000 + np.sort(rng.integers(0, 7 * 86_400_000, n_rows)),
        "_label.is_anomaly": rng.random(n_rows) < 0.05,
    })


def _spec(name: str, type: ColumnType, role: Role, policy: Policy, **flags) -> ColumnSpec:
    return ColumnSpec(name=name, type=type, role=role, policy=policy, reason="test fixture", **flags)


def tiny_schema() -> Schema:
    return Schema(columns=(
        _spec("duration", ColumnType.NUMERIC, Role.MEASURE, Policy.JITTER, heavy_tailed=True),
        _spec("traffic.bytes_out", ColumnType.NUMERIC, Role.MEASURE, Policy.JITTER),
        _spec("user.name", ColumnType.CATEGORICAL, Role.IDENTITY, Policy.PROTECTED, protected=True),
        _spec("status_id", ColumnType.CATEGORICAL, Role.OUTCOME, Policy.PROTECTED, protected=True, outcome_family=True),
        _spec("http_request.http_method", ColumnType.CATEGORICAL, Role.CONTEXT, Policy.SWAP),
        _spec("time", ColumnType.TIMESTAMP, Role.TIME, Policy.TIME_JITTER),
        _spec("_label.is_anomaly", ColumnType.LABEL, Role.LABEL, Policy.NONE),
    ))


def tiny_config(**overrides) -> RunConfig:
    return RunConfig(name="tiny").with_overrides({**TINY, **overrides})


def tiny_data(config: RunConfig | None = None, n_rows: int = N_ROWS) -> TrainData:
    return prepare_data(tiny_frame(n_rows), tiny_schema(), config or tiny_config(), source="tiny")


def new_run(tmp_path, config: RunConfig, data: TrainData, name: str = "tiny"):
    return runs.create_run(tmp_path / "runs", name, config, data.schema, data.encoder, source=data.source, n_rows=data.n_rows)


def steps_of(history) -> list[StepRecord]:
    return [r for r in history if isinstance(r, StepRecord)]


def epochs_of(history) -> list[EpochRecord]:
    return [r for r in history if isinstance(r, EpochRecord)]


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["contrastive", "mfp", "both"])
def test_two_step_cpu_training_reports_finite_losses(objective):
    # 160 rows -> 128 train rows -> 2 steps of 64.
    config = tiny_config(objective=objective, epochs=1)
    received = []
    result = train(config, tiny_data(config, n_rows=160), on_step=received.append)
    assert result.status == "done" and result.global_step == 2 and result.epochs_done == 1
    assert isinstance(received[0], RunStarted) and received[0].n_steps == 2 and received[0].n_train == 128
    steps = steps_of(received)
    assert [s.step for s in steps] == [1, 2]
    assert all(math.isfinite(s.loss) and s.lr > 0 and s.records_per_s > 0 for s in steps)
    expected_parts = {"contrastive": {"contrastive"}, "mfp": {"mfp", "mfp_cat", "mfp_num"},
                      "both": {"contrastive", "mfp", "mfp_cat", "mfp_num"}}[objective]
    assert set(steps[0].parts) == expected_parts
    (epoch,) = epochs_of(received)
    assert math.isfinite(epoch.val_loss) and epoch.best
    assert {"std_mean", "std_min", "pos_cosine", "neg_cosine", "cosine_gap"} <= set(epoch.collapse)
    assert list(result.history) == received


def test_loss_falls_over_a_short_run():
    config = tiny_config(epochs=4, lr=3e-3)
    result = train(config, tiny_data(config))
    epochs = epochs_of(result.history)
    assert epochs[-1].train_loss < epochs[0].train_loss
    assert result.best_val_loss == min(e.val_loss for e in epochs)


def test_schedule_warms_up_then_decays():
    factor = warmup_cosine(total_steps=100, warmup_steps=10)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(55) == pytest.approx(0.5) and factor(99) < 0.01


def test_lr_records_follow_warmup_then_cosine():
    config = tiny_config(epochs=3, warmup_frac=0.2)
    lrs = [s.lr for s in steps_of(train(config, tiny_data(config)).history)]
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))


def test_training_is_reproducible_for_a_seed():
    config = tiny_config(epochs=1)
    first = [s.loss for s in steps_of(train(config, tiny_data(config)).history)]
    again = [s.loss for s in steps_of(train(config, tiny_data(config)).history)]
    other = [s.loss for s in steps_of(train(config.with_overrides({"seed": 1}), tiny_data(config)).history)]
    assert first == again
    assert first != other


def test_batch_larger_than_the_data_is_a_user_error():
    config = tiny_config(batch_size=1024)
    with pytest.raises(UserError, match="batch_size=1024"):
        train(config, tiny_data(config, n_rows=200))


def test_max_rows_samples_before_encoding():
    config = tiny_config(max_rows=300, epochs=1)
    data = tiny_data(config)
    assert data.n_rows == 300
    started = train(config, data).history[0]
    assert started.n_train + started.n_val == 300


def test_early_stopping_ends_a_run_whose_validation_loss_stops_improving(monkeypatch):
    val_losses = iter([2.0, 1.5, 1.6, 1.7, 1.4, 1.3])  # best at epoch 2, then 2 bad epochs
    monkeypatch.setattr(train_module._Trainer, "validate", lambda self: (next(val_losses), {}, {}))
    config = tiny_config(epochs=6, patience=2)
    result = train(config, tiny_data(config))
    assert result.early_stopped and result.status == "done"
    assert result.epochs_done == 4 and result.best_epoch == 2 and result.best_val_loss == 1.5
    assert [e.best for e in epochs_of(result.history)] == [True, True, False, False]


# ---------------------------------------------------------------------------------------------
# Stop and resume
# ---------------------------------------------------------------------------------------------
def test_stop_set_from_on_step_ends_training_within_one_batch(tmp_path):
    config = tiny_config(epochs=3)
    data = tiny_data(config)
    run_dir = new_run(tmp_path, config, data)
    stop = threading.Event()

    def on_step(record):
        if isinstance(record, StepRecord) and record.step == 3:
            stop.set()

    result = train(config, data, run_dir=run_dir, on_step=on_step, stop=stop)
    assert result.status == "stopped"
    assert steps_of(result.history)[-1].step == 3 and result.global_step == 3
    saved = runs.load_checkpoint(run_dir / runs.CHECKPOINT_LAST)
    assert (saved["global_step"], saved["batch_in_epoch"], saved["epochs_done"]) == (3, 3, 0)
    assert runs.read_status(run_dir)["status"] == "stopped"


@pytest.mark.parametrize("stop_after_step", [8, 3, 11], ids=["epoch-boundary", "mid-epoch", "mid-second-epoch"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, stop_after_step):
    # 640 rows -> 512 train rows -> 8 steps per epoch; dropout on, so the generator states matter.
    config = tiny_config(epochs=2)
    data = tiny_data(config)
    straight = train(config, data, run_dir=new_run(tmp_path, config, data, "straight"))

    run_dir = new_run(tmp_path, config, data, "resumed")
    stop = threading.Event()
    first = train(config, data, run_dir=run_dir, stop=stop,
                  on_step=lambda r: stop.set() if isinstance(r, StepRecord) and r.step == stop_after_step else None)
    assert first.status == "stopped" and first.global_step == stop_after_step
    second = train(config, data, run_dir=run_dir, resume_from=run_dir)

    assert second.status == "done"
    assert [s.loss for s in steps_of(first.history) + steps_of(second.history)] == [s.loss for s in steps_of(straight.history)]
    assert [s.step for s in steps_of(second.history)][0] == stop_after_step + 1
    resumed_epochs = epochs_of(first.history) + epochs_of(second.history)
    assert [e.val_loss for e in resumed_epochs] == [e.val_loss for e in epochs_of(straight.history)]
    # metrics.jsonl holds each step once, as if the run had never stopped.
    logged = [r["step"] for r in runs.read_metrics(run_dir) if r["kind"] == "step"]
    assert logged == list(range(1, 17))


def test_resume_refuses_a_different_model(tmp_path):
    config = tiny_config(epochs=1)
    data = tiny_data(config)
    run_dir = new_run(tmp_path, config, data)
    train(config, data, run_dir=run_dir)
    with pytest.raises(UserError, match="different configuration"):
        train(config.with_overrides({"d_model": 32}), data, run_dir=run_dir, resume_from=run_dir)


def test_resume_may_extend_the_number_of_epochs(tmp_path):
    config = tiny_config(epochs=1)
    data = tiny_data(config)
    run_dir = new_run(tmp_path, config, data)
    train(config, data, run_dir=run_dir)
    result = train(config.with_overrides({"epochs": 2}), data, run_dir=run_dir, resume_from=run_dir)
    assert result.epochs_done == 2 and [e.epoch for e in epochs_of(result.history)] == [2]


# ---------------------------------------------------------------------------------------------
# Checkpoints and failures
# ---------------------------------------------------------------------------------------------
def test_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    config = tiny_config(epochs=2)
    data = tiny_data(config)
    run_dir = new_run(tmp_path, config, data)
    real_save = runs.save_checkpoint
    calls = {"n": 0}

    def crash_mid_write(path, state):
        # epoch 1 writes last + best (2 calls); the 3rd call (epoch 2) dies half-way through the file.
        calls["n"] += 1
        if calls["n"] < 3:
            return real_save(path, state)
        import engine.atomic as atomic

        def half_then_fail(fd, mode):
            handle = open(fd, mode, closefd=True)
            original_write = handle.write

            def write(blob):
                original_write(blob[: len(blob) // 2])
                raise OSError(28, "No space left on device")

            handle.write = write
            return handle

        monkeypatch.setattr(atomic.os, "fdopen", half_then_fail)
        try:
            return real_save(path, state)
        finally:
            monkeypatch.undo()

    monkeypatch.setattr(runs, "save_checkpoint", crash_mid_write)
    with pytest.raises(OSError, match="No space"):
        train(config, data, run_dir=run_dir)
    saved = runs.load_checkpoint(run_dir / runs.CHECKPOINT_LAST)  # still the complete epoch-1 file
    assert saved["epochs_done"] == 1
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    status = runs.read_status(run_dir)
    assert status["status"] == "failed" and "No space" in status["error"]


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = tiny_config(epochs=3)
    data = tiny_data(config)
    run_dir = new_run(tmp_path, config, data)
    real_loss = train_module.combined_loss

    def poisoned(*args, **kwargs):
        loss, figures = real_loss(*args, **kwargs)
        if torch.is_grad_enabled() and poisoned.training_calls >= 10:  # step 11: in epoch 2
            loss = loss * float("nan")
            figures = {**figures, "loss": float("nan")}
        poisoned.training_calls += torch.is_grad_enabled()
        return loss, figures

    poisoned.training_calls = 0
    monkeypatch.setattr(train_module, "combined_loss", poisoned)
    result = train(config, data, run_dir=run_dir)
    assert result.status == "failed" and "nan" in result.error and "step 11" in result.error
    assert result.epochs_done == 1 and result.global_step == 10
    status = runs.read_status(run_dir)
    assert status["status"] == "failed" and "last good checkpoint" in status["error"]
    saved = runs.load_checkpoint(run_dir / runs.CHECKPOINT_LAST)
    assert saved["epochs_done"] == 1
    assert all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())
    assert runs.load_run(run_dir, "last").epochs_done == 1


def test_checkpoint_holds_only_tensors_and_plain_types(tmp_path):
    config = tiny_config(epochs=1)
    data = tiny_data(config)
    run_dir = new_run(tmp_path, config, data)
    train(config, data, run_dir=run_dir)
    state = torch.load(run_dir / runs.CHECKPOINT_BEST, weights_only=True)  # would raise on any pickled object
    assert RunConfig.from_json(json.loads(state["config"])) == config
    assert isinstance(state["rng"]["augment"], torch.Tensor)


def test_an_exception_marks_the_run_failed_and_propagates(tmp_path, monkeypatch):
    config = tiny_config(epochs=1)
    data = tiny_data(config)
    run_dir = new_run(tmp_path, config, data)

    def broken(*args, **kwargs):
        raise RuntimeError("boom in the objective")

    monkeypatch.setattr(train_module, "combined_loss", broken)
    with pytest.raises(RuntimeError, match="boom"):
        train(config, data, run_dir=run_dir)
    assert runs.read_status(run_dir)["status"] == "failed"
    assert "boom in the objective" in runs.read_status(run_dir)["error"]


def test_records_round_trip_through_json():
    config = tiny_config(epochs=1)
    history = train(config, tiny_data(config)).history
    for record in history:
        assert record_from_json(json.loads(json.dumps(record.to_json()))) == record


# ---------------------------------------------------------------------------------------------
# Device, precision, threads
# ---------------------------------------------------------------------------------------------
def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            select_device("cuda")


def test_precision_choice():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") == torch.bfloat16
    assert autocast_dtype(cpu, "auto") in (None, torch.bfloat16)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_both_precisions_train_on_cpu(precision):
    config = tiny_config(epochs=1, precision=precision)
    result = train(config, tiny_data(config))
    assert result.history[0].precision == precision
    assert all(math.isfinite(s.loss) for s in steps_of(result.history))


def test_thread_tuner_keeps_the_fastest_count_and_restores():
    before = torch.get_num_threads()

    def probe():  # pretend one thread is the fast setting (as on a busy machine)
        time.sleep(0.001 if torch.get_num_threads() == 1 else 0.05)

    tuner = ThreadTuner(probe, max_threads=2, interval_s=3600)
    assert tuner.candidates == (2, 1)
    assert tuner.maybe_tune() == 1 and torch.get_num_threads() == 1
    tuner.restore()
    assert torch.get_num_threads() == before
    assert thread_candidates(8) == (8, 4, 1)


def test_training_restores_the_callers_thread_count():
    before = torch.get_num_threads()
    config = tiny_config(epochs=1, cpu_threads=1)
    train(config, tiny_data(config))
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------------------------------------
# Step helpers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm, grad_scale", [(0.5, 1.0), (0.5, 1e-3), (1e9, 1.0), (math.inf, 10.0)],
                         ids=["clipped", "under-the-limit", "huge-limit", "no-limit"])
def test_clip_gradients_matches_torch_clip_grad_norm_bit_for_bit(max_norm, grad_scale):
    def model_with_gradients() -> torch.nn.Module:
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4), torch.nn.Linear(4, 2, bias=False))
        g = torch.Generator().manual_seed(1)
        for parameter in module.parameters():
            parameter.grad = torch.randn(parameter.shape, generator=g) * grad_scale
        module[1].bias.grad = None  # a parameter without a gradient is skipped, as torch does
        return module

    ours, theirs = model_with_gradients(), model_with_gradients()
    norm = train_module.clip_gradients(ours.parameters(), max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm)
    assert isinstance(norm, float) and norm == expected.item()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert (a.grad is None) == (b.grad is None)
        assert a.grad is None or torch.equal(a.grad, b.grad)
    if max_norm == 0.5 and grad_scale == 1.0:  # this case really clips
        clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ours.parameters() if p.grad is not None]))
        assert clipped.item() == pytest.approx(0.5, rel=1e-4)


def test_clip_gradients_of_no_gradients_is_zero():
    assert train_module.clip_gradients(torch.nn.Linear(2, 2).parameters(), 1.0) == 0.0


def test_freed_memory_is_kept_for_reuse_where_glibc_allows_it():
    import platform

    applied = train_module.keep_freed_memory_for_reuse()
    assert applied is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
