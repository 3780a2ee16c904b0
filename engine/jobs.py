"""Training in the background: ``TrainingJob`` (one run) and ``JobRegistry`` (all of a process's jobs).

The UI's script threads only ever call ``start()``, ``request_stop()`` and ``snapshot()``; the
worker never touches Streamlit. Two backends sit behind the same interface:

- ``"process"`` (the CPU default): training runs in a spawned worker process and sends its
  records back over a multiprocessing Queue. Why: measured on this team's 2-core machine, the
  same loop in a thread of a process whose main thread had used torch ran at ~55% of its speed
  in the main thread or in a separate process (~10,000 vs 17,000-18,000 records/s). Each OS
  thread that runs torch ops gets its own OpenMP team; with a second team alive, the training
  team ran exactly as fast as the main thread does under OMP_WAIT_POLICY=PASSIVE (9,700 vs 9,200
  records/s), i.e. its workers sleep and wake around every op instead of spin-waiting (libgomp
  throttles spinning once it manages more threads than there are cores). Neither
  ``torch.set_num_threads`` in the thread nor anything else settable after torch is loaded
  changed that; a fresh process has only its own team. The worker receives only JSON strings and
  a file of tensors (loaded with weights_only=True), never a pickled object of ours.
- ``"thread"`` (the CUDA/MPS default): a ``threading.Thread`` in this process; on a GPU the CPU
  thread pools are not the bottleneck and the model stays on the device the app already holds.

Metrics also go to the run folder (metrics.jsonl, status.json) from inside ``train()``, so a
finished or crashed job can always be reloaded from disk.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import queue as queue_module
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

import torch

from engine import runs
from engine.config import RunConfig
from engine.device import gpu_memory_mb, select_device
from engine.features import FeatureEncoder, TabularTensors
from engine.schema import Schema
from engine.train import EpochRecord, RunStarted, StepRecord, TrainData, TrainEvent, record_from_json, train

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "thread", "process")
POLL_S = 0.2  # how often the process watcher checks that the worker is still alive
WORKER_JOIN_S = 10.0


class JobStatus(str, Enum):
    PENDING = "pending"  # created, not started
    STARTING = "starting"  # worker starting (process: importing torch, loading data)
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.STOPPED, JobStatus.FAILED)


@dataclass(frozen=True)
class JobSnapshot:
    """An immutable copy of a job's state for the UI; cheap to take once a second."""

    run_id: str
    run_dir: Path
    backend: str  # "thread" | "process"
    status: JobStatus
    stop_requested: bool
    epoch: int  # epochs finished
    n_epochs: int
    step: int  # global steps done
    n_steps: int  # total steps of the run (0 until the worker has started)
    steps_per_epoch: int
    records_per_s: float | None  # moving window while running; the run's mean once finished
    eta_s: float | None
    device: str | None  # "CPU (2 cores)", "CUDA (NVIDIA H100)" ...
    precision: str | None
    gpu_mem_mb: float | None
    best_val_loss: float | None
    collapse: Mapping[str, float]  # the latest epoch's collapse diagnostics
    steps: tuple[StepRecord, ...]
    epochs: tuple[EpochRecord, ...]
    error: str | None
    started: float | None  # time.time()
    finished: float | None
    result: Mapping[str, Any] | None = field(default=None)  # TrainResult.to_json() once finished

    @property
    def done(self) -> bool:
        return self.status.finished

    @property
    def history(self) -> tuple[TrainEvent, ...]:
        """Step and epoch records in the order they happened."""
        return tuple(sorted((*self.steps, *self.epochs), key=lambda r: (r.step, r.kind == "epoch")))


def choose_backend(config: RunConfig, backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    if backend != "auto":
        return backend
    return "process" if select_device(config.train.device).type == "cpu" else "thread"


class TrainingJob:
    """One training run in the background: ``start()``, ``request_stop()``, ``snapshot()``, ``join()``."""

    def __init__(
        self,
        config: RunConfig,
        data: TrainData,
        run_dir: str | Path,
        *,
        resume_from: str | Path | None = None,
        backend: str = "auto",
    ) -> None:
        self.config = config
        self.data = data
        self.run_dir = Path(run_dir)
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.backend = choose_backend(config, backend)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._mp_stop: Any = None
        self._status = JobStatus.PENDING
        self._error: str | None = None
        self._exception: BaseException | None = None
        self._started_record: RunStarted | None = None
        self._session_start: float | None = None  # time.time() of the RunStarted record
        self._steps: list[StepRecord] = []
        self._epochs: list[EpochRecord] = []
        self._result: dict[str, Any] | None = None
        self._started: float | None = None
        self._finished: float | None = None
        self._cached: tuple[int, JobSnapshot] | None = None
        self._version = 0
        self._worker: threading.Thread | None = None
        self._process: Any = None

    # -- construction helpers ---------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: str | Path, name: str, config: RunConfig, data: TrainData, *, backend: str = "auto") -> "TrainingJob":
        """A new run folder and its (unstarted) job."""
        run_dir = runs.create_run(runs_dir, name, config, data.schema, data.encoder, source=data.source, n_rows=data.n_rows)
        return cls(config, data, run_dir, backend=backend)

    @classmethod
    def resume(cls, run_dir: str | Path, data: TrainData, *, epochs: int | None = None, backend: str = "auto") -> "TrainingJob":
        """A job continuing a stopped (or interrupted) run from its checkpoint_last.pt; ``epochs`` may extend it."""
        run_dir = runs.require_run_dir(run_dir)
        path, _ = runs.checkpoint_path(run_dir, "last")
        config = runs.checkpoint_config(runs.load_checkpoint(path), path)
        if epochs is not None:
            config = config.with_overrides({"epochs": epochs})
        return cls(config, data, run_dir, resume_from=path, backend=backend)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    # -- control ----------------------------------------------------------------------------
    def start(self) -> "TrainingJob":
        with self._lock:
            if self._status != JobStatus.PENDING:
                raise RuntimeError(f"job {self.run_id} was already started")
            self._status = JobStatus.STARTING
            self._started = time.time()
            self._version += 1
        if self.backend == "thread":
            self._worker = threading.Thread(target=self._run_in_thread, name=f"train-{self.run_id}", daemon=True)
        else:
            self._worker = threading.Thread(target=self._run_in_process, name=f"train-watch-{self.run_id}", daemon=True)
        self._worker.start()
        return self

    def request_stop(self) -> None:
        """Ask the worker to stop; it finishes at most the step in flight, saves a checkpoint and ends "stopped"."""
        self._stop.set()
        with self._lock:
            if self._mp_stop is not None:
                self._mp_stop.set()
            self._version += 1

    def join(self, timeout: float | None = None) -> JobSnapshot:
        """Wait for the job to end (worker process reaped, scratch files removed) and return its final snapshot."""
        if self._worker is not None:
            self._worker.join(timeout)
        return self.snapshot()

    def is_alive(self) -> bool:
        with self._lock:
            return self._status in (JobStatus.STARTING, JobStatus.RUNNING)

    @property
    def exception(self) -> BaseException | None:
        """The exception that ended a thread-backend job (the process backend reports only its message)."""
        return self._exception

    # -- records from the worker --------------------------------------------------------------
    def _on_record(self, record: TrainEvent) -> None:
        if isinstance(record, RunStarted) and record.start_step > 0:
            prior = self._prior_records(record.start_step)
        else:
            prior = None
        with self._lock:
            if isinstance(record, RunStarted):
                self._started_record = record
                self._session_start = record.time
                self._status = JobStatus.RUNNING
                if prior is not None:  # a resumed run: show the curve so far, from the run folder
                    self._steps, self._epochs = prior
            elif isinstance(record, StepRecord):
                self._steps.append(record)
            elif isinstance(record, EpochRecord):
                self._epochs.append(record)
            self._version += 1

    def _prior_records(self, upto_step: int) -> tuple[list[StepRecord], list[EpochRecord]]:
        steps, epochs = [], []
        for doc in runs.read_metrics(self.run_dir):
            try:
                record = record_from_json(doc)
            except (TypeError, ValueError):
                continue
            if isinstance(record, StepRecord) and record.step <= upto_step:
                steps.append(record)
            elif isinstance(record, EpochRecord) and record.step <= upto_step:
                epochs.append(record)
        return steps, epochs

    def _finish(self, result: Mapping[str, Any] | None, *, error: str | None = None, exception: BaseException | None = None) -> None:
        with self._lock:
            if result is not None:
                self._result = dict(result)
                self._status = {"done": JobStatus.DONE, "stopped": JobStatus.STOPPED}.get(result.get("status"), JobStatus.FAILED)
                self._error = result.get("error")
            else:
                self._status = JobStatus.FAILED
                self._error = error
                self._exception = exception
            self._finished = time.time()
            self._version += 1

    # -- thread backend -------------------------------------------------------------------------
    def _run_in_thread(self) -> None:
        try:
            result = train(self.config, self.data, run_dir=self.run_dir, on_step=self._on_record, stop=self._stop,
                           resume_from=self.resume_from)
        except BaseException as exc:  # the job reports it; the UI shows the error panel
            logger.exception("training job %s failed", self.run_id)
            self._finish(None, error=_one_line(exc), exception=exc)
            return
        self._finish(result.to_json())

    # -- process backend ------------------------------------------------------------------------
    def _run_in_process(self) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="ocsf-train-"))
        try:
            context = multiprocessing.get_context("spawn")
            events = context.Queue()
            with self._lock:
                self._mp_stop = context.Event()
                if self._stop.is_set():
                    self._mp_stop.set()
            spec = self._worker_spec(scratch)
            self._process = context.Process(target=worker_main, args=(spec, events, self._mp_stop),
                                            name=f"train-{self.run_id}", daemon=True)
            self._process.start()
            self._watch(events)
        except BaseException as exc:
            logger.exception("training job %s could not run its worker process", self.run_id)
            self._finish(None, error=_one_line(exc), exception=exc)
        finally:
            if self._process is not None:
                self._process.join(WORKER_JOIN_S)
                if self._process.is_alive():  # it reported its end but hangs on exit: do not leak it
                    self._process.terminate()
                    self._process.join(WORKER_JOIN_S)
            shutil.rmtree(scratch, ignore_errors=True)

    def _worker_spec(self, scratch: Path) -> dict[str, str | None]:
        """Plain strings only: the config, schema and encoder as JSON, the tensors as a weights-only file."""
        tensors = self.data.tensors
        data_path = scratch / "tensors.pt"
        runs.save_checkpoint(data_path, {"numeric": tensors.numeric, "categorical": tensors.categorical, "time": tensors.time})
        return {
            "config": self.config.dumps(),
            "schema": self.data.schema.dumps(),
            "encoder": json.dumps(self.data.encoder.to_json()),
            "source": self.data.source,
            "data_path": str(data_path),
            "run_dir": str(self.run_dir),
            "resume_from": str(self.resume_from) if self.resume_from is not None else None,
        }

    def _watch(self, events: Any) -> None:
        while True:
            try:
                kind, payload = events.get(timeout=POLL_S)
            except queue_module.Empty:
                if not self._process.is_alive():
                    self._drain_after_exit(events)
                    return
                continue
            if self._handle_event(kind, payload):
                return

    def _handle_event(self, kind: str, payload: Any) -> bool:
        """Apply one worker message; True when it was the last one."""
        if kind == "record":
            self._on_record(record_from_json(payload))
            return False
        if kind == "result":
            self._finish(payload)
        else:
            self._finish(None, error=str(payload))
        return True

    def _drain_after_exit(self, events: Any) -> None:
        while True:
            try:
                kind, payload = events.get(timeout=POLL_S)
            except queue_module.Empty:
                break
            if self._handle_event(kind, payload):
                return
        code = self._process.exitcode
        self._finish(None, error=f"the training process exited unexpectedly (exit code {code}); the run keeps its last checkpoint")
        runs.write_status(self.run_dir, status=runs.RunStatus.FAILED.value, error=self._error, finished=runs.now_iso())

    # -- the UI's view ----------------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        with self._lock:
            # While running the ETA moves with the clock, so only a finished job's snapshot is reused.
            if self._cached is not None and self._cached[0] == self._version and self._status != JobStatus.RUNNING:
                return self._cached[1]
            snap = self._build_snapshot()
            self._cached = (self._version, snap)
            return snap

    def _build_snapshot(self) -> JobSnapshot:
        start = self._started_record
        last_step = self._steps[-1] if self._steps else None
        last_epoch = self._epochs[-1] if self._epochs else None
        step = last_step.step if last_step else (start.start_step if start else 0)
        n_steps = start.n_steps if start else 0
        running = self._status == JobStatus.RUNNING
        if self._result is not None and self._result.get("records_per_s"):
            rate = float(self._result["records_per_s"])
        else:
            rate = last_step.records_per_s if last_step else None
        return JobSnapshot(
            run_id=self.run_id,
            run_dir=self.run_dir,
            backend=self.backend,
            status=self._status,
            stop_requested=self._stop.is_set(),
            epoch=last_epoch.epoch if last_epoch else (start.start_epoch if start else 0),
            n_epochs=start.n_epochs if start else self.config.train.epochs,
            step=step,
            n_steps=n_steps,
            steps_per_epoch=start.steps_per_epoch if start else 0,
            records_per_s=rate,
            eta_s=self._eta(step, n_steps) if running and not self._stop.is_set() else None,
            device=start.device_name if start else None,
            precision=start.precision if start else None,
            gpu_mem_mb=self._gpu_mem_mb(start, last_epoch),
            best_val_loss=min((e.val_loss if e.val_loss is not None else e.train_loss for e in self._epochs), default=None),
            collapse=last_epoch.collapse if last_epoch else {},
            steps=tuple(self._steps),
            epochs=tuple(self._epochs),
            error=self._error,
            started=self._started,
            finished=self._finished,
            result=dict(self._result) if self._result is not None else None,
        )

    def _eta(self, step: int, n_steps: int) -> float | None:
        """Seconds left at this session's pace so far (validation and checkpoints included)."""
        start = self._started_record
        if start is None or self._session_start is None:
            return None
        done = step - start.start_step
        if done <= 0:
            return None
        elapsed = time.time() - self._session_start
        return max(0.0, elapsed / done * (n_steps - step))

    def _gpu_mem_mb(self, start: RunStarted | None, last_epoch: EpochRecord | None) -> float | None:
        if start is not None and start.device == "cuda" and self.backend == "thread":
            return gpu_memory_mb(torch.device("cuda"))  # live: the model lives in this process
        return last_epoch.gpu_mem_mb if last_epoch else None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------------------------
def worker_main(spec: Mapping[str, str | None], events: Any, stop: Any) -> None:
    """Entry point of the spawned training process: rebuild the data, train, report over ``events``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        data = _worker_data(spec)
        config = RunConfig.from_json(json.loads(str(spec["config"])))
        result = train(
            config, data, run_dir=spec["run_dir"], stop=stop, resume_from=spec["resume_from"],
            on_step=lambda record: events.put(("record", record.to_json())),
        )
        events.put(("result", result.to_json()))
    except BaseException as exc:  # reported to the parent as one line; status.json already says failed
        logging.getLogger(__name__).exception("training worker failed")
        events.put(("error", _one_line(exc)))
    finally:
        events.close()
        events.join_thread()


def _worker_data(spec: Mapping[str, str | None]) -> TrainData:
    tensors = torch.load(str(spec["data_path"]), map_location="cpu", weights_only=True)
    return TrainData(
        tensors=TabularTensors(numeric=tensors["numeric"], categorical=tensors["categorical"], time=tensors["time"]),
        encoder=FeatureEncoder.from_json(json.loads(str(spec["encoder"]))),
        schema=Schema.loads(str(spec["schema"])),
        source=str(spec.get("source") or ""),
    )


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------
class JobRegistry:
    """Thread-safe map run id -> TrainingJob; the UI keeps one per process (st.cache_resource)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, TrainingJob] = {}

    def add(self, job: TrainingJob) -> TrainingJob:
        with self._lock:
            current = self._jobs.get(job.run_id)
            if current is not None and current is not job and current.is_alive():
                raise RuntimeError(f"run {job.run_id} already has a running job")
            self._jobs[job.run_id] = job
        return job

    def get(self, run_id: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(run_id)

    def jobs(self) -> list[TrainingJob]:
        """All jobs, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def running(self) -> list[TrainingJob]:
        return [job for job in self.jobs() if job.is_alive()]

    def latest(self) -> TrainingJob | None:
        jobs = self.jobs()
        return jobs[-1] if jobs else None

    def remove(self, run_id: str) -> None:
        with self._lock:
            self._jobs.pop(run_id, None)

    def stop_all(self) -> None:
        for job in self.jobs():
            job.request_stop()

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def __contains__(self, run_id: object) -> bool:
        with self._lock:
            return run_id in self._jobs
