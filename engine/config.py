"""One typed configuration for a run: the only place hyperparameter defaults live.

Frozen dataclasses in the style of nanoGPT's ``GPTConfig``, validated on construction with
messages that name the bad value, serialised to JSON in every run folder and checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from engine.errors import UserError, require

OBJECTIVES = ("contrastive", "mfp", "both")
DEVICES = ("auto", "cpu", "cuda", "mps")
NORMS = ("batch", "layer")
PRECISIONS = ("auto", "fp32", "bf16")  # "auto": bf16 autocast where it pays (engine.device)


class ConfigError(UserError):
    """A configuration value is out of range or of the wrong kind."""


def _check(ok: bool, message: str) -> None:
    require(ok, message, ConfigError)


@dataclass(frozen=True)
class ModelConfig:
    """TabularResNet shape (Part 2 of the tutorial series)."""

    d_model: int = 256
    n_blocks: int = 6
    dropout: float = 0.1
    norm: str = "batch"  # "batch" (the tutorial's BatchNorm1d) or "layer"

    def __post_init__(self) -> None:
        _check(isinstance(self.d_model, int) and self.d_model >= 8, f"d_model must be an integer >= 8, got d_model={self.d_model!r}")
        _check(self.d_model % 4 == 0, f"d_model must be a multiple of 4, got d_model={self.d_model!r}")
        _check(isinstance(self.n_blocks, int) and self.n_blocks >= 0, f"n_blocks must be a non-negative integer, got n_blocks={self.n_blocks!r}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got dropout={self.dropout!r}")
        _check(self.norm in NORMS, f"norm must be one of {NORMS}, got norm={self.norm!r}")


@dataclass(frozen=True)
class AugmentConfig:
    """Global augmentation strength; per-field policies live in the Schema."""

    noise_level: float = 0.10  # std of the multiplicative numeric jitter: x * (1 + e), e ~ N(0, noise_level)
    swap_prob: float = 0.15  # per-cell probability a swappable categorical takes a value from the column's distribution
    mask_prob: float = 0.10  # per-cell probability a maskable categorical becomes UNKNOWN
    time_jitter_s: float = 5.0  # std of the timestamp jitter, in seconds

    def __post_init__(self) -> None:
        _check(0.0 <= self.noise_level <= 1.0, f"noise_level must be in [0, 1], got noise_level={self.noise_level!r}")
        _check(0.0 <= self.swap_prob <= 1.0, f"swap_prob must be in [0, 1], got swap_prob={self.swap_prob!r}")
        _check(0.0 <= self.mask_prob <= 1.0, f"mask_prob must be in [0, 1], got mask_prob={self.mask_prob!r}")
        _check(0.0 <= self.time_jitter_s <= 3600.0, f"time_jitter_s must be in [0, 3600], got time_jitter_s={self.time_jitter_s!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and objective settings."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    temperature: float = 0.07
    objective: str = "both"  # contrastive | mfp | both
    mfp_weight: float = 0.5  # weight of the MFP loss in "both": loss = (1 - w) * contrastive + w * mfp
    mask_ratio: float = 0.15
    mfp_cat_weight: float = 0.5  # share of categorical cross-entropy vs numeric MSE inside MFP
    val_fraction: float = 0.2
    patience: int = 5  # early stopping on validation loss; 0 disables
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    max_rows: int = 0  # 0 = all rows; otherwise a seeded sample of this many rows
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; see engine.device)
    cpu_threads: int = 0  # torch intra-op threads on the CPU; 0 = timed at run time (engine.device.ThreadTuner)

    def __post_init__(self) -> None:
        _check(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be an integer >= 1, got epochs={self.epochs!r}")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 2, f"batch_size must be an integer >= 2, got batch_size={self.batch_size!r}")
        _check(0.0 < self.lr <= 1.0, f"lr must be in (0, 1], got lr={self.lr!r}")
        _check(self.weight_decay >= 0.0, f"weight_decay must be >= 0, got weight_decay={self.weight_decay!r}")
        _check(0.0 <= self.warmup_frac < 1.0, f"warmup_frac must be in [0, 1), got warmup_frac={self.warmup_frac!r}")
        _check(self.temperature > 0.0, f"temperature must be positive, got temperature={self.temperature!r}")
        _check(self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got objective={self.objective!r}")
        _check(0.0 <= self.mfp_weight <= 1.0, f"mfp_weight must be in [0, 1], got mfp_weight={self.mfp_weight!r}")
        _check(0.0 < self.mask_ratio < 1.0, f"mask_ratio must be in (0, 1), got mask_ratio={self.mask_ratio!r}")
        _check(0.0 <= self.mfp_cat_weight <= 1.0, f"mfp_cat_weight must be in [0, 1], got mfp_cat_weight={self.mfp_cat_weight!r}")
        _check(0.0 <= self.val_fraction < 0.9, f"val_fraction must be in [0, 0.9), got val_fraction={self.val_fraction!r}")
        _check(isinstance(self.patience, int) and self.patience >= 0, f"patience must be an integer >= 0, got patience={self.patience!r}")
        _check(self.grad_clip >= 0.0, f"grad_clip must be >= 0, got grad_clip={self.grad_clip!r}")
        _check(isinstance(self.seed, int), f"seed must be an integer, got seed={self.seed!r}")
        _check(self.device in DEVICES, f"device must be one of {DEVICES}, got device={self.device!r}")
        _check(isinstance(self.max_rows, int) and self.max_rows >= 0, f"max_rows must be an integer >= 0, got max_rows={self.max_rows!r}")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got precision={self.precision!r}")
        _check(isinstance(self.cpu_threads, int) and self.cpu_threads >= 0, f"cpu_threads must be an integer >= 0, got cpu_threads={self.cpu_threads!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs besides the data and the schema."""

    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = ""
    preset: str = "custom"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        _check(not unknown, f"unknown config section(s): {sorted(unknown)}")
        return cls(
            model=_section(ModelConfig, data.get("model", {})),
            augment=_section(AugmentConfig, data.get("augment", {})),
            train=_section(TrainConfig, data.get("train", {})),
            name=str(data.get("name", "")),
            preset=str(data.get("preset", "custom")),
        )

    def with_overrides(self, overrides: Mapping[str, Any]) -> "RunConfig":
        """Apply ``--set key=value`` pairs by plain field name (``epochs=3``, ``d_model=128``, ``preset=quick``)."""
        config = self
        if "preset" in overrides:
            config = preset(str(overrides["preset"]), base=config)
        sections = {"model": config.model, "augment": config.augment, "train": config.train}
        top: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key == "preset":
                continue
            if key == "name":
                top["name"] = str(raw)
                continue
            owner = _owner_of(key)
            section = sections[owner]
            sections[owner] = replace(section, **{key: _coerce(section, key, raw)})
        return replace(config, **sections, **top)


SECTION_TYPES = {"model": ModelConfig, "augment": AugmentConfig, "train": TrainConfig}


def _owner_of(key: str) -> str:
    for owner, kind in SECTION_TYPES.items():
        if key in {f.name for f in fields(kind)}:
            return owner
    known = sorted(f.name for kind in SECTION_TYPES.values() for f in fields(kind))
    raise ConfigError(f"unknown config field {key!r}; known fields: {', '.join(known)}")


def _coerce(section: Any, key: str, raw: Any) -> Any:
    current = getattr(section, key)
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(current, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a {type(current).__name__}, got {key}={raw!r}") from None
    return raw


def _section(kind: type, data: Mapping[str, Any]) -> Any:
    names = {f.name for f in fields(kind)}
    unknown = set(data) - names
    _check(not unknown, f"unknown {kind.__name__} field(s): {sorted(unknown)}")
    return kind(**data)


PRESETS: dict[str, dict[str, Any]] = {
    # Finishes on the 72,000-event demo data in about a minute on a 2-core CPU.
    # Measured with `python -m engine train DEMO --set preset=quick` while others shared the CPU:
    # 5 epochs took 63 s end to end (load, encode, train, checkpoints), so 4 (validation loss
    # 0.168 after 4 epochs, 0.162 after 5).
    "quick": {"d_model": 128, "n_blocks": 3, "dropout": 0.0, "epochs": 4, "batch_size": 512, "lr": 2e-3,
              "max_rows": 0, "patience": 0},
    # The tutorial series' defaults (Part 4).
    "tutorial": {"d_model": 256, "n_blocks": 6, "dropout": 0.1, "batch_size": 256, "lr": 1e-3,
                 "weight_decay": 1e-4, "temperature": 0.07, "epochs": 10},
}
PRESET_LABELS = {"quick": "Quick demo", "tutorial": "Tutorial defaults"}


def preset(name: str, base: RunConfig | None = None) -> RunConfig:
    """A RunConfig with a named preset applied on top of ``base`` (defaults when None)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    config = replace(base or RunConfig(), preset=name)
    return config.with_overrides(PRESETS[name])
