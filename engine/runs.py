"""A training run is a folder on disk; this module creates, lists, loads and updates them.

Layout (DESIGN.md "Contracts"): ``config.json``, ``schema.json``, ``encoder.json``,
``metrics.jsonl``, ``checkpoint_last.pt``, ``checkpoint_best.pt``, ``status.json``.
Nothing is serialised as code: configs, schemas and encoders are JSON; a checkpoint holds only tensors and
plain types (state_dicts, the config as a JSON string, counters, RNG state tensors) and is read
with ``torch.load(..., weights_only=True)``, so a file carrying a pickled object is refused.
Every write of a whole file goes through engine.atomic (temp file + ``os.replace``): a reader, or
a run that crashed mid-write, sees the old file or the new one, never half of one.
``metrics.jsonl`` is append-only instead; its reader skips a truncated last line.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from engine.atomic import atomic_write_bytes, atomic_write_text
from engine.config import RunConfig
from engine.errors import UserError
from engine.features import FeatureEncoder
from engine.schema import Schema

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SCHEMA_FILE = "schema.json"
ENCODER_FILE = "encoder.json"
METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
CHECKPOINT_LAST = "checkpoint_last.pt"
CHECKPOINT_BEST = "checkpoint_best.pt"
CHECKPOINTS = {"last": CHECKPOINT_LAST, "best": CHECKPOINT_BEST}

CHECKPOINT_FORMAT = 2  # 2: stacked categorical embedding table and one MFP head over all vocabularies
CHECKPOINT_KEYS = ("format", "config", "model", "optimizer", "scheduler", "epochs_done", "batch_in_epoch", "global_step", "rng")
SLUG_MAX = 40
METRICS_FLUSH_S = 1.0  # a reader (the UI after a crash) sees metrics at most this stale


class RunStatus(str, Enum):
    CREATED = "created"  # folder written, training not started yet
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # status.json says running but the process that ran it is gone


class RunError(UserError):
    """A run folder is missing, incomplete or unreadable."""


class CheckpointError(RunError):
    """A checkpoint file is corrupt, of an unknown format, or carries more than tensors and plain types."""


# ---------------------------------------------------------------------------------------------
# Creating a run
# ---------------------------------------------------------------------------------------------
def slugify(name: str) -> str:
    """A folder-safe slug: lower-case letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-") or "run"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def create_run(
    runs_dir: str | os.PathLike,
    name: str,
    config: RunConfig,
    schema: Schema,
    encoder: FeatureEncoder,
    *,
    source: str = "",
    n_rows: int = 0,
) -> Path:
    """A new run folder ``<runs_dir>/<YYYYmmdd-HHMMSS>-<slug>`` with config, schema, encoder and status written."""
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"{runs_dir}: cannot create the runs folder ({exc.strerror or exc})") from None
    run_dir = _new_unique_folder(runs_dir, f"{time.strftime('%Y%m%d-%H%M%S')}-{slugify(name or config.name or config.preset)}")
    atomic_write_text(run_dir / CONFIG_FILE, config.dumps())
    schema.save(run_dir / SCHEMA_FILE)
    atomic_write_text(run_dir / ENCODER_FILE, json.dumps(encoder.to_json()))
    write_status(
        run_dir,
        status=RunStatus.CREATED.value, name=name or config.name or run_dir.name, error=None, epochs_done=0,
        n_epochs=config.train.epochs, best_val_loss=None, records_per_s=None, device=None, created=now_iso(),
        started=None, finished=None, source=str(source), n_rows=int(n_rows),
    )
    return run_dir


def _new_unique_folder(parent: Path, base: str) -> Path:
    for attempt in range(1, 1000):
        candidate = parent / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunError(f"{parent}: cannot find a free run folder name for {base!r}")


# ---------------------------------------------------------------------------------------------
# status.json
# ---------------------------------------------------------------------------------------------
def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's status document; ``{"status": "unknown"}`` when missing or unreadable."""
    path = Path(run_dir) / STATUS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"status": "unknown"}
    return doc if isinstance(doc, dict) else {"status": "unknown"}


def write_status(run_dir: str | os.PathLike, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into status.json (atomically) and return the new document."""
    doc = read_status(run_dir)
    if doc.get("status") == "unknown" and "status" not in changes:
        doc.pop("status")
    doc.update(changes)
    doc["updated"] = now_iso()
    atomic_write_text(Path(run_dir) / STATUS_FILE, json.dumps(doc, indent=2, default=str))
    return doc


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def effective_status(doc: Mapping[str, Any]) -> str:
    """The status, with "running" turned into "interrupted" when its process no longer exists."""
    status = str(doc.get("status", "unknown"))
    if status == RunStatus.RUNNING.value and "pid" in doc and not _pid_alive(doc.get("pid")):
        return RunStatus.INTERRUPTED.value
    return status


# ---------------------------------------------------------------------------------------------
# metrics.jsonl
# ---------------------------------------------------------------------------------------------
def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of metrics.jsonl; lines that do not parse (a truncated last line) are skipped."""
    path = Path(run_dir) / METRICS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    records, skipped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(record, dict):
            records.append(record)
    if skipped:
        logger.warning("%s: skipped %d unreadable metrics line(s) (a write was interrupted)", path, skipped)
    return records


def rewrite_metrics(run_dir: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Replace metrics.jsonl atomically (used on resume to drop records past the checkpoint)."""
    text = "".join(json.dumps(dict(r)) + "\n" for r in records)
    atomic_write_text(Path(run_dir) / METRICS_FILE, text)


def metrics_up_to(records: Iterable[Mapping[str, Any]], *, global_step: int, epochs_done: int) -> list[dict[str, Any]]:
    """The records a checkpoint at (global_step, epochs_done) had seen: what a resume keeps."""
    kept = []
    for record in records:
        kind = record.get("kind")
        if kind == "step" and int(record.get("step", 0)) > global_step:
            continue
        if kind == "epoch" and int(record.get("epoch", 0)) > epochs_done:
            continue
        kept.append(dict(record))
    return kept


class MetricsWriter:
    """Appends records to metrics.jsonl, flushing at most every METRICS_FLUSH_S seconds and on close."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self._handle = open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8")
        self._last_flush = time.monotonic()

    def write(self, record: Mapping[str, Any], *, flush: bool = False) -> None:
        self._handle.write(json.dumps(dict(record)) + "\n")
        if flush or time.monotonic() - self._last_flush >= METRICS_FLUSH_S:
            self._handle.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            self._handle.close()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Serialise to memory first, then write atomically: a crash mid-write leaves the old file intact."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's contents on the CPU; only tensors and plain types are accepted (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # torch reports a refused global as UnpicklingError and a damaged archive as RuntimeError or
    # EOFError; whichever it is, the user's answer is the same one line.
    except Exception as exc:  # noqa: BLE001
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused to load checkpoint: it holds a pickled object, not only tensors and plain types ({first_line[:200]})"
            ) from None
        raise CheckpointError(f"{path}: checkpoint is corrupt or not a checkpoint ({type(exc).__name__}: {first_line[:200]})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path}: not a checkpoint of this tool (format {CHECKPOINT_FORMAT} expected)")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state['format']} is from another version of this tool "
                              f"(this one reads format {CHECKPOINT_FORMAT}); train the run again")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state


def checkpoint_config(state: Mapping[str, Any], path: str | os.PathLike = "checkpoint") -> RunConfig:
    try:
        return RunConfig.from_json(json.loads(state["config"]))
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the config stored in the checkpoint is unreadable ({exc})") from None


# ---------------------------------------------------------------------------------------------
# Listing and loading
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    """One run as the run list shows it (read from its folder)."""

    run_id: str
    run_dir: Path
    name: str
    status: str  # a RunStatus value, or "unknown"
    config: RunConfig | None  # None when config.json is unreadable
    epochs_done: int
    n_epochs: int | None
    best_val_loss: float | None
    records_per_s: float | None
    device: str | None
    created: str | None
    started: str | None
    finished: str | None
    source: str
    n_rows: int | None
    error: str | None
    has_checkpoint: bool
    status_doc: Mapping[str, Any] = field(default_factory=dict, repr=False)


def is_run_dir(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def run_info(run_dir: str | os.PathLike) -> RunInfo:
    run_dir = Path(run_dir)
    doc = read_status(run_dir)
    try:
        config: RunConfig | None = RunConfig.from_json(json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, UserError, TypeError) as exc:
        logger.warning("%s: unreadable config.json (%s)", run_dir, exc)
        config = None
    return RunInfo(
        run_id=run_dir.name,
        run_dir=run_dir,
        name=str(doc.get("name") or run_dir.name),
        status=effective_status(doc),
        config=config,
        epochs_done=int(doc.get("epochs_done") or 0),
        n_epochs=doc.get("n_epochs"),
        best_val_loss=doc.get("best_val_loss"),
        records_per_s=doc.get("records_per_s"),
        device=doc.get("device"),
        created=doc.get("created"),
        started=doc.get("started"),
        finished=doc.get("finished"),
        source=str(doc.get("source") or ""),
        n_rows=doc.get("n_rows"),
        error=doc.get("error"),
        has_checkpoint=any((run_dir / name).is_file() for name in CHECKPOINTS.values()),
        status_doc=doc,
    )


def list_runs(runs_dir: str | os.PathLike) -> list[RunInfo]:
    """Every run folder under ``runs_dir``, newest first; an absent folder has no runs."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    infos = [run_info(path) for path in runs_dir.iterdir() if is_run_dir(path)]
    return sorted(infos, key=lambda info: info.run_id, reverse=True)


@dataclass(frozen=True)
class LoadedRun:
    """A run loaded for inference: the model is in eval mode on ``device``."""

    run_dir: Path
    config: RunConfig
    schema: Schema
    encoder: FeatureEncoder
    model: torch.nn.Module
    status: Mapping[str, Any]
    metrics: tuple[Mapping[str, Any], ...]
    checkpoint: str  # "best" or "last": the file the weights came from
    epochs_done: int
    device: torch.device


def require_run_dir(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run folder not found")
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunError(f"{run_dir}: not a run folder (no {CONFIG_FILE})")
    return run_dir


def load_encoder(run_dir: Path) -> FeatureEncoder:
    try:
        return FeatureEncoder.from_json(json.loads((run_dir / ENCODER_FILE).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{run_dir / ENCODER_FILE}: cannot read the feature encoder ({exc})") from None


def checkpoint_path(run_dir: str | os.PathLike, checkpoint: str = "best") -> tuple[Path, str]:
    """The checkpoint file to use and which one it is; "best" falls back to "last" before the first epoch ends."""
    run_dir = Path(run_dir)
    if checkpoint not in CHECKPOINTS:
        raise RunError(f"checkpoint must be one of {sorted(CHECKPOINTS)}, got checkpoint={checkpoint!r}")
    preferred = run_dir / CHECKPOINTS[checkpoint]
    if preferred.is_file():
        return preferred, checkpoint
    other = "last" if checkpoint == "best" else "best"
    fallback = run_dir / CHECKPOINTS[other]
    if fallback.is_file():
        logger.warning("%s: no %s checkpoint, using the %s one", run_dir, checkpoint, other)
        return fallback, other
    raise RunError(f"{run_dir}: the run has no checkpoint yet (it never finished a step that was saved)")


def load_run(run_dir: str | os.PathLike, checkpoint: str = "best", *, device: str | torch.device = "cpu") -> LoadedRun:
    """Config, schema, encoder and the trained TabularResNet (eval mode) of a run folder."""
    from engine.model import TabularResNet  # here, not at the top: listing runs needs no model code

    run_dir = require_run_dir(run_dir)
    path, which = checkpoint_path(run_dir, checkpoint)
    state = load_checkpoint(path)
    config = checkpoint_config(state, path)
    schema = Schema.load(run_dir / SCHEMA_FILE)
    encoder = load_encoder(run_dir)
    model = TabularResNet.from_config(config.model, n_num=encoder.n_model_numeric, cardinalities=encoder.cardinalities)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: the weights do not match the run's encoder and config ({first_line[:200]})") from None
    if not isinstance(device, torch.device):
        from engine.device import select_device

        device = select_device(str(device))
    model.to(device).eval()
    return LoadedRun(
        run_dir=run_dir,
        config=config,
        schema=schema,
        encoder=encoder,
        model=model,
        status=read_status(run_dir),
        metrics=tuple(read_metrics(run_dir)),
        checkpoint=which,
        epochs_done=int(state["epochs_done"]),
        device=device,
    )
