"""AppTest: the Augmentation page shows policies, a highlighted preview, and guards protected fields."""
from __future__ import annotations

from engine.schema import Policy


def _load_demo_then_open_augmentation(app):
    [button] = [b for b in app.button if b.label == "Load demo dataset"]
    button.click()
    app.run()
    app.switch_page("pages/augmentation.py")
    app.run()
    assert not app.exception, app.exception


def test_page_asks_for_data_first(app):
    app.switch_page("pages/augmentation.py")
    app.run()
    assert any("Load events on the Data page first" in i.value for i in app.info)


def test_policies_preview_and_no_protected_changes(app):
    _load_demo_then_open_augmentation(app)
    headers = [s.value for s in app.subheader]
    assert headers[:3] == ["Strength", "Field policies", "Original and two augmented views"]
    policy_table = app.dataframe[0].value
    status = policy_table.set_index("field").loc["status_id"]
    assert status["policy"] == "protected" and "protected" in status["badge"]
    assert "success into a failure" in status["reason"]
    assert any(p == "jitter" for p in policy_table["policy"])
    metric = {m.label: m.value for m in app.metric}
    assert metric["Changed cells in protected fields"] == "0"


def test_strength_slider_is_saved_in_the_schema(app):
    _load_demo_then_open_augmentation(app)
    [noise] = [s for s in app.slider if s.label == "Numeric noise level"]
    noise.set_value(0.05)
    app.run()
    assert not app.exception
    assert app.session_state["schema"].augment.noise_level == 0.05


def test_overriding_a_protection_needs_confirmation(app):
    from ui.augment_view import apply_changes

    _load_demo_then_open_augmentation(app)
    # Simulate what the editor does once the analyst confirmed: status_id becomes swappable.
    schema = apply_changes(app.session_state["schema"], {"status_id": Policy.SWAP})
    app.session_state["schema"] = schema
    app.run()
    assert not app.exception
    assert any("Protection overridden for status_id" in e.value for e in app.error)
    metric = {m.label: m.value for m in app.metric}
    assert int(metric["Changed cells in protected fields"]) > 0


def test_page_works_on_the_tutorial_series_real_parquet(app):
    from tests.conftest import TUTORIAL_PARQUET

    app.switch_page("pages/data.py")
    app.run()
    app.text_input[0].input(str(TUTORIAL_PARQUET))
    [submit] = [b for b in app.button if b.label == "Load file"]
    submit.click()
    app.run()
    app.switch_page("pages/augmentation.py")
    app.run()
    assert not app.exception and not app.error
    policies = app.dataframe[0].value.set_index("field")
    assert policies.loc["status_id", "policy"] == "protected" and policies.loc["duration", "policy"] == "jitter"
    assert {m.label: m.value for m in app.metric}["Changed cells in protected fields"] == "0"
    app.radio[0].set_value("By filter")  # pick events by a column's value: failures only
    app.run()
    assert not app.exception and not app.error
