"""Runs as tables: the run list and the config differences between runs (pure pandas, no streamlit)."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import pandas as pd

from engine.config import RunConfig
from engine.runs import RunInfo


def flat_config(config: RunConfig) -> dict[str, object]:
    """Every config field by its plain name (the names `--set` takes)."""
    out: dict[str, object] = {"preset": config.preset}
    for section in (config.model, config.augment, config.train):
        out.update(dataclasses.asdict(section))
    return out


def runs_frame(runs: Sequence[RunInfo]) -> pd.DataFrame:
    rows = []
    for info in runs:
        cfg = info.config
        rows.append({
            "run": info.run_id, "name": info.name, "status": info.status,
            "epochs": f"{info.epochs_done}/{info.n_epochs if info.n_epochs is not None else '?'}",
            "best val loss": info.best_val_loss, "records/s": info.records_per_s, "device": info.device,
            "objective": cfg.train.objective if cfg else None, "d_model": cfg.model.d_model if cfg else None,
            "blocks": cfg.model.n_blocks if cfg else None, "rows": info.n_rows, "source": info.source,
            "error": info.error or "",
        })
    return pd.DataFrame(rows)


def config_diff(configs: dict[str, RunConfig]) -> pd.DataFrame:
    """Fields whose value differs between the given runs: a row per field, a column per run."""
    flats = {name: flat_config(cfg) for name, cfg in configs.items()}
    if len(flats) < 2:
        return pd.DataFrame()
    fields = list(next(iter(flats.values())))
    differing = [f for f in fields if len({repr(flat[f]) for flat in flats.values()}) > 1]
    return pd.DataFrame({name: [str(flat[f]) for f in differing] for name, flat in flats.items()}, index=differing)
