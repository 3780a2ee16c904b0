"""AppTest fixtures: the app pointed at a small generated demo file and a temporary runs folder."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.fixture
def app_env(small_demo_parquet, tmp_path, monkeypatch):
    monkeypatch.setenv("OCSF_STUDIO_DEMO", str(small_demo_parquet))
    monkeypatch.setenv("OCSF_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("OCSF_STUDIO_NO_WARMUP", "1")
    # st.cache_resource objects outlive an AppTest instance within one pytest process.
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


@pytest.fixture
def app(app_env) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at
