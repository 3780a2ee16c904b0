"""FeatureEncoder and TabularTensors: known answers on small generated frames."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine.errors import UserError
from engine.features import (
    MISSING_TEXT,
    WEEK_S,
    FeatureEncoder,
    TabularTensors,
    categorical_texts,
    seconds_of_week,
)
from engine.schema import ColumnSpec, ColumnType, Policy, Role, Schema

MONDAY_0600_UTC_MS = 1_704_088_800_000  # 2024-01-01 (a Monday) 06:00:00 UTC
TUTORIAL = Path(__file__).resolve().parents[2] / "data" / "tutorial" / "ocsf_eval_subset.parquet"


def numeric(name: str, heavy: bool = False, **kw) -> ColumnSpec:
    return ColumnSpec(name, ColumnType.NUMERIC, Role.MEASURE, Policy.JITTER, "test", heavy_tailed=heavy, **kw)


def categorical(name: str, **kw) -> ColumnSpec:
    return ColumnSpec(name, ColumnType.CATEGORICAL, Role.CONTEXT, Policy.SWAP, "test", **kw)


def timestamp(name: str) -> ColumnSpec:
    return ColumnSpec(name, ColumnType.TIMESTAMP, Role.TIME, Policy.TIME_JITTER, "test")


def label(name: str) -> ColumnSpec:
    return ColumnSpec(name, ColumnType.LABEL, Role.LABEL, Policy.NONE, "test")


def ignored(name: str) -> ColumnSpec:
    return ColumnSpec(name, ColumnType.IGNORE, Role.ID, Policy.NONE, "test")


def events(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bytes_out = np.exp(rng.normal(8, 3, n)).round()
    latency = rng.normal(120, 15, n)
    latency[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "traffic.bytes_out": bytes_out,
        "http_response.latency": latency,
        "dst_endpoint.port": rng.choice([443, 80, 8080, 22], n, p=[0.6, 0.3, 0.08, 0.02]),
        "user_agent": rng.choice(["curl", "firefox", "chrome", None], n, p=[0.3, 0.3, 0.38, 0.02]),
        "time": MONDAY_0600_UTC_MS + rng.integers(0, 14 * 86_400_000, n),
        "_label.anomaly": rng.choice(["yes", "no"], n),
        "metadata.uid": [f"uid-{i}" for i in range(n)],
    })


def events_schema(**kw) -> Schema:
    return Schema(columns=(
        numeric("traffic.bytes_out", heavy=True),
        numeric("http_response.latency"),
        categorical("dst_endpoint.port"),
        categorical("user_agent"),
        timestamp("time"),
        label("_label.anomaly"),
        ignored("metadata.uid"),
    ), **kw)


@pytest.fixture(scope="module")
def fitted() -> tuple[FeatureEncoder, pd.DataFrame]:
    df = events()
    return FeatureEncoder(events_schema(), min_frequency=5).fit(df), df


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality that also treats NaN == NaN (torch.equal does not)."""
    if a.dtype == torch.float32:
        a, b = a.view(torch.int32), b.view(torch.int32)
    return a.shape == b.shape and torch.equal(a, b)


# -- the scikit-learn contract ------------------------------------------------------------------
def test_init_stores_parameters_only():
    enc = FeatureEncoder(events_schema(), min_frequency=3, max_categories=7)
    assert (enc.min_frequency, enc.max_categories) == (3, 7)
    assert not enc.is_fitted and not hasattr(enc, "vocab_")


def test_unfitted_encoder_refuses_to_transform():
    enc = FeatureEncoder(events_schema())
    with pytest.raises(RuntimeError, match=r"FeatureEncoder is not fitted: call fit\(\) first"):
        enc.transform(events(10))
    with pytest.raises(RuntimeError, match="not fitted"):
        enc.cardinalities


def test_bad_parameters_and_empty_frame_raise_user_errors():
    with pytest.raises(UserError, match="min_frequency"):
        FeatureEncoder(events_schema(), min_frequency=0).fit(events(10))
    with pytest.raises(UserError, match="no rows"):
        FeatureEncoder(events_schema()).fit(events(10).iloc[:0])


def test_label_ignore_and_excluded_outcome_columns_are_never_inputs():
    schema = Schema(columns=events_schema().columns + (categorical("status_id", outcome_family=True),), exclude_outcome=True)
    df = events().assign(status_id=1)
    enc = FeatureEncoder(schema).fit(df)
    assert enc.numeric_columns_ == ["traffic.bytes_out", "http_response.latency"]
    assert enc.categorical_columns_ == ["dst_endpoint.port", "user_agent"]
    assert enc.time_columns_ == ["time"]
    used = set(enc.model_feature_names()) | set(enc.categorical_columns_)
    assert not any(name.startswith(("_label", "metadata.uid", "status_id")) for name in used)
    # changing label/ignored/excluded columns changes nothing the model sees
    other = df.assign(**{"_label.anomaly": "changed", "metadata.uid": "x", "status_id": 2})
    for a, b in zip(enc.model_inputs(enc.transform(df)), enc.model_inputs(enc.transform(other))):
        assert bits_equal(a, b)


# -- categorical vocabulary ---------------------------------------------------------------------
def test_vocab_keeps_frequent_values_most_frequent_first_and_maps_rare_and_unseen_to_unknown():
    schema = Schema(columns=(categorical("c"),))
    df = pd.DataFrame({"c": ["a"] * 10 + ["b"] * 7 + ["c"] * 5 + ["rare"] * 4})
    enc = FeatureEncoder(schema, min_frequency=5).fit(df)
    assert enc.vocab_["c"] == ["a", "b", "c"]
    assert enc.cardinalities == [5]
    out = enc.transform(pd.DataFrame({"c": ["a", "b", "c", "rare", "never-seen"]})).categorical[:, 0]
    assert out.tolist() == [2, 3, 4, 1, 1]


def test_max_categories_caps_the_vocabulary():
    schema = Schema(columns=(categorical("c"),))
    df = pd.DataFrame({"c": ["a"] * 10 + ["b"] * 9 + ["c"] * 8})
    enc = FeatureEncoder(schema, min_frequency=1, max_categories=2).fit(df)
    assert enc.vocab_["c"] == ["a", "b"]
    assert enc.transform(pd.DataFrame({"c": ["c"]})).categorical.item() == 1


def test_category_probs_are_the_empirical_distribution():
    schema = Schema(columns=(categorical("c"),))
    df = pd.DataFrame({"c": ["a"] * 10 + ["b"] * 6 + ["x", "y", "z", None]})
    enc = FeatureEncoder(schema, min_frequency=5).fit(df)
    probs = enc.category_probs_["c"]
    assert probs.dtype == np.float64 and len(probs) == enc.cardinalities[0]
    assert probs[0] == 0.0
    assert probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(probs, [0, 4 / 20, 10 / 20, 6 / 20])


def test_index_zero_is_never_produced(fitted):
    enc, _ = fitted
    for seed in range(3):
        cat = enc.transform(events(300, seed=seed + 10)).categorical
        assert cat.dtype == torch.int64 and int(cat.min()) >= 1


def test_canonical_strings_make_int_float_and_object_columns_agree():
    schema = Schema(columns=(categorical("port"), categorical("flag")))
    train = pd.DataFrame({"port": [443] * 5 + [80] * 5, "flag": [True] * 5 + [False] * 5})
    enc = FeatureEncoder(schema, min_frequency=1).fit(train)
    assert sorted(enc.vocab_["port"]) == ["443", "80"]
    assert sorted(enc.vocab_["flag"]) == ["false", "true"]
    as_floats = pd.DataFrame({"port": [443.0, 80.0, np.nan], "flag": pd.array([True, False, None], dtype="boolean")})
    as_strings = pd.DataFrame({"port": ["443", "80", None], "flag": ["true", "false", None]})
    a, b = enc.transform(as_floats).categorical, enc.transform(as_strings).categorical
    assert torch.equal(a, b)
    assert a[:2].min() >= 2 and a[2].tolist() == [1, 1]  # "<NA>" was never seen in fit
    texts = categorical_texts(pd.Series([443, 443.0, 1.5, True, None, "x"], dtype=object))
    assert texts.tolist()[2:] == ["1.5", "true", MISSING_TEXT, "x"]
    assert texts[:2].tolist() == ["443", "443"]


def test_missing_categorical_is_a_vocabulary_value():
    schema = Schema(columns=(categorical("c"),))
    enc = FeatureEncoder(schema, min_frequency=2).fit(pd.DataFrame({"c": ["a", "a", None, None, np.nan]}))
    assert MISSING_TEXT in enc.vocab_["c"]
    idx = enc.transform(pd.DataFrame({"c": [None]})).categorical.item()
    assert enc.decode_categorical("c", [idx]).tolist() == [MISSING_TEXT]


# -- numeric ------------------------------------------------------------------------------------
def test_missing_numeric_gets_an_indicator_and_zero(fitted):
    enc, _ = fitted
    assert enc.has_missing_ == {"traffic.bytes_out": False, "http_response.latency": True}
    names = enc.model_feature_names()
    assert names[:3] == ["traffic.bytes_out", "http_response.latency", "http_response.latency__missing"]
    assert enc.n_model_numeric == len(names) == 2 + 1 + 4
    df = pd.DataFrame({"traffic.bytes_out": [100.0, 100.0], "http_response.latency": [np.nan, 120.0], "time": [0, 0]})
    x_num, _ = enc.model_inputs(enc.transform(df))
    assert x_num[0, 1].item() == 0.0 and x_num[0, 2].item() == 1.0
    assert x_num[1, 2].item() == 0.0 and x_num[1, 1].item() != 0.0


def test_heavy_tailed_columns_are_log1p_then_standardised(fitted):
    enc, df = fitted
    assert enc.heavy_tailed_ == {"traffic.bytes_out": True, "http_response.latency": False}
    x_num, _ = enc.model_inputs(enc.transform(df))
    logged = np.log1p(df["traffic.bytes_out"].to_numpy())
    assert enc.mean_[0] == pytest.approx(logged.mean(), rel=1e-5)
    for j in range(2):
        column = x_num[:, j].double()
        observed = column[~torch.isnan(enc.transform(df).numeric[:, j])]
        assert abs(observed.mean().item()) < 1e-4
        assert observed.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    # without log1p a column like this would be dominated by its largest values
    expected = (logged - logged.mean()) / logged.std()
    np.testing.assert_allclose(x_num[:, 0].numpy(), expected, atol=1e-4)


def test_non_numeric_strings_become_missing():
    schema = Schema(columns=(numeric("n"),))
    df = pd.DataFrame({"n": ["1.5", "abc", None, "7", "inf"]})
    t = FeatureEncoder(schema).fit(df).transform(df)
    assert t.numeric.dtype == torch.float32
    np.testing.assert_array_equal(t.numeric[:, 0].numpy(), np.array([1.5, np.nan, np.nan, 7, np.nan], np.float32))


def test_constant_numeric_column_does_not_blow_up():
    schema = Schema(columns=(numeric("n"),))
    enc = FeatureEncoder(schema).fit(pd.DataFrame({"n": [6003.0] * 20}))
    x_num, _ = enc.model_inputs(enc.transform(pd.DataFrame({"n": [6003.0, 6004.0]})))
    assert x_num[:, 0].tolist() == [0.0, 1.0]


def test_extreme_values_give_finite_model_inputs():
    schema = Schema(columns=(numeric("bytes", heavy=True), numeric("delta"), timestamp("t")))
    train = pd.DataFrame({"bytes": [0, 10, 1e3, 1e6, 1e15, 5e14], "delta": [-1e12, -5, 0, 3, 1e12, 7], "t": [0] * 6})
    enc = FeatureEncoder(schema, min_frequency=1).fit(train)
    extreme = pd.DataFrame({"bytes": [1e15, -1e15, 3e38, 1e300, -0.0], "delta": [1e30, -1e30, np.inf, -3.3e38, 1e-30],
                            "t": [-1e18, 1e18, np.nan, 0, 1]})
    t = enc.transform(extreme)
    x_num, _ = enc.model_inputs(t)
    assert torch.isfinite(x_num).all()
    # a multiplicative jitter can push a float32 raw value past its range: still finite
    jittered = TabularTensors(numeric=t.numeric * 10, categorical=t.categorical, time=t.time)
    assert torch.isfinite(enc.model_inputs(jittered)[0]).all()


# -- time ---------------------------------------------------------------------------------------
def test_seconds_of_week_for_known_timestamps():
    series = pd.Series([MONDAY_0600_UTC_MS, 0, 1_704_088_800, None], dtype="Float64")
    np.testing.assert_array_equal(seconds_of_week(series), np.array([21_600, 3 * 86_400, 21_600, np.nan], np.float32))
    iso = pd.Series(["2024-01-01T06:00:00Z", "2024-01-01T08:00:00+02:00", "1970-01-01", "not a date", None])
    np.testing.assert_array_equal(seconds_of_week(iso), np.array([21_600, 21_600, 259_200, np.nan, np.nan], np.float32))
    dt = pd.Series(pd.to_datetime(["2024-01-07T23:59:59", "2024-01-08T00:00:00"]))
    np.testing.assert_array_equal(seconds_of_week(dt), np.array([WEEK_S - 1, 0], np.float32))
    rounding_edge = pd.Series([MONDAY_0600_UTC_MS - 21_600_000 - 1])  # one ms before Monday 00:00
    assert 0 <= seconds_of_week(rounding_edge)[0] < WEEK_S


def test_cyclic_time_features_are_exact_for_known_timestamps():
    schema = Schema(columns=(timestamp("time"),))
    thursday_noon_ms = MONDAY_0600_UTC_MS + (3 * 86_400 + 6 * 3_600) * 1000  # 2024-01-04 12:00 UTC
    df = pd.DataFrame({"time": [MONDAY_0600_UTC_MS, thursday_noon_ms, None]})
    enc = FeatureEncoder(schema).fit(df)
    x_num, x_cat = enc.model_inputs(enc.transform(df))
    assert x_cat.shape == (3, 0) and enc.model_feature_names() == [
        "time__hour_sin", "time__hour_cos", "time__dow_sin", "time__dow_cos"]
    monday_angle = 2 * math.pi * 21_600 / WEEK_S
    np.testing.assert_allclose(x_num[0].numpy(), [1, 0, math.sin(monday_angle), math.cos(monday_angle)], atol=1e-6)
    thursday_angle = 2 * math.pi * (3 * 86_400 + 43_200) / WEEK_S
    np.testing.assert_allclose(x_num[1].numpy(), [0, -1, math.sin(thursday_angle), math.cos(thursday_angle)], atol=1e-6)
    assert x_num[2].tolist() == [0, 0, 0, 0]


# -- shapes, missing and extra columns ----------------------------------------------------------
@pytest.mark.parametrize("keep", [("n",), ("c",), ("t",), ("n", "c"), ("c", "t"), ("n", "t")])
def test_zero_columns_of_a_type_give_empty_tensors(keep):
    specs = {"n": numeric("n"), "c": categorical("c"), "t": timestamp("t")}
    schema = Schema(columns=tuple(specs[k] for k in keep))
    df = pd.DataFrame({"n": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "t": [0, 1000, 2000]})
    enc = FeatureEncoder(schema, min_frequency=1).fit(df)
    t = enc.transform(df)
    assert len(t) == 3
    assert t.numeric.shape == (3, int("n" in keep)) and t.categorical.shape == (3, int("c" in keep))
    assert t.time.shape == (3, int("t" in keep))
    x_num, x_cat = enc.model_inputs(t)
    assert x_num.shape == (3, enc.n_model_numeric) and x_num.dtype == torch.float32
    assert x_cat.shape == (3, int("c" in keep)) and x_cat.dtype == torch.int64


def test_absent_columns_are_all_missing_and_extra_columns_ignored(fitted):
    enc, df = fitted
    t = enc.transform(pd.DataFrame({"unrelated": [1, 2], "dst_endpoint.port": [443, 22]}))
    assert torch.isnan(t.numeric).all() and torch.isnan(t.time).all()
    assert enc.decode_categorical("dst_endpoint.port", t.categorical[:, 0]).tolist() == ["443", "22"]
    x_num, _ = enc.model_inputs(t)
    assert torch.isfinite(x_num).all()


# -- decoding -----------------------------------------------------------------------------------
def test_decode_gives_raw_readable_values(fitted):
    enc, df = fitted
    rows = df.iloc[:5].copy()
    rows.loc[rows.index[0], "http_response.latency"] = np.nan
    decoded = enc.decode(enc.transform(rows))
    assert list(decoded.columns) == ["traffic.bytes_out", "http_response.latency", "dst_endpoint.port", "user_agent", "time"]
    assert decoded["http_response.latency"].iloc[0] is None
    np.testing.assert_allclose(decoded["traffic.bytes_out"].astype(float), rows["traffic.bytes_out"], rtol=1e-6)
    assert decoded["dst_endpoint.port"].tolist() == [str(p) for p in rows["dst_endpoint.port"]]
    expected_sow = (rows["time"].to_numpy() / 1000 + 3 * 86_400) % WEEK_S
    np.testing.assert_allclose(decoded["time"].astype(float), expected_sow, atol=0.07)  # float32 at ~6e5 s
    assert enc.decode_categorical("user_agent", np.array([0, 1])).tolist() == ["<MASK>", "<UNKNOWN>"]
    with pytest.raises(IndexError):
        enc.decode_categorical("user_agent", np.array([enc.cardinalities[1]]))


# -- TabularTensors -----------------------------------------------------------------------------
def test_tabular_tensors_take_and_to(fitted):
    enc, df = fitted
    t = enc.transform(df)
    part = t.take(torch.tensor([3, 1]))
    assert len(part) == 2 and torch.equal(part.categorical, t.categorical[[3, 1]])
    assert len(t.take(slice(0, 10))) == 10
    assert len(t.take(t.categorical[:, 0] == 2)) == int((t.categorical[:, 0] == 2).sum())
    assert t.to("cpu").numeric.device.type == "cpu"
    with pytest.raises(ValueError, match="rows"):
        TabularTensors(numeric=torch.zeros(3, 1), categorical=torch.zeros(2, 1, dtype=torch.int64), time=torch.zeros(3, 0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.numeric = torch.zeros(1, 1)


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
def test_model_inputs_stay_on_the_tensors_device(fitted, device):
    enc, df = fitted
    t = enc.transform(df)
    x_num, x_cat = enc.model_inputs(t.to(device))
    assert x_num.device.type == device and x_cat.device.type == device
    reference, _ = enc.model_inputs(t)
    torch.testing.assert_close(x_num.cpu(), reference, atol=1e-5, rtol=1e-5)


# -- JSON ---------------------------------------------------------------------------------------
def test_json_round_trip_is_exact(fitted):
    enc, df = fitted
    doc = json.loads(json.dumps(enc.to_json()))
    restored = FeatureEncoder.from_json(doc)
    assert restored.to_json() == enc.to_json()
    other = events(200, seed=7)
    a, b = enc.transform(other), restored.transform(other)
    for part in ("numeric", "categorical", "time"):
        assert bits_equal(getattr(a, part), getattr(b, part))
    for x, y in zip(enc.model_inputs(a), restored.model_inputs(b)):
        assert bits_equal(x, y)
    assert restored.cardinalities == enc.cardinalities
    assert restored.model_feature_names() == enc.model_feature_names()
    np.testing.assert_array_equal(restored.category_probs_["user_agent"], enc.category_probs_["user_agent"])


def test_invalid_encoder_json_is_a_user_error(fitted):
    enc, _ = fitted
    with pytest.raises(UserError, match="not a feature encoder"):
        FeatureEncoder.from_json({"columns": []})
    broken = enc.to_json()
    del broken["mean"]
    with pytest.raises(UserError, match="mean"):
        FeatureEncoder.from_json(broken)


# -- real data (optional) -----------------------------------------------------------------------
@pytest.mark.skipif(not TUTORIAL.exists(), reason="tutorial parquet not present in this checkout")
def test_tutorial_events_encode_without_surprises():
    df = pd.read_parquet(TUTORIAL)
    schema = Schema(columns=(
        numeric("duration", heavy=True), numeric("http_response_latency"), numeric("src_endpoint_port"),
        categorical("http_request_method"), categorical("http_response_code"), categorical("service"),
        timestamp("time"), label("anomaly_type"),
    ))
    enc = FeatureEncoder(schema).fit(df)
    t = enc.transform(df)
    x_num, x_cat = enc.model_inputs(t)
    assert torch.isfinite(x_num).all() and int(x_cat.min()) >= 1
    assert not any(v.endswith(".0") for v in enc.vocab_["http_response_code"])  # 200, not 200.0
    assert ((t.time >= 0) & (t.time < WEEK_S)).all()
