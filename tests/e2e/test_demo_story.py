"""The real browser: a new user clicks "Load demo dataset" and sees the schema table."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e


def _load_demo(page, server) -> None:
    """A new user's first step: Home, one click on "Load demo dataset", the Data page with its schema."""
    page.goto(server)
    expect(page.get_by_role("heading", name="OCSF Embedding Studio")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Load demo dataset").click()
    expect(page.get_by_role("heading", name="Schema")).to_be_visible(timeout=60_000)


def _lasso_middle(page, chart) -> None:
    """Drag a lasso around the middle 60% of the plot area."""
    box = chart.locator(".nsewdrag").first.bounding_box()
    cx, cy, w, h = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"], box["height"]
    page.mouse.move(cx - w * 0.3, cy - h * 0.3)
    page.mouse.down()
    for x, y in ((cx + w * 0.3, cy - h * 0.3), (cx + w * 0.3, cy + h * 0.3), (cx - w * 0.3, cy + h * 0.3),
                 (cx - w * 0.3, cy - h * 0.25)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def _steps_done(page) -> int:
    text = page.locator('[data-testid="stProgress"]').first.inner_text()
    return int(re.search(r"step ([\d,]+) of", text).group(1).replace(",", ""))


def test_load_demo_dataset_shows_the_schema(server, page):
    _load_demo(page, server)
    expect(page.get_by_text("Rows kept")).to_be_visible()
    # The schema editor is a glide data grid (canvas); its frame is in the DOM.
    expect(page.locator('[data-testid="stDataFrame"]').last).to_be_visible()
    page.get_by_role("heading", name="Schema").scroll_into_view_if_needed()
    shot = screenshot(page, "01_data_schema")
    assert shot.stat().st_size > 10_000
    assert page.locator('[data-testid="stException"]').count() == 0


def test_data_then_augmentation_shows_highlighted_preview(server, page):
    _load_demo(page, server)
    page.get_by_role("link", name="Augmentation").click()
    expect(page.get_by_role("heading", name="Original and two augmented views")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Changed cells in protected fields")).to_be_visible(timeout=60_000)
    # The highlighted (changed) cells are styled by the pandas Styler and rendered in the grid.
    toggle = page.get_by_text("Show only the fields that changed")
    toggle.click()
    page.wait_for_timeout(1500)
    page.get_by_role("heading", name="Original and two augmented views").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    screenshot(page, "02_augmentation_preview")
    page.get_by_text("Changed cells in protected fields").scroll_into_view_if_needed()
    screenshot(page, "03_augmentation_change_rates")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_quick_demo_training_shows_live_curves_and_stops(server, page):
    _load_demo(page, server)
    page.get_by_role("link", name="Training").click()
    expect(page.get_by_role("button", name="Start training")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Start training").click()
    # The live chart appears and refreshes on its own (the fragment polls the job once a second).
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(chart).to_be_visible(timeout=90_000)
    expect(page.get_by_text(re.compile(r"running · epoch"))).to_be_visible(timeout=60_000)
    before = _steps_done(page)
    page.wait_for_timeout(3_000)
    after = _steps_done(page)  # the page refreshed by itself: no click, no reload
    screenshot(page, "04_training_live")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Stopped after")).to_be_visible(timeout=60_000)
    screenshot(page, "05_training_stopped")
    assert after > before
    assert page.locator('[data-testid="stException"]').count() == 0


def test_whole_demo_story_train_explore_and_select(server, page):
    _load_demo(page, server)
    page.get_by_text("Keep the outcome family out of the model inputs").click()  # honest separation, not by construction
    page.wait_for_timeout(1000)
    page.get_by_role("link", name="Training").click()
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Done:")).to_be_visible(timeout=240_000)
    screenshot(page, "06_training_done")

    page.get_by_role("link", name="Explorer").click()
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(chart).to_be_visible(timeout=120_000)
    expect(page.get_by_text("events shown").first).to_be_visible()
    screenshot(page, "07_explorer_map")
    verdict = page.locator('[data-testid="stMarkdown"]', has_text=re.compile("Success and Failure"))
    expect(verdict).to_be_visible(timeout=240_000)  # the plain sentence above the scorecard table
    verdict.scroll_into_view_if_needed()
    screenshot(page, "08_explorer_scorecard")

    # Once the UMAP map has replaced the PCA picture (the page stops polling), lasso a region in its
    # middle: the selected events fill a table.
    umap_caption = page.get_by_text(re.compile(r"UMAP map · [\d,]+ of [\d,]+ events shown"))
    expect(umap_caption.first).to_be_visible(timeout=240_000)
    expect(umap_caption).to_have_count(1, timeout=60_000)  # the last rerun has settled: one map on the page
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(1)
    page.wait_for_timeout(2_000)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.scroll_into_view_if_needed()
    _lasso_middle(page, chart)
    expect(page.get_by_text("events selected")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Export CSV")).to_be_visible()
    page.get_by_text("events selected").scroll_into_view_if_needed()
    screenshot(page, "09_explorer_selection")
    assert page.locator('[data-testid="stException"]').count() == 0
