"""Augmentation: protected fields never change, strengths match their settings, preview = training path."""
from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from engine.augment import (
    AugmentationPolicy,
    _alias_table,
    changed_cells,
    protected_changes,
    week_shift,
)
from engine.config import AugmentConfig
from engine.errors import UserError
from engine.features import UNKNOWN_INDEX, WEEK_S, FeatureEncoder, TabularTensors
from engine.schema import POLICIES_FOR_TYPE, ColumnSpec, ColumnType, Policy, Role, Schema

MONDAY_0600_UTC_MS = 1_704_088_800_000  # 2024-01-01 (a Monday) 06:00:00 UTC
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------------------------------------
# Generated events with a known schema
# ---------------------------------------------------------------------------------------------
def spec(name, type, role, policy, protected=False, **kw) -> ColumnSpec:
    return ColumnSpec(name, type, role, policy, f"test column {name}", protected=protected, **kw)


SCHEMA = Schema(columns=(
    spec("time", ColumnType.TIMESTAMP, Role.TIME, Policy.TIME_JITTER),
    spec("status_id", ColumnType.CATEGORICAL, Role.OUTCOME, Policy.PROTECTED, protected=True, outcome_family=True),
    spec("activity_id", ColumnType.CATEGORICAL, Role.CLASSIFICATION, Policy.PROTECTED, protected=True),
    spec("actor.user.name", ColumnType.CATEGORICAL, Role.IDENTITY, Policy.PROTECTED, protected=True),
    spec("http_request.user_agent", ColumnType.CATEGORICAL, Role.CONTEXT, Policy.SWAP),
    spec("http_request.url.path", ColumnType.CATEGORICAL, Role.CONTEXT, Policy.MASK),
    spec("traffic.bytes_out", ColumnType.NUMERIC, Role.MEASURE, Policy.JITTER, heavy_tailed=True),
    spec("http_response.latency", ColumnType.NUMERIC, Role.MEASURE, Policy.JITTER),
    spec("http_response.code", ColumnType.NUMERIC, Role.OUTCOME, Policy.PROTECTED, protected=True, outcome_family=True),
    spec("_label.anomaly", ColumnType.LABEL, Role.LABEL, Policy.NONE),
))
PROTECTED_FIELDS = ["status_id", "activity_id", "actor.user.name", "http_response.code"]


def events(n: int = 2_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bytes_out = np.exp(rng.normal(7, 2, n)).round()
    bytes_out[rng.random(n) < 0.05] = 0.0
    latency = rng.normal(120, 15, n)
    latency[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "time": MONDAY_0600_UTC_MS + rng.integers(0, 14 * 86_400_000, n),
        "status_id": rng.choice([1, 2], n, p=[0.9, 0.1]),
        "activity_id": rng.choice([1, 2, 3], n),
        "actor.user.name": rng.choice(["alice", "bob", "carol", "dave"], n),
        # one value is rarer than min_frequency (5): the vocabulary maps it to UNKNOWN
        "http_request.user_agent": np.where(np.arange(n) == 3, "rare-bot/0.1",
                                            rng.choice(["curl", "firefox", "chrome"], n, p=[0.5, 0.3, 0.2])),
        "http_request.url.path": rng.choice(["/a", "/b", "/c", "/d"], n),
        "traffic.bytes_out": bytes_out,
        "http_response.latency": latency,
        "http_response.code": rng.choice([200, 404, 504], n, p=[0.9, 0.07, 0.03]),
        "_label.anomaly": rng.choice(["yes", "no"], n),
    })


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return events()


@pytest.fixture(scope="module")
def encoder(data) -> FeatureEncoder:
    return FeatureEncoder(SCHEMA).fit(data)


@pytest.fixture(scope="module")
def policy(encoder) -> AugmentationPolicy:
    return AugmentationPolicy.from_schema(SCHEMA, encoder)


def column(t: TabularTensors, encoder: FeatureEncoder, name: str) -> torch.Tensor:
    for group, names in (("numeric", encoder.numeric_columns_), ("categorical", encoder.categorical_columns_),
                         ("time", encoder.time_columns_)):
        if name in names:
            return getattr(t, group)[:, names.index(name)]
    raise KeyError(name)


def bits(x: torch.Tensor) -> torch.Tensor:
    """Bit patterns, so NaN == NaN and -0.0 != 0.0: "unchanged" means exactly the same float."""
    return x.contiguous().view(torch.int32) if x.dtype == torch.float32 else x


def constant_batch(n: int, *, numeric: float = 100.0, time: float = 3_600.0) -> TabularTensors:
    """n copies of one event, in the encoder's layout for SCHEMA (indices 2.. are vocabulary values)."""
    return TabularTensors(
        numeric=torch.full((n, 3), numeric), categorical=torch.full((n, 5), 2, dtype=torch.int64),
        time=torch.full((n, 1), time))


# ---------------------------------------------------------------------------------------------
# Protected fields never change (property test)
# ---------------------------------------------------------------------------------------------
@st.composite
def frames_and_policies(draw):
    """A random event table (tensor level, edge values included), its schema, probabilities and policies."""
    n_rows = draw(st.integers(0, 40))
    groups = {ColumnType.NUMERIC: draw(st.integers(0, 4)), ColumnType.CATEGORICAL: draw(st.integers(0, 4)),
              ColumnType.TIMESTAMP: draw(st.integers(0, 2))}
    specs, probs = [], {}
    for type, count in groups.items():
        for j in range(count):
            name = f"{type.value}{j}"
            protected = draw(st.booleans())
            allowed = (Policy.PROTECTED, Policy.NONE) if protected else POLICIES_FOR_TYPE[type]
            role = draw(st.sampled_from([Role.OUTCOME, Role.CLASSIFICATION, Role.IDENTITY, Role.CONTEXT]))
            specs.append(spec(name, type, role, draw(st.sampled_from(allowed)), protected=protected))
            if type == ColumnType.CATEGORICAL:
                weights = draw(st.lists(st.floats(0, 10), min_size=1, max_size=6))
                probs[name] = np.array([0.0, *weights])
    floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
    widths = [groups[t] for t in (ColumnType.NUMERIC, ColumnType.CATEGORICAL, ColumnType.TIMESTAMP)]
    numeric = draw(st.lists(floats, min_size=n_rows * widths[0], max_size=n_rows * widths[0]))
    codes = draw(st.lists(st.integers(1, 6), min_size=n_rows * widths[1], max_size=n_rows * widths[1]))
    times = draw(st.lists(st.one_of(st.floats(0, WEEK_S, exclude_max=True, width=32), st.just(math.nan)),
                          min_size=n_rows * widths[2], max_size=n_rows * widths[2]))
    batch = TabularTensors(
        numeric=torch.tensor(numeric, dtype=torch.float32).reshape(n_rows, widths[0]),
        categorical=torch.tensor(codes, dtype=torch.int64).reshape(n_rows, widths[1]),
        time=torch.tensor(times, dtype=torch.float32).reshape(n_rows, widths[2]))
    cfg = AugmentConfig(noise_level=draw(st.floats(0, 1)), swap_prob=draw(st.floats(0, 1)),
                        mask_prob=draw(st.floats(0, 1)), time_jitter_s=draw(st.floats(0, 3600)))
    names = {t: [s.name for s in specs if s.type == t] for t in groups}
    stand_in = SimpleNamespace(numeric_columns_=names[ColumnType.NUMERIC],
                               categorical_columns_=names[ColumnType.CATEGORICAL],
                               time_columns_=names[ColumnType.TIMESTAMP], category_probs_=probs)
    return Schema(columns=tuple(specs), augment=cfg), stand_in, batch, draw(st.integers(0, 2**31))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_and_policies())
def test_protected_fields_never_change_for_any_data_and_policy(case):
    schema, stand_in, batch, seed = case
    policy = AugmentationPolicy.from_schema(schema, stand_in)
    views = policy.views(batch, torch.Generator().manual_seed(seed))
    for view in views:
        for group, names in (("numeric", stand_in.numeric_columns_), ("categorical", stand_in.categorical_columns_),
                             ("time", stand_in.time_columns_)):
            for j, name in enumerate(names):
                if policy[name].protected:
                    assert torch.equal(bits(getattr(view, group)[:, j]), bits(getattr(batch, group)[:, j])), name
        assert 0 not in view.categorical  # MASK/PAD is never produced
    assert protected_changes(policy.diagnostics(batch, seed)) == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n_rows=st.integers(1, 30), data_seed=st.integers(0, 1_000),
       strength=st.floats(0.05, 1.0))
def test_protected_fields_never_change_in_the_preview(encoder, seed, n_rows, data_seed, strength):
    cfg = AugmentConfig(noise_level=strength, swap_prob=strength, mask_prob=strength, time_jitter_s=3600 * strength)
    policy = AugmentationPolicy.from_schema(SCHEMA, encoder, cfg)
    rows = events(n_rows, data_seed)
    preview = policy.preview(rows, seed)
    for name in PROTECTED_FIELDS:
        assert not preview.changed_mask[name].any()
        assert preview.view1[name].tolist() == preview.original[name].tolist()
        assert preview.view2[name].tolist() == preview.original[name].tolist()


def test_protected_changes_count_only_after_an_explicit_override(policy, encoder, data, caplog):
    t = encoder.transform(data)
    assert protected_changes(policy.diagnostics(t, seed=1)) == 0
    with caplog.at_level(logging.WARNING, logger="engine.augment"):
        unsafe = policy.with_policy("actor.user.name", Policy.SWAP)
        diags = unsafe.diagnostics(t, seed=1)
    assert unsafe["actor.user.name"].overridden and not unsafe["actor.user.name"].safe
    assert not policy["actor.user.name"].overridden  # the original policy object is unchanged
    assert protected_changes(diags) > 0
    assert protected_changes(diags) == next(d.changed_cells for d in diags if d.name == "actor.user.name")
    assert "overrode" in unsafe["actor.user.name"].reason
    assert any("protected" in r.message for r in caplog.records)


def test_with_policy_rejects_a_policy_the_field_type_cannot_take(policy):
    with pytest.raises(UserError, match="does not apply"):
        policy.with_policy("traffic.bytes_out", Policy.SWAP)
    with pytest.raises(UserError, match="not a model input"):
        policy.with_policy("_label.anomaly", Policy.SWAP)
    with pytest.raises(UserError, match="policy must be one of"):
        policy.with_policy("traffic.bytes_out", "shuffle")


def test_fields_carry_policy_protection_and_a_reason(policy):
    fields = {f.name: f for f in policy.fields}
    assert [f.name for f in policy.fields] == [n for n in SCHEMA.names if n in fields]  # schema order, inputs only
    assert "_label.anomaly" not in fields
    assert fields["status_id"].reason == "status_id decides the outcome: changing it turns a success into a failure"
    assert "kind of event" in fields["activity_id"].reason
    assert "false associations" in fields["actor.user.name"].reason
    assert "10%" in fields["traffic.bytes_out"].reason
    assert "15%" in fields["http_request.user_agent"].reason
    assert "UNKNOWN" in fields["http_request.url.path"].reason
    assert "seconds" in fields["time"].reason
    assert all(f.protected and f.safe for f in fields.values() if f.name in PROTECTED_FIELDS)
    assert not any(f.protected for f in fields.values() if f.name not in PROTECTED_FIELDS)


def test_to_schema_saves_what_was_previewed(policy, encoder):
    cfg = AugmentConfig(noise_level=0.05, swap_prob=0.2)
    tuned = policy.with_config(cfg).with_policy("http_request.user_agent", Policy.MASK)
    saved = Schema.from_json(json.loads(json.dumps(tuned.to_schema().to_json())))
    assert saved.augment == cfg
    assert saved["http_request.user_agent"].policy == Policy.MASK and saved["http_request.user_agent"].user_override
    reloaded = AugmentationPolicy.from_schema(saved, encoder)
    assert [(f.name, f.policy) for f in reloaded.fields] == [(f.name, f.policy) for f in tuned.fields]
    batch = encoder.transform(events(50))
    for a, b in zip(reloaded.views(batch, torch.Generator().manual_seed(3)),
                    tuned.views(batch, torch.Generator().manual_seed(3))):
        assert torch.equal(bits(a.numeric), bits(b.numeric)) and torch.equal(a.categorical, b.categorical)


# ---------------------------------------------------------------------------------------------
# Strengths match their settings
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise_level", [0.05, 0.10, 0.15])
def test_numeric_jitter_is_multiplicative_with_the_configured_size(encoder, noise_level):
    policy = AugmentationPolicy.from_schema(SCHEMA, encoder, AugmentConfig(noise_level=noise_level))
    batch = constant_batch(20_000, numeric=1234.0)
    view1, _ = policy.views(batch, torch.Generator().manual_seed(0))
    relative = column(view1, encoder, "traffic.bytes_out") / 1234.0 - 1.0
    assert relative.std().item() == pytest.approx(noise_level, rel=0.03)
    assert abs(relative.mean().item()) < 4 * noise_level / math.sqrt(20_000)
    # the same relative size on a value 1000x smaller: multiplicative, not additive
    small, _ = policy.views(constant_batch(20_000, numeric=1.234), torch.Generator().manual_seed(0))
    assert (column(small, encoder, "traffic.bytes_out") / 1.234 - 1.0).std().item() == pytest.approx(noise_level, rel=0.03)
    assert torch.equal(column(view1, encoder, "http_response.code"), torch.full((20_000,), 1234.0))  # protected


def test_diagnostics_report_change_rates_and_mean_relative_change(policy, encoder, data):
    diags = {d.name: d for d in policy.diagnostics(encoder.transform(data), seed=0, n_draws=3)}
    expected_mean_abs = 0.10 * math.sqrt(2 / math.pi)  # E|e| for e ~ N(0, 0.10)
    assert diags["traffic.bytes_out"].mean_rel_change == pytest.approx(expected_mean_abs, rel=0.05)
    zeros = (data["traffic.bytes_out"] == 0).mean()
    assert diags["traffic.bytes_out"].change_rate == pytest.approx(1 - zeros, abs=0.005)  # 0 * factor stays 0
    missing = data["http_response.latency"].isna().mean()
    assert diags["http_response.latency"].change_rate == pytest.approx(1 - missing, abs=0.005)  # NaN stays NaN
    assert diags["time"].mean_rel_change == pytest.approx(5.0 * math.sqrt(2 / math.pi), rel=0.1)  # seconds
    assert diags["http_request.user_agent"].mean_rel_change is None
    assert diags["http_request.url.path"].change_rate == pytest.approx(0.10, abs=0.015)
    for name in PROTECTED_FIELDS:
        assert diags[name].change_rate == 0.0 and diags[name].changed_cells == 0
    assert diags["traffic.bytes_out"].cells == 6 * len(data)


def test_swap_rate_and_replacement_distribution_follow_the_column(encoder):
    n, swap_prob = 40_000, 0.15
    probs = encoder.category_probs_["http_request.user_agent"]
    batch = constant_batch(n)  # every cell holds index 2
    policy = AugmentationPolicy.from_schema(SCHEMA, encoder, AugmentConfig(swap_prob=swap_prob))
    view1, _ = policy.views(batch, torch.Generator().manual_seed(0))
    swapped = column(view1, encoder, "http_request.user_agent")
    # a swap may draw the value the cell already had; it changes with probability swap_prob * (1 - p[2])
    expected = swap_prob * (1 - probs[2])
    sigma = math.sqrt(expected * (1 - expected) / n)
    assert abs((swapped != 2).float().mean().item() - expected) < 4 * sigma

    everything = AugmentationPolicy.from_schema(SCHEMA, encoder, AugmentConfig(swap_prob=1.0))
    drawn = column(everything.views(batch, torch.Generator().manual_seed(1))[0], encoder, "http_request.user_agent")
    counts = np.bincount(drawn.numpy(), minlength=len(probs))
    support = probs > 0
    assert counts[~support].sum() == 0  # never MASK, never an index the data did not have
    assert stats.chisquare(counts[support], probs[support] / probs[support].sum() * n).pvalue > 1e-3


def test_swap_never_adds_or_removes_a_field():
    """A missing value is never swapped, and "missing" is never drawn: the event keeps its set of fields."""
    frame = events(4_000, seed=2)
    frame.loc[frame.index[::3], "http_request.user_agent"] = None  # a third of the events lack the field
    encoder = FeatureEncoder(SCHEMA).fit(frame)
    missing = encoder.vocab_["http_request.user_agent"].index("<NA>") + 2
    assert encoder.category_probs_["http_request.user_agent"][missing] > 0.3
    policy = AugmentationPolicy.from_schema(SCHEMA, encoder, AugmentConfig(swap_prob=1.0))
    batch = encoder.transform(frame)
    before = column(batch, encoder, "http_request.user_agent")
    for view in policy.views(batch, torch.Generator().manual_seed(0)):
        after = column(view, encoder, "http_request.user_agent")
        assert torch.equal(after == missing, before == missing)
        assert (after[before != missing] != before[before != missing]).float().mean() > 0.3  # the rest was swapped


def test_alias_tables_reproduce_the_distribution_exactly():
    rng = np.random.default_rng(0)
    for p in (np.array([0.0, 0.1, 0.6, 0.3]), np.array([0.0, 0.0, 1.0]), np.r_[0.0, rng.random(500) ** 4]):
        accept, alias = _alias_table(p)
        n = len(p)
        mass = accept.astype(np.float64) / n
        np.add.at(mass, alias, (1 - accept.astype(np.float64)) / n)
        np.testing.assert_allclose(mass, p / p.sum(), atol=1e-6)
        assert accept[p == 0].max() == 0 and (p[alias[accept < 1]] > 0).all()


def test_mask_sets_unknown_at_the_configured_rate(encoder):
    n = 40_000
    policy = AugmentationPolicy.from_schema(SCHEMA, encoder, AugmentConfig(mask_prob=0.1))
    view1, _ = policy.views(constant_batch(n), torch.Generator().manual_seed(0))
    masked = column(view1, encoder, "http_request.url.path")
    assert set(masked.unique().tolist()) == {2, UNKNOWN_INDEX}
    assert (masked == UNKNOWN_INDEX).float().mean().item() == pytest.approx(0.1, abs=4 * math.sqrt(0.09 / n))


def test_missing_values_stay_missing(policy):
    batch = TabularTensors(numeric=torch.full((500, 3), math.nan), categorical=torch.full((500, 5), 2),
                           time=torch.full((500, 1), math.nan))
    for view in policy.views(batch, torch.Generator().manual_seed(0)):
        assert torch.isnan(view.numeric).all() and torch.isnan(view.time).all()


def test_time_jitter_wraps_into_the_week(encoder):
    policy = AugmentationPolicy.from_schema(SCHEMA, encoder, AugmentConfig(time_jitter_s=600.0))
    edges = torch.tensor([0.0, 0.5, WEEK_S - 0.5, WEEK_S - 1e-2] * 5_000).reshape(-1, 1)
    batch = TabularTensors(numeric=torch.ones(len(edges), 3), categorical=torch.full((len(edges), 5), 2), time=edges)
    for view in policy.views(batch, torch.Generator().manual_seed(0)):
        assert ((view.time >= 0) & (view.time < WEEK_S)).all()
        shift = week_shift(batch.time, view.time)
        assert shift.abs().max().item() < 600.0 * 6  # short way round the week, never ~a week
        assert shift.std().item() == pytest.approx(600.0, rel=0.05)
        assert ((view.time - batch.time).abs() > WEEK_S / 2).any()  # some did wrap


# ---------------------------------------------------------------------------------------------
# Views: independent, reproducible, on any device
# ---------------------------------------------------------------------------------------------
def test_views_are_independent(policy, encoder):
    n = 20_000
    batch = constant_batch(n)
    view1, view2 = policy.views(batch, torch.Generator().manual_seed(0))
    noise1 = column(view1, encoder, "traffic.bytes_out") / 100.0 - 1
    noise2 = column(view2, encoder, "traffic.bytes_out") / 100.0 - 1
    assert not torch.equal(noise1, noise2)
    assert abs(np.corrcoef(noise1.numpy(), noise2.numpy())[0, 1]) < 4 / math.sqrt(n)
    for name in ("http_request.user_agent", "http_request.url.path"):  # which cells a view hits, per column
        hits1 = (column(view1, encoder, name) != 2).float().numpy()
        hits2 = (column(view2, encoder, name) != 2).float().numpy()
        assert 0.05 < hits1.mean() < 0.2 and abs(np.corrcoef(hits1, hits2)[0, 1]) < 4 / math.sqrt(n)
    # the two columns of one view are independent too (no noise shared across fields)
    other = column(view1, encoder, "http_response.latency") / 100.0 - 1
    assert abs(np.corrcoef(noise1.numpy(), other.numpy())[0, 1]) < 4 / math.sqrt(n)


def test_the_same_seed_gives_the_same_views(policy, encoder, data):
    batch = encoder.transform(data.head(300))
    first = policy.views(batch, torch.Generator().manual_seed(42))
    again = policy.views(batch, torch.Generator().manual_seed(42))
    other = policy.views(batch, torch.Generator().manual_seed(43))
    for a, b in zip(first, again):
        assert torch.equal(bits(a.numeric), bits(b.numeric))
        assert torch.equal(a.categorical, b.categorical) and torch.equal(bits(a.time), bits(b.time))
    assert not torch.equal(bits(first[0].numeric), bits(other[0].numeric))
    assert torch.equal(bits(batch.numeric), bits(encoder.transform(data.head(300)).numeric))  # input untouched


def test_changing_one_field_policy_keeps_the_other_fields_noise(policy, encoder, data):
    batch = encoder.transform(data.head(200))
    before = policy.views(batch, torch.Generator().manual_seed(5))[0]
    after = policy.with_policy("http_request.user_agent", Policy.NONE).views(batch, torch.Generator().manual_seed(5))[0]
    assert torch.equal(bits(before.numeric), bits(after.numeric))
    assert torch.equal(column(before, encoder, "http_request.url.path"), column(after, encoder, "http_request.url.path"))
    assert torch.equal(column(after, encoder, "http_request.user_agent"), column(batch, encoder, "http_request.user_agent"))


@pytest.mark.parametrize("device", DEVICES)
def test_views_run_on_the_batch_device(policy, encoder, data, device):
    batch = encoder.transform(data.head(256)).to(device)
    view1, view2 = policy.views(batch, torch.Generator(device=device).manual_seed(0))
    assert view1.numeric.device.type == device and view2.categorical.device.type == device
    assert view1.numeric.shape == batch.numeric.shape and view1.categorical.dtype == torch.int64
    protected = [encoder.categorical_columns_.index(n) for n in ("status_id", "activity_id", "actor.user.name")]
    assert torch.equal(view1.categorical[:, protected], batch.categorical[:, protected])


def test_views_refuse_a_mismatched_batch_or_generator(policy, encoder, data):
    batch = encoder.transform(data.head(10))
    with pytest.raises(ValueError, match="widths"):
        policy.views(TabularTensors(batch.numeric[:, :1], batch.categorical, batch.time), torch.Generator())
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="generator"):
            policy.views(batch, torch.Generator(device="cuda"))


# ---------------------------------------------------------------------------------------------
# Preview: the same code as training, in raw values
# ---------------------------------------------------------------------------------------------
def test_preview_agrees_with_the_tensor_path(policy, encoder, data):
    rows = data.sample(25, random_state=1)
    preview = policy.preview(rows, seed=7)
    encoded = encoder.transform(rows)
    views = policy.views(encoded, torch.Generator().manual_seed(7))
    for view, changed in zip(views, (preview.changed1, preview.changed2)):
        masks = changed_cells(encoded, view)
        for group, names in (("numeric", encoder.numeric_columns_), ("categorical", encoder.categorical_columns_),
                             ("time", encoder.time_columns_)):
            for j, name in enumerate(names):
                np.testing.assert_array_equal(changed[name].to_numpy(), getattr(masks, group)[:, j].numpy(), err_msg=name)
    assert preview.changed1.to_numpy().any() and not preview.changed1["_label.anomaly"].any()
    # the displayed jittered bytes are the tensor's values
    shown = preview.view1["traffic.bytes_out"].to_numpy(dtype=float)
    np.testing.assert_allclose(shown, column(views[0], encoder, "traffic.bytes_out").numpy(), rtol=1e-6)
    assert list(preview.view1.index) == list(rows.index) and list(preview.view1.columns) == list(rows.columns)


def test_preview_shows_raw_human_readable_values(policy, data):
    rows = data.head(8)
    preview = policy.preview(rows, seed=3)
    # categories as their strings, numbers as raw numbers, timestamps as ISO 8601 UTC
    assert preview.original["status_id"].tolist() == [str(v) for v in rows["status_id"]]
    assert preview.original["traffic.bytes_out"].tolist() == rows["traffic.bytes_out"].tolist()
    first = pd.Timestamp(int(rows["time"].iloc[0]), unit="ms", tz="UTC")
    assert preview.original["time"].iloc[0] == first.isoformat(timespec="milliseconds")
    moved = pd.to_datetime(preview.view1["time"], utc=True) - pd.to_datetime(preview.original["time"], utc=True)
    seconds = moved.dt.total_seconds()
    assert (seconds.abs() < 60).all() and (seconds != 0).any()  # shifted by a few seconds, not re-derived
    ratio = preview.view1["traffic.bytes_out"].astype(float) / rows["traffic.bytes_out"]
    assert ((ratio - 1).abs().dropna() < 0.8).all()  # bytes stay bytes (not log or z-scores)
    # unchanged cells show exactly the original value
    for view, changed in ((preview.view1, preview.changed1), (preview.view2, preview.changed2)):
        for name in view.columns:
            keep = ~changed[name].to_numpy()
            shown, original = view[name].to_numpy(dtype=object)[keep], preview.original[name].to_numpy(dtype=object)[keep]
            assert all(x == y or (pd.isna(x) and pd.isna(y)) for x, y in zip(shown, original)), name


def test_preview_keeps_a_rare_category_readable_when_unchanged(encoder):
    policy = AugmentationPolicy.from_schema(SCHEMA, encoder, AugmentConfig(swap_prob=0.0))
    rows = events().iloc[[3]]  # "rare-bot/0.1": mapped to UNKNOWN by the vocabulary
    assert encoder.transform(rows).categorical[0, encoder.categorical_columns_.index("http_request.user_agent")] == 1
    preview = policy.preview(rows, seed=0)
    assert preview.view1["http_request.user_agent"].iloc[0] == "rare-bot/0.1"
    assert not preview.changed_mask["http_request.user_agent"].iloc[0]


def test_preview_shows_a_masked_cell_as_unknown(encoder, data):
    policy = AugmentationPolicy.from_schema(SCHEMA, encoder, AugmentConfig(mask_prob=1.0))
    preview = policy.preview(data.head(5), seed=0)
    assert preview.view1["http_request.url.path"].tolist() == ["<UNKNOWN>"] * 5
    assert preview.changed1["http_request.url.path"].all()


# ---------------------------------------------------------------------------------------------
# Command line: python -m engine augment
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def events_parquet(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("augment") / "events.parquet"
    data.to_parquet(path)
    return path


def run_cli(argv, capsys) -> tuple[int, str, str]:
    from engine.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_json_follows_the_contract(small_events_file, capsys):
    code, out, _ = run_cli(["augment", str(small_events_file), "--rows", "300", "--seed", "1", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["rows"] == 300 and document["protected_changes"] == 0
    for field in document["fields"]:
        assert {"name", "policy", "protected", "change_rate", "mean_rel_change"} <= field.keys()
        assert 0.0 <= field["change_rate"] <= 1.0
        if field["protected"]:
            assert field["change_rate"] == 0.0
    assert any(f["protected"] for f in document["fields"]) and any(f["change_rate"] > 0 for f in document["fields"])
    jittered = [f for f in document["fields"] if f["policy"] == "jitter" and f["mean_rel_change"]]
    assert jittered and all(0.02 < f["mean_rel_change"] < 0.2 for f in jittered)


def test_cli_counts_changes_to_a_protection_the_schema_overrides(events_parquet, tmp_path, capsys):
    schema_path = tmp_path / "schema.json"
    SCHEMA.with_column("actor.user.name", policy=Policy.SWAP).save(schema_path)
    code, out, _ = run_cli(["augment", str(events_parquet), "--schema", str(schema_path), "--rows", "500", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    user = next(f for f in document["fields"] if f["name"] == "actor.user.name")
    assert user["protected"] and user["policy"] == "swap" and user["change_rate"] > 0
    assert document["protected_changes"] == user["changed_cells"] > 0
    assert [f["name"] for f in document["fields"]] == [n for n in SCHEMA.names if n != "_label.anomaly"]

    code, out, _ = run_cli(["augment", str(events_parquet), "--schema", str(schema_path), "--rows", "500"], capsys)
    assert code == 0 and "OVERRIDDEN" in out and f"changed cells in protected fields: {document['protected_changes']}" in out


def test_cli_rejects_bad_input_in_one_line(events_parquet, tmp_path, capsys):
    code, _, err = run_cli(["augment", str(events_parquet), "--rows", "0"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "--rows" in err
    code, _, err = run_cli(["augment", str(events_parquet), "--schema", str(tmp_path / "missing.json")], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "missing.json" in err
