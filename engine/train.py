"""Self-supervised training of a TabularResNet: contrastive (SimCLR NT-Xent), masked feature prediction, or both.

``train(config, data, ...)`` is pure: no globals, no UI. Its speed comes from keeping the data
where the model is: the encoded tensors are moved to the device once, each epoch slices a seeded
random permutation into batches (no per-item Dataset or DataLoader), augmentation is vectorised
over the whole batch (engine.augment), and the two views (with MFP masking on the first) go
through the model in one forward pass of 2B rows. bf16 autocast where it pays (engine.device).

Everything random comes from ``torch.Generator`` objects owned by the loop (shuffling on the CPU;
augmentation, masking and dropout on the device), and module initialisation uses a forked global
RNG, so a run is reproducible and a resumed run continues exactly: a checkpoint stores the model,
optimizer, scheduler, counters and the generators' states, and a stop mid-epoch resumes at the
very next batch. Checkpoints are written atomically every epoch (``checkpoint_last.pt``) and when
validation improves (``checkpoint_best.pt``). A non-finite loss or gradient fails the run with a
clear message and leaves the last good checkpoint in place.
"""
from __future__ import annotations

import collections
import ctypes
import json
import logging
import math
import os
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from engine import runs
from engine.augment import AugmentationPolicy
from engine.config import RunConfig
from engine.device import ThreadTuner, autocast, autocast_dtype, describe, generator_for, gpu_memory_mb, select_device
from engine.errors import UserError
from engine.features import FeatureEncoder, TabularTensors
from engine.losses import collapse_diagnostics, combined_loss
from engine.model import MFPHeads, ProjectionHead, TabularResNet, mask_inputs
from engine.schema import Schema

logger = logging.getLogger(__name__)

# Offsets added to the run's seed so each stream of randomness is independent of the others.
SPLIT_SEED_OFFSET = 0
SHUFFLE_SEED_OFFSET = 1
AUGMENT_SEED_OFFSET = 2
VALIDATION_SEED_OFFSET = 3
SAMPLE_SEED_OFFSET = 4

PROJECTION_DIM = 128  # SimCLR's projection size
DIAGNOSTIC_ROWS = 2048  # validation rows whose embeddings feed the collapse diagnostics
RATE_WINDOW = 20  # steps in the moving window of records/s


class StopSignal(Protocol):
    """A threading.Event or a multiprocessing Event: anything with is_set()."""

    def is_set(self) -> bool: ...


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainData:
    """The encoded rows (raw stage) plus what produced them; ``source`` names the file for status.json."""

    tensors: TabularTensors
    encoder: FeatureEncoder
    schema: Schema
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.tensors) == 0:
            raise UserError("no rows to train on")

    @property
    def n_rows(self) -> int:
        return len(self.tensors)


def sample_rows(n_rows: int, max_rows: int, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded sample of ``max_rows`` rows, or None when all rows are used."""
    if max_rows <= 0 or n_rows <= max_rows:
        return None
    rng = np.random.default_rng(seed + SAMPLE_SEED_OFFSET)
    return np.sort(rng.choice(n_rows, size=max_rows, replace=False))


def prepare_data(df: pd.DataFrame, schema: Schema, config: RunConfig, *, source: str = "") -> TrainData:
    """Sample ``max_rows`` (seeded) before encoding, so a quick run also encodes quickly; fit and transform."""
    keep = sample_rows(len(df), config.train.max_rows, config.train.seed)
    if keep is not None:
        df = df.iloc[keep].reset_index(drop=True)
    if not (schema.numeric or schema.categorical or schema.timestamp):
        raise UserError("the schema has no model inputs: mark at least one column numeric, categorical or timestamp")
    encoder = FeatureEncoder(schema).fit(df)
    return TrainData(tensors=encoder.transform(df), encoder=encoder, schema=schema, source=source)


def data_for_run(run_dir: str | os.PathLike, df: pd.DataFrame, *, source: str = "") -> TrainData:
    """``df`` encoded with a run's own schema and fitted encoder, to resume or extend that run.

    The same ``max_rows`` sample is drawn as when the run was prepared, so resuming on the same
    file continues on the same rows.
    """
    run_dir = runs.require_run_dir(run_dir)
    config = runs.run_info(run_dir).config
    if config is None:
        raise UserError(f"{run_dir}: config.json is unreadable")
    keep = sample_rows(len(df), config.train.max_rows, config.train.seed)
    if keep is not None:
        df = df.iloc[keep].reset_index(drop=True)
    encoder = runs.load_encoder(run_dir)
    return TrainData(tensors=encoder.transform(df), encoder=encoder, schema=Schema.load(run_dir / runs.SCHEMA_FILE), source=source)


@dataclass(frozen=True)
class Split:
    train: Tensor  # int64 row indices
    val: Tensor


def split_rows(n_rows: int, val_fraction: float, seed: int) -> Split:
    """A seeded train/validation split (80/20 by default)."""
    generator = torch.Generator().manual_seed(seed + SPLIT_SEED_OFFSET)
    order = torch.randperm(n_rows, generator=generator)
    n_val = int(round(n_rows * val_fraction))
    return Split(train=order[n_val:], val=order[:n_val])


# ---------------------------------------------------------------------------------------------
# Records (what on_step receives and metrics.jsonl holds)
# ---------------------------------------------------------------------------------------------
def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class RunStarted:
    """Sent once before the first step (also after a resume)."""

    device: str  # "cpu" | "cuda" | "mps"
    device_name: str  # "CPU (2 cores)", "CUDA (NVIDIA H100)" ...
    precision: str  # "bf16" | "fp32"
    n_epochs: int
    steps_per_epoch: int
    n_steps: int
    n_train: int
    n_val: int
    batch_size: int
    start_epoch: int  # epochs already done (resume)
    start_step: int  # steps already done (resume)
    time: float
    kind: str = "start"

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class StepRecord:
    step: int  # 1-based global step
    epoch: int  # 1-based epoch in progress
    loss: float
    parts: Mapping[str, float]  # contrastive, mfp, mfp_cat, mfp_num ... (those the objective uses)
    lr: float
    records_per_s: float  # moving window over the last RATE_WINDOW steps
    time: float
    kind: str = "step"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "epoch": self.epoch, "loss": self.loss, "parts": dict(self.parts),
                "lr": self.lr, "records_per_s": self.records_per_s, "time": self.time}


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based, = epochs done
    step: int  # global step at the end of the epoch
    train_loss: float  # mean over the epoch's steps
    val_loss: float | None  # None without a validation split
    parts: Mapping[str, float]  # validation parts (training parts without a validation split)
    collapse: Mapping[str, float]  # engine.losses.collapse_diagnostics of validation embeddings
    records_per_s: float  # training records/s over the epoch's steps
    seconds: float  # wall time of the epoch, validation and checkpoint included
    best: bool  # this epoch is the best so far (checkpoint_best.pt was written)
    gpu_mem_mb: float | None
    cpu_threads: int | None  # torch intra-op threads at the end of the epoch (CPU only)
    time: float
    kind: str = "epoch"

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["parts"], out["collapse"] = dict(self.parts), dict(self.collapse)
        return out


TrainEvent = RunStarted | StepRecord | EpochRecord


def record_from_json(doc: Mapping[str, Any]) -> TrainEvent:
    """The inverse of ``to_json`` (the worker process sends records as plain dicts)."""
    kind = doc.get("kind")
    fields = dict(doc)
    if kind == "start":
        return RunStarted(**fields)
    if kind == "step":
        fields["parts"] = _frozen(fields.get("parts", {}))
        return StepRecord(**fields)
    if kind == "epoch":
        fields["parts"] = _frozen(fields.get("parts", {}))
        fields["collapse"] = _frozen(fields.get("collapse", {}))
        return EpochRecord(**fields)
    raise ValueError(f"unknown metrics record kind {kind!r}")


@dataclass(frozen=True)
class TrainResult:
    status: str  # "done" | "stopped" | "failed"
    epochs_done: int
    n_epochs: int
    global_step: int
    best_val_loss: float | None  # best monitored loss (validation, or training without a validation split)
    best_epoch: int | None
    final_train_loss: float | None
    records_per_s: float  # training records per second of step time (validation excluded)
    seconds: float
    device: str
    run_dir: Path | None
    error: str | None = None
    early_stopped: bool = False
    history: tuple[TrainEvent, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir) if self.run_dir else None, "status": self.status,
            "epochs_done": self.epochs_done, "n_epochs": self.n_epochs, "global_step": self.global_step,
            "best_val_loss": self.best_val_loss, "best_epoch": self.best_epoch, "final_train_loss": self.final_train_loss,
            "records_per_s": self.records_per_s, "seconds": self.seconds, "device": self.device,
            "error": self.error, "early_stopped": self.early_stopped,
        }


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


# ---------------------------------------------------------------------------------------------
# Model, optimiser, schedule
# ---------------------------------------------------------------------------------------------
class Modules(nn.Module):
    """The encoder network plus the heads its objective needs, so one optimizer and one state_dict cover them."""

    def __init__(self, config: RunConfig, encoder: FeatureEncoder) -> None:
        super().__init__()
        objective = config.train.objective
        n_num, cards = encoder.n_model_numeric, encoder.cardinalities
        self.model = TabularResNet.from_config(config.model, n_num=n_num, cardinalities=cards)
        d_model = config.model.d_model
        self.projection = ProjectionHead(d_model=d_model, d_out=PROJECTION_DIM) if objective in ("contrastive", "both") else None
        self.mfp_heads = MFPHeads(d_model=d_model, n_num=n_num, cardinalities=cards) if objective in ("mfp", "both") else None


def build_modules(config: RunConfig, encoder: FeatureEncoder) -> Modules:
    """Modules initialised from the run's seed without disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return Modules(config, encoder)


def make_adamw(modules: nn.Module, *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel where the build has one: one kernel per step instead of ~10 ops
    per parameter tensor; measured ~10 ms of a ~130 ms d_model-256 CPU step saved."""
    try:
        return torch.optim.AdamW(modules.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):  # a device or build without fused AdamW
        return torch.optim.AdamW(modules.parameters(), lr=lr, weight_decay=weight_decay)


# glibc's malloc gives large blocks their own fresh pages (mmap) and hands freed memory at the
# top of the heap back to the OS, so the activations a CPU step allocates and frees (a few MB
# each) come back as new pages every step: ~1,400 page faults, ~4 ms of a ~75 ms d_model-256 step
# on one thread. With these thresholds freed blocks stay in the heap for the next step (0 faults),
# as PyTorch's CPU tuning guide gets by preloading jemalloc or tcmalloc.
MALLOC_MMAP_THRESHOLD = 32 << 20  # glibc's ceiling: only blocks above 32 MB still get their own mapping
MALLOC_TRIM_THRESHOLD = 256 << 20  # freed memory kept by the process before the heap top is trimmed
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)


def keep_freed_memory_for_reuse() -> bool:
    """Raise glibc's malloc thresholds for this process (process-wide, kept after training).

    Best effort: returns False where the C library has no mallopt (macOS, Windows) or refuses.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols, the C library's among them
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD) == 1
    if not applied:
        logger.debug("mallopt refused the malloc thresholds; CPU steps keep their page faults")
    return applied


def clip_gradients(parameters: Iterable[Tensor], max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_ (L2, same arithmetic), returning the total norm as a float.

    Two changes for speed: the per-tensor norms come from one foreach call, and the gradients are
    only multiplied when the clip factor is below 1 (torch multiplies them by 1.0 otherwise):
    0.9 -> 0.4 ms on the d_model-256 model's 62 gradients, one CPU thread.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    factor = (max_norm / (total + 1e-6)).clamp(max=1.0)
    if factor.item() < 1.0:
        torch._foreach_mul_(grads, factor)
    return float(total)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor per step: linear warmup to 1, then cosine decay towards 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


# ---------------------------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------------------------
@dataclass
class Objective:
    """Turns a raw-stage batch into the loss; shared by training and validation."""

    config: RunConfig
    encoder: FeatureEncoder
    policy: AugmentationPolicy
    device: torch.device
    amp_dtype: torch.dtype | None

    @property
    def contrastive(self) -> bool:
        return self.config.train.objective in ("contrastive", "both")

    @property
    def mfp(self) -> bool:
        return self.config.train.objective in ("mfp", "both")

    @property
    def part_names(self) -> tuple[str, ...]:
        """The loss parts this objective computes (the others would be constant zeros)."""
        return (("contrastive",) if self.contrastive else ()) + (("mfp", "mfp_cat", "mfp_num") if self.mfp else ())

    def __call__(self, modules: Modules, batch: TabularTensors, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """The loss tensor and its figures as floats: "loss" plus the parts in ``part_names``."""
        t = self.config.train
        n = len(batch)
        if self.contrastive:
            view1, view2 = self.policy.views(batch, generator)
            x1_num, x1_cat = self.encoder.model_inputs(view1)
            x2_num, x2_cat = self.encoder.model_inputs(view2)
        else:
            x1_num, x1_cat = self.encoder.model_inputs(batch)
        if self.mfp:
            # The first view (or the batch itself) is masked and its true cells are the targets;
            # masking doubles as one more augmentation for the contrastive pair. Why not a third
            # copy: one forward pass of 2B rows instead of 3B.
            x1_num_in, x1_cat_in, num_mask, cat_mask = mask_inputs(x1_num, x1_cat, t.mask_ratio, generator)
        else:
            x1_num_in, x1_cat_in, num_mask, cat_mask = x1_num, x1_cat, None, None
        if self.contrastive:
            x_num, x_cat = torch.cat([x1_num_in, x2_num]), torch.cat([x1_cat_in, x2_cat])
            model_num_mask = None if num_mask is None else torch.cat([num_mask, torch.zeros_like(num_mask)])
        else:
            x_num, x_cat, model_num_mask = x1_num_in, x1_cat_in, num_mask
        with autocast(self.device, self.amp_dtype):
            embedding = modules.model(x_num, x_cat, num_mask=model_num_mask, generator=generator)
            z = modules.projection(embedding) if self.contrastive else None
            heads = modules.mfp_heads(embedding[:n]) if self.mfp else None
        cat_logits, num_pred = heads if heads is not None else (None, None)
        # combined_loss reduces in float32 (a softmax over 2B similarities at temperature 0.07
        # needs the mantissa) and returns every logged figure in one device-to-host copy.
        loss, figures = combined_loss(
            t.objective, mfp_weight=t.mfp_weight, temperature=t.temperature,
            z1=None if z is None else z[:n], z2=None if z is None else z[n:],
            cat_logits=cat_logits, num_pred=num_pred, x_cat_true=x1_cat, x_num_true=x1_num,
            cat_mask=cat_mask, num_mask=num_mask, cat_weight=t.mfp_cat_weight,
        )
        parts = {name: figures[name] for name in self.part_names}
        parts["loss"] = figures["loss"]
        return loss, parts

    @torch.no_grad()
    def embeddings_of_views(self, modules: Modules, batch: TabularTensors, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Embeddings (not projections) of two augmented views, for the collapse diagnostics."""
        view1, view2 = self.policy.views(batch, generator)
        x1_num, x1_cat = self.encoder.model_inputs(view1)
        x2_num, x2_cat = self.encoder.model_inputs(view2)
        with autocast(self.device, self.amp_dtype):
            embedding = modules.model(torch.cat([x1_num, x2_num]), torch.cat([x1_cat, x2_cat]))
        embedding = embedding.float()
        return embedding[: len(batch)], embedding[len(batch):]


# ---------------------------------------------------------------------------------------------
# Loop state and checkpoints
# ---------------------------------------------------------------------------------------------
@dataclass
class LoopState:
    epochs_done: int = 0
    batch_in_epoch: int = 0  # > 0 only in a checkpoint written by a stop mid-epoch
    global_step: int = 0
    best_loss: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0


@dataclass
class Generators:
    shuffle: torch.Generator  # CPU: the epoch permutations
    augment: torch.Generator  # device: views, MFP masks and dropout
    shuffle_at_epoch_start: Tensor  # the shuffle state that produced the epoch in progress

    @classmethod
    def seeded(cls, seed: int, device: torch.device) -> "Generators":
        shuffle = torch.Generator().manual_seed(seed + SHUFFLE_SEED_OFFSET)
        return cls(shuffle=shuffle, augment=generator_for(device, seed + AUGMENT_SEED_OFFSET), shuffle_at_epoch_start=shuffle.get_state())


def checkpoint_state(config: RunConfig, modules: Modules, optimizer: torch.optim.Optimizer, scheduler: Any,
                     state: LoopState, gens: Generators) -> dict[str, Any]:
    """Only tensors and plain types, so it loads with weights_only=True."""
    def cpu_state(module: nn.Module | None) -> dict[str, Tensor]:
        return {} if module is None else {k: v.detach().cpu() for k, v in module.state_dict().items()}

    return {
        "format": runs.CHECKPOINT_FORMAT,
        "config": json.dumps(config.to_json(), sort_keys=True),
        "model": cpu_state(modules.model),
        "projection": cpu_state(modules.projection),
        "mfp_heads": cpu_state(modules.mfp_heads),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epochs_done": state.epochs_done,
        "batch_in_epoch": state.batch_in_epoch,
        "global_step": state.global_step,
        "best_loss": None if math.isinf(state.best_loss) else state.best_loss,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "rng": {"shuffle": gens.shuffle_at_epoch_start.clone(), "augment": gens.augment.get_state(),
                "augment_device": gens.augment.device.type},
    }


def _check_resumable(config: RunConfig, saved: RunConfig, path: Path) -> None:
    """Everything but the epoch count (and the run's name) must match what the checkpoint trained with."""
    def comparable(c: RunConfig) -> dict[str, Any]:
        doc = c.to_json()
        doc["train"] = {k: v for k, v in doc["train"].items() if k not in ("epochs", "patience", "device", "cpu_threads")}
        doc.pop("name", None)
        doc.pop("preset", None)
        return doc

    if comparable(config) != comparable(saved):
        raise UserError(f"{path}: cannot resume with a different configuration (only epochs, patience, device and cpu_threads may change)")


def restore(path: Path, config: RunConfig, modules: Modules, optimizer: torch.optim.Optimizer, scheduler: Any,
            gens: Generators, device: torch.device) -> LoopState:
    saved = runs.load_checkpoint(path)
    _check_resumable(config, runs.checkpoint_config(saved, path), path)
    try:
        modules.model.load_state_dict(saved["model"])
        if modules.projection is not None:
            modules.projection.load_state_dict(saved["projection"])
        if modules.mfp_heads is not None:
            modules.mfp_heads.load_state_dict(saved["mfp_heads"])
        optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise runs.CheckpointError(f"{path}: checkpoint does not match this model ({str(exc).splitlines()[0][:200]})") from None
    scheduler.load_state_dict(saved["scheduler"])
    gens.shuffle.set_state(saved["rng"]["shuffle"])
    gens.shuffle_at_epoch_start = saved["rng"]["shuffle"].clone()
    if saved["rng"].get("augment_device", device.type) == device.type:
        gens.augment.set_state(saved["rng"]["augment"])
    else:  # a CUDA generator's state does not fit a CPU generator: restart the stream, deterministically
        logger.warning("%s: resuming on %s after training on %s; augmentation randomness restarts (not bit-exact)",
                       path, device.type, saved["rng"]["augment_device"])
        gens.augment.manual_seed(config.train.seed + AUGMENT_SEED_OFFSET + int(saved["global_step"]))
    best = saved.get("best_loss")
    return LoopState(
        epochs_done=int(saved["epochs_done"]), batch_in_epoch=int(saved["batch_in_epoch"]),
        global_step=int(saved["global_step"]), best_loss=math.inf if best is None else float(best),
        best_epoch=saved.get("best_epoch"), bad_epochs=int(saved.get("bad_epochs", 0)),
    )


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
class _Sink:
    """Where records go: the caller's callback, the run's metrics file and the result's history."""

    def __init__(self, run_dir: Path | None, on_step: Callable[[TrainEvent], None] | None) -> None:
        self.on_step = on_step
        self.history: list[TrainEvent] = []
        self.writer = runs.MetricsWriter(run_dir) if run_dir is not None else None

    def emit(self, record: TrainEvent) -> None:
        self.history.append(record)
        if self.writer is not None:
            self.writer.write(record.to_json(), flush=not isinstance(record, StepRecord))
        if self.on_step is not None:
            self.on_step(record)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Trainer:
    """One call of train(): holds what the loop's small methods share."""

    def __init__(self, config: RunConfig, data: TrainData, run_dir: Path | None, stop: StopSignal | None) -> None:
        t = config.train
        self.config, self.data, self.run_dir, self.stop = config, data, run_dir, stop
        self.device = select_device(t.device)
        self.amp_dtype = autocast_dtype(self.device, t.precision)
        tensors = data.tensors
        keep = sample_rows(len(tensors), t.max_rows, t.seed)
        if keep is not None:
            tensors = tensors.take(torch.from_numpy(keep))
        split = split_rows(len(tensors), t.val_fraction, t.seed)
        self.train_rows = tensors.take(split.train).to(self.device)
        self.val_rows = tensors.take(split.val).to(self.device)
        self.steps_per_epoch = len(self.train_rows) // t.batch_size
        if self.steps_per_epoch == 0:
            raise UserError(
                f"batch_size={t.batch_size} is larger than the training split ({len(self.train_rows)} of {len(tensors)} rows); "
                f"lower batch_size or use more rows"
            )
        self.n_steps = self.steps_per_epoch * t.epochs
        self.modules = build_modules(config, data.encoder).to(self.device)
        self.optimizer = make_adamw(self.modules, lr=t.lr, weight_decay=t.weight_decay)
        warmup = int(round(t.warmup_frac * self.n_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(self.n_steps, warmup))
        policy = AugmentationPolicy.from_schema(data.schema, data.encoder, config.augment)
        self.objective = Objective(config, data.encoder, policy, self.device, self.amp_dtype)
        self.gens = Generators.seeded(t.seed, self.device)
        self.state = LoopState()
        self.step_seconds = 0.0
        self.step_rows = 0
        self.threads_before = torch.get_num_threads()
        self.tuner: ThreadTuner | None = None
        if self.device.type == "cpu":
            keep_freed_memory_for_reuse()
            if t.cpu_threads > 0:
                torch.set_num_threads(t.cpu_threads)
            else:
                self.tuner = ThreadTuner(self._probe_forward())

    def _probe_forward(self) -> Callable[[], None]:
        """A side-effect-free stand-in for a step: an eval-mode forward pass of a training-sized batch."""
        rows = self.train_rows.take(slice(0, 2 * self.config.train.batch_size))
        x_num, x_cat = self.data.encoder.model_inputs(rows)
        model = self.modules.model

        @torch.no_grad()
        def probe() -> None:
            model.eval()
            try:
                with autocast(self.device, self.amp_dtype):
                    model(x_num, x_cat)
            finally:
                model.train()

        return probe

    def restore_threads(self) -> None:
        torch.set_num_threads(self.threads_before)

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, *, best: bool) -> None:
        if self.run_dir is None:
            return
        ckpt = checkpoint_state(self.config, self.modules, self.optimizer, self.scheduler, self.state, self.gens)
        runs.save_checkpoint(self.run_dir / runs.CHECKPOINT_LAST, ckpt)
        if best:
            runs.save_checkpoint(self.run_dir / runs.CHECKPOINT_BEST, ckpt)

    # -- one step -----------------------------------------------------------------------------
    def step(self, batch: TabularTensors) -> tuple[float, dict[str, float], float]:
        t = self.config.train
        lr = self.scheduler.get_last_lr()[0]
        loss, parts = self.objective(self.modules, batch, self.gens.augment)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = t.grad_clip if t.grad_clip > 0 else math.inf
        norm_value = clip_gradients(self.modules.parameters(), max_norm)
        loss_value = parts.pop("loss")
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            what = "loss" if not math.isfinite(loss_value) else "gradient norm"
            raise TrainingDiverged(
                f"the {what} became {loss_value if what == 'loss' else norm_value} at epoch {self.state.epochs_done + 1}, "
                f"step {self.state.global_step + 1} (lr={lr:.3g}); the run stopped and kept its last good checkpoint; "
                f"try a lower lr or a higher temperature"
            )
        self.optimizer.step()
        self.scheduler.step()
        return loss_value, parts, lr

    # -- validation ---------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> tuple[float | None, dict[str, float], dict[str, float]]:
        """Validation loss and parts (same views every epoch, so epochs compare) and collapse diagnostics."""
        t = self.config.train
        if len(self.val_rows) < 2:
            return None, {}, {}
        self.modules.eval()
        try:
            generator = generator_for(self.device, t.seed + VALIDATION_SEED_OFFSET)
            total, weights, sums = 0.0, 0, collections.defaultdict(float)
            for start in range(0, len(self.val_rows), t.batch_size):
                batch = self.val_rows.take(slice(start, start + t.batch_size))
                if len(batch) < 2:  # NT-Xent needs a negative
                    continue
                _, part_values = self.objective(self.modules, batch, generator)
                loss_value = part_values.pop("loss")
                total += loss_value * len(batch)
                weights += len(batch)
                for name, value in part_values.items():
                    sums[name] += value * len(batch)
            diag_rows = self.val_rows.take(slice(0, DIAGNOSTIC_ROWS))
            emb1, emb2 = self.objective.embeddings_of_views(self.modules, diag_rows, generator)
            collapse = {k: float(v) for k, v in collapse_diagnostics(emb1, emb2).items()}
        finally:
            self.modules.train()
        return total / weights, {k: v / weights for k, v in sums.items()}, collapse

    # -- the whole run ------------------------------------------------------------------------
    def started_record(self) -> RunStarted:
        t = self.config.train
        return RunStarted(
            device=self.device.type, device_name=describe(self.device),
            precision="bf16" if self.amp_dtype == torch.bfloat16 else "fp32", n_epochs=t.epochs,
            steps_per_epoch=self.steps_per_epoch, n_steps=self.n_steps, n_train=len(self.train_rows),
            n_val=len(self.val_rows), batch_size=t.batch_size, start_epoch=self.state.epochs_done,
            start_step=self.state.global_step, time=time.time(),
        )

    def stop_requested(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def run(self, sink: _Sink) -> str:
        """Train until done, stopped or early-stopped; returns "done", "stopped" or "early_stopped"."""
        t = self.config.train
        self.modules.train()
        rates: collections.deque[tuple[int, float]] = collections.deque(maxlen=RATE_WINDOW)
        for epoch in range(self.state.epochs_done, t.epochs):
            epoch_started = time.perf_counter()
            if self.state.batch_in_epoch == 0:
                self.gens.shuffle_at_epoch_start = self.gens.shuffle.get_state()
            else:  # resuming mid-epoch: regenerate the same permutation, then skip the done batches
                self.gens.shuffle.set_state(self.gens.shuffle_at_epoch_start)
            order = torch.randperm(len(self.train_rows), generator=self.gens.shuffle).to(self.device)
            losses: list[float] = []
            part_sums: dict[str, float] = collections.defaultdict(float)
            epoch_rows, epoch_seconds = 0, 0.0
            for b in range(self.state.batch_in_epoch, self.steps_per_epoch):
                if self.stop_requested():
                    self.state.batch_in_epoch = b
                    self.save(best=False)
                    return "stopped"
                if self.tuner is not None:
                    self.tuner.maybe_tune()
                tic = time.perf_counter()
                batch = self.train_rows.take(order[b * t.batch_size : (b + 1) * t.batch_size])
                loss, parts, lr = self.step(batch)
                seconds = time.perf_counter() - tic
                self.state.global_step += 1
                self.state.batch_in_epoch = b + 1
                self.step_seconds += seconds
                self.step_rows += t.batch_size
                epoch_seconds += seconds
                epoch_rows += t.batch_size
                rates.append((t.batch_size, seconds))
                losses.append(loss)
                for name, value in parts.items():
                    part_sums[name] += value
                window_rows, window_s = sum(r for r, _ in rates), sum(s for _, s in rates)
                sink.emit(StepRecord(step=self.state.global_step, epoch=epoch + 1, loss=loss, parts=_frozen(parts), lr=lr,
                                     records_per_s=window_rows / window_s if window_s > 0 else 0.0, time=time.time()))
            self.state.batch_in_epoch = 0
            self.state.epochs_done = epoch + 1
            # A checkpoint at the epoch boundary must replay the *next* epoch's permutation.
            self.gens.shuffle_at_epoch_start = self.gens.shuffle.get_state()
            train_loss = float(np.mean(losses)) if losses else math.nan
            val_loss, val_parts, collapse = self.validate()
            if val_loss is not None and not math.isfinite(val_loss):
                raise TrainingDiverged(f"the validation loss became {val_loss} after epoch {epoch + 1}; the run kept its last good checkpoint")
            monitored = val_loss if val_loss is not None else train_loss
            improved = monitored < self.state.best_loss
            if improved:
                self.state.best_loss, self.state.best_epoch, self.state.bad_epochs = monitored, epoch + 1, 0
            else:
                self.state.bad_epochs += 1
            self.save(best=improved)
            parts_shown = val_parts if val_loss is not None else {k: v / max(1, len(losses)) for k, v in part_sums.items()}
            sink.emit(EpochRecord(
                epoch=epoch + 1, step=self.state.global_step, train_loss=train_loss, val_loss=val_loss,
                parts=_frozen(parts_shown), collapse=_frozen(collapse),
                records_per_s=epoch_rows / epoch_seconds if epoch_seconds > 0 else 0.0,
                seconds=time.perf_counter() - epoch_started, best=improved, gpu_mem_mb=gpu_memory_mb(self.device),
                cpu_threads=torch.get_num_threads() if self.device.type == "cpu" else None,
                time=time.time(),
            ))
            self._update_status()
            if t.patience > 0 and self.state.bad_epochs >= t.patience and epoch + 1 < t.epochs:
                logger.info("early stopping after epoch %d: no improvement for %d epochs", epoch + 1, t.patience)
                return "early_stopped"
        return "done"

    def records_per_s(self) -> float:
        return self.step_rows / self.step_seconds if self.step_seconds > 0 else 0.0

    def _update_status(self, **extra: Any) -> None:
        if self.run_dir is None:
            return
        runs.write_status(
            self.run_dir, epochs_done=self.state.epochs_done, global_step=self.state.global_step,
            best_val_loss=None if math.isinf(self.state.best_loss) else self.state.best_loss,
            best_epoch=self.state.best_epoch, records_per_s=self.records_per_s() or None, **extra,
        )


def _resume_checkpoint(resume_from: str | os.PathLike | None) -> Path | None:
    """A checkpoint file, or a run folder (its checkpoint_last.pt)."""
    if resume_from is None:
        return None
    path = Path(resume_from)
    return path / runs.CHECKPOINT_LAST if path.is_dir() else path


def train(
    config: RunConfig,
    data: TrainData,
    *,
    run_dir: str | os.PathLike | None = None,
    on_step: Callable[[TrainEvent], None] | None = None,
    stop: StopSignal | None = None,
    resume_from: str | os.PathLike | None = None,
) -> TrainResult:
    """Train a TabularResNet on ``data`` with the self-supervised objective of ``config``.

    ``run_dir`` (from runs.create_run) receives metrics.jsonl, checkpoints and status.json; None
    trains in memory only. ``on_step`` gets a RunStarted, then a StepRecord per step and an
    EpochRecord per epoch, on the calling thread. ``stop`` is checked before every step: once
    set, at most the step in flight finishes, a checkpoint is written and the result says
    "stopped". ``resume_from`` (a checkpoint, or a run folder meaning its checkpoint_last.pt)
    continues exactly where that checkpoint left off. A NaN or infinite loss returns status
    "failed" with the message in ``error``; any other exception marks the run failed and propagates.
    """
    run_dir = Path(run_dir) if run_dir is not None else None
    started = time.perf_counter()
    sink: _Sink | None = None
    trainer: _Trainer | None = None
    try:
        trainer = _Trainer(config, data, run_dir, stop)
        checkpoint = _resume_checkpoint(resume_from)
        if checkpoint is not None:
            trainer.state = restore(checkpoint, config, trainer.modules, trainer.optimizer, trainer.scheduler, trainer.gens, trainer.device)
            if run_dir is not None:  # drop what the interrupted run logged after its checkpoint
                kept = runs.metrics_up_to(runs.read_metrics(run_dir), global_step=trainer.state.global_step, epochs_done=trainer.state.epochs_done)
                runs.rewrite_metrics(run_dir, kept)
        sink = _Sink(run_dir, on_step)
        _mark_running(run_dir, trainer, data, resumed=checkpoint is not None)
        sink.emit(trainer.started_record())
        outcome = trainer.run(sink)
        status, error = ("stopped" if outcome == "stopped" else "done"), None
    except TrainingDiverged as exc:
        logger.error("training failed: %s", exc)
        status, error, outcome = "failed", str(exc), "failed"
    except BaseException as exc:
        if sink is not None:
            sink.close()
        if run_dir is not None:
            message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            runs.write_status(run_dir, status=runs.RunStatus.FAILED.value, error=message, finished=runs.now_iso())
        raise
    finally:
        if sink is not None:
            sink.close()
        if trainer is not None:
            trainer.restore_threads()
    result = TrainResult(
        status=status,
        epochs_done=trainer.state.epochs_done,
        n_epochs=config.train.epochs,
        global_step=trainer.state.global_step,
        best_val_loss=None if math.isinf(trainer.state.best_loss) else trainer.state.best_loss,
        best_epoch=trainer.state.best_epoch,
        final_train_loss=_last_train_loss(sink.history),
        records_per_s=trainer.records_per_s(),
        seconds=time.perf_counter() - started,
        device=describe(trainer.device),
        run_dir=run_dir,
        error=error,
        early_stopped=outcome == "early_stopped",
        history=tuple(sink.history),
    )
    if run_dir is not None:
        trainer._update_status(status=status, error=error, finished=runs.now_iso(), early_stopped=result.early_stopped)
    return result


def _mark_running(run_dir: Path | None, trainer: _Trainer, data: TrainData, *, resumed: bool) -> None:
    if run_dir is None:
        return
    previous = runs.read_status(run_dir)
    runs.write_status(
        run_dir, status=runs.RunStatus.RUNNING.value, error=None, finished=None, pid=os.getpid(),
        device=describe(trainer.device), started=previous.get("started") or runs.now_iso(),
        resumed=runs.now_iso() if resumed else previous.get("resumed"), n_epochs=trainer.config.train.epochs,
        source=data.source or previous.get("source", ""), n_rows=data.n_rows,
        precision="bf16" if trainer.amp_dtype == torch.bfloat16 else "fp32",
    )


def _last_train_loss(history: Sequence[TrainEvent]) -> float | None:
    for record in reversed(history):
        if isinstance(record, EpochRecord):
            return record.train_loss
        if isinstance(record, StepRecord):
            return record.loss
    return None
