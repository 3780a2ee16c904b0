"""How fast ``engine.ingest.load`` reads nested OCSF JSON lines, against plain pandas.

Writes the demo events (``engine.sample.generate_file``, 72,000 nested events by default) as JSONL
into a temporary folder, then times, in the same run:
  ours      load(path): a typed, flat frame of dotted paths, arrays as count + JSON text, a report
  baseline  pandas.read_json(lines=True) + pandas.json_normalize (flattening only; arrays stay lists)
Prints events/s for both and the ratio; the last line is one JSON object with ``events``,
``ours_events_per_s``, ``baseline_events_per_s``, ``ratio`` (and the seconds and file size).
Usage: ``python bench/ingest.py [--events N] [--seed S] [--repeats R]``: R rounds, ours then the
baseline in each, best round of each kept (the machine is shared; alternating keeps noise fair).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.ingest import load  # noqa: E402

DEFAULT_EVENTS = 72_000


def write_events(path: Path, n_events: int, seed: int) -> str:
    """The demo generator; returns which generator wrote the file."""
    try:
        from engine.sample import generate_file
    except ImportError:  # the generator is optional for this benchmark
        _write_fallback_events(path, n_events, seed)
        return "bench fallback"
    generate_file(path, n_events, seed)
    return "engine.sample.generate_file"


def _write_fallback_events(path: Path, n_events: int, seed: int) -> None:
    import random

    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n_events):
            ok = rng.random() > 0.05
            event = {
                "class_uid": 4002, "category_uid": 4, "activity_id": 3, "type_uid": 400203, "severity_id": 1 if ok else 4,
                "time": 1_741_000_000_000 + i * 1_000, "status_id": 1 if ok else 2, "status": "Success" if ok else "Failure",
                "metadata": {"version": "1.1.0", "uid": f"e-{i}", "product": {"name": "nginx", "vendor_name": "F5"}, "profiles": ["host"]},
                "src_endpoint": {"ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}", "port": rng.randrange(1024, 65536)},
                "dst_endpoint": {"ip": "10.1.0.1", "port": 443, "hostname": "api.example.com"},
                "http_request": {"http_method": "GET", "url": {"path": f"/v1/items/{rng.randrange(50)}"}, "length": rng.randrange(5000)},
                "http_response": {"code": 200 if ok else 503, "latency": rng.random() * 300},
                "observables": [{"name": "src_endpoint.ip", "type_id": 2, "value": "10.0.0.1"}],
            }
            handle.write(json.dumps(event) + "\n")


def pandas_baseline(path: Path) -> pd.DataFrame:
    frame = pd.read_json(path, lines=True)
    return pd.json_normalize(frame.to_dict(orient="records"))


def timed(task: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = task()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (ours, baseline); best of each kept (default 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as folder:
        path = Path(folder) / "events.jsonl"
        source = write_events(path, args.events, args.seed)
        size_mb = path.stat().st_size / 1e6
        print(f"{args.events:,} nested events, {size_mb:.1f} MB of JSONL ({source})")

        ours_s = base_s = float("inf")
        for _ in range(max(args.repeats, 1)):
            seconds, (frame, report) = timed(lambda: load(path))
            ours_s = min(ours_s, seconds)
            seconds, base = timed(lambda: pandas_baseline(path))
            base_s = min(base_s, seconds)
        print(f"ours      load():                         {ours_s:6.2f} s  {args.events / ours_s:>10,.0f} events/s  "
              f"{frame.shape[1]} typed columns, {report.rows_kept:,} rows kept")
        print(f"baseline  read_json + json_normalize:     {base_s:6.2f} s  {args.events / base_s:>10,.0f} events/s  "
              f"{base.shape[1]} columns (object dtypes, arrays as lists)")
        ratio = base_s / ours_s
        print(f"ratio     {ratio:.1f}x")
        print(json.dumps({
            "events": args.events, "megabytes": round(size_mb, 1),
            "ours_events_per_s": round(args.events / ours_s), "baseline_events_per_s": round(args.events / base_s),
            "ratio": round(ratio, 2), "ours_s": round(ours_s, 3), "baseline_s": round(base_s, 3),
            "ours_columns": int(frame.shape[1]), "baseline_columns": int(base.shape[1]), "generator": source,
        }))


if __name__ == "__main__":
    main()
