"""TrainingJob and JobRegistry: background training, snapshots, stop, resume, failures, both backends."""
from __future__ import annotations

import dataclasses
import time

import pytest

from engine import runs
from engine.errors import UserError
from engine.jobs import JobRegistry, JobSnapshot, JobStatus, TrainingJob, choose_backend
from engine.train import data_for_run
from tests.engine.test_train import tiny_config, tiny_data, tiny_frame

TIMEOUT_S = 120  # generous: the CPU is shared; a healthy job ends in seconds


def wait_for(job: TrainingJob, condition, timeout: float = TIMEOUT_S) -> JobSnapshot:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = job.snapshot()
        if condition(snap) or snap.done:
            return snap
        time.sleep(0.02)
    raise AssertionError(f"job {job.run_id} did not get there in {timeout} s: {job.snapshot()}")


def long_job(tmp_path, backend: str, epochs: int = 200) -> TrainingJob:
    config = tiny_config(epochs=epochs)
    return TrainingJob.create(tmp_path / "runs", "background", config, tiny_data(config), backend=backend)


def test_thread_job_runs_in_the_background_and_stops_on_request(tmp_path):
    job = long_job(tmp_path, "thread")
    assert job.snapshot().status == JobStatus.PENDING
    job.start()
    early = wait_for(job, lambda s: s.step >= 2)
    later = wait_for(job, lambda s: s.step >= early.step + 3)
    assert later.status == JobStatus.RUNNING and later.step > early.step
    assert later.n_steps == 200 * 8 and later.steps_per_epoch == 8 and later.n_epochs == 200
    assert later.device.startswith("CPU") and later.records_per_s > 0 and later.eta_s > 0
    assert len(early.steps) == early.step  # the older snapshot did not change under our feet
    job.request_stop()
    final = job.join(TIMEOUT_S)
    assert final.status == JobStatus.STOPPED and final.stop_requested and final.done
    assert final.step < final.n_steps and final.eta_s is None
    assert runs.read_status(job.run_dir)["status"] == "stopped"
    assert runs.load_checkpoint(job.run_dir / runs.CHECKPOINT_LAST)["global_step"] == final.step


def test_snapshot_is_immutable(tmp_path):
    config = tiny_config(epochs=2)
    job = TrainingJob.create(tmp_path, "done", config, tiny_data(config), backend="thread").start()
    snap = job.join(TIMEOUT_S)
    assert snap.status == JobStatus.DONE
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.step = 0  # type: ignore[misc]
    assert isinstance(snap.steps, tuple) and isinstance(snap.epochs, tuple)
    with pytest.raises(TypeError):
        snap.epochs[0].parts["contrastive"] = 0.0  # type: ignore[index]
    assert [e.epoch for e in snap.epochs] == [1, 2] and len(snap.steps) == 16
    assert [r.kind for r in snap.history][-1] == "epoch" and len(snap.history) == 18
    assert snap.epoch == 2 and snap.step == snap.n_steps == 16
    assert snap.best_val_loss == min(e.val_loss for e in snap.epochs)
    assert {"std_mean", "cosine_gap"} <= set(snap.collapse)
    assert snap.result["status"] == "done" and snap.records_per_s == snap.result["records_per_s"]


def test_resume_a_stopped_job_continues_the_curve(tmp_path):
    job = long_job(tmp_path, "thread", epochs=2)
    job.request_stop()  # before start: the worker stops before its first step
    job.start()
    stopped = job.join(TIMEOUT_S)
    assert stopped.status == JobStatus.STOPPED and stopped.step == 0

    config = tiny_config(epochs=10)
    partial = TrainingJob.create(tmp_path, "partial", config, tiny_data(config), backend="thread").start()
    mid = wait_for(partial, lambda s: s.step >= 5)
    partial.request_stop()
    first = partial.join(TIMEOUT_S)
    assert first.status == JobStatus.STOPPED and mid.step <= first.step < 80

    resumed = TrainingJob.resume(partial.run_dir, data_for_run(partial.run_dir, tiny_frame()), backend="thread").start()
    final = resumed.join(TIMEOUT_S)
    assert final.status == JobStatus.DONE
    assert [s.step for s in final.steps] == list(range(1, 81))  # the steps before the stop come from disk
    assert [e.epoch for e in final.epochs] == list(range(1, 11))
    assert runs.read_status(partial.run_dir)["status"] == "done"


def test_failed_job_reports_its_error(tmp_path):
    config = tiny_config(batch_size=4096)
    data = tiny_data(config)
    job = TrainingJob.create(tmp_path, "too big", config, data, backend="thread").start()
    snap = job.join(TIMEOUT_S)
    assert snap.status == JobStatus.FAILED and "batch_size=4096" in snap.error
    assert isinstance(job.exception, UserError)
    assert runs.read_status(job.run_dir)["status"] == "failed"
    with pytest.raises(RuntimeError, match="already started"):
        job.start()


def test_process_job_trains_in_a_worker_process_and_stops(tmp_path):
    job = long_job(tmp_path, "process")
    assert job.backend == "process"
    job.start()
    running = wait_for(job, lambda s: s.step >= 3)
    assert running.status == JobStatus.RUNNING and running.backend == "process"
    job.request_stop()
    final = job.join(TIMEOUT_S)
    assert final.status == JobStatus.STOPPED and final.step >= 3 and final.error is None
    assert [s.step for s in final.steps] == list(range(1, final.step + 1))
    assert runs.read_status(job.run_dir)["status"] == "stopped"
    assert job._process.exitcode == 0


def test_process_job_that_dies_is_marked_failed(tmp_path):
    job = long_job(tmp_path, "process").start()
    wait_for(job, lambda s: s.step >= 1)
    job._process.kill()  # an out-of-memory kill, say
    final = job.join(TIMEOUT_S)
    assert final.status == JobStatus.FAILED and "exited unexpectedly" in final.error
    assert runs.read_status(job.run_dir)["status"] == "failed"


def test_backend_choice():
    cpu = tiny_config()
    assert choose_backend(cpu) == "process"
    assert choose_backend(cpu, "thread") == "thread"
    with pytest.raises(ValueError, match="backend"):
        choose_backend(cpu, "fibre")


def test_registry_maps_run_ids_to_jobs(tmp_path):
    registry = JobRegistry()
    config = tiny_config(epochs=1)
    data = tiny_data(config)
    first = registry.add(TrainingJob.create(tmp_path, "a", config, data, backend="thread"))
    second = registry.add(TrainingJob.create(tmp_path, "b", config, data, backend="thread"))
    assert registry.get(first.run_id) is first and first.run_id in registry and len(registry) == 2
    assert registry.latest() is second and registry.jobs() == [first, second]
    assert registry.running() == []


def test_registry_refuses_a_second_live_job_for_one_run(tmp_path):
    registry = JobRegistry()
    job = registry.add(long_job(tmp_path, "thread").start())
    try:
        wait_for(job, lambda s: s.step >= 1)
        with pytest.raises(RuntimeError, match="already has a running job"):
            registry.add(TrainingJob(job.config, job.data, job.run_dir, backend="thread"))
        assert registry.running() == [job]
    finally:
        registry.stop_all()
        job.join(TIMEOUT_S)
    assert registry.running() == []
