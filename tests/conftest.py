"""Shared fixtures: small generated OCSF data, written once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
TUTORIAL_PARQUET = ROOT / "data" / "tutorial" / "ocsf_logs.parquet"


@pytest.fixture(scope="session")
def small_events_file(tmp_path_factory) -> Path:
    """3,000 generated nested OCSF events as JSONL (the demo's shape, smaller)."""
    from engine.sample import generate_file

    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    generate_file(path, 3_000, 7)
    return path


@pytest.fixture(scope="session")
def small_demo_parquet(tmp_path_factory) -> Path:
    from engine.sample import generate_file

    path = tmp_path_factory.mktemp("demo") / "ocsf_demo.parquet"
    generate_file(path, 3_000, 0)
    return path
