"""``python -m engine embed``: embeddings of a data file with a trained run, in the file's row order."""
from __future__ import annotations

import argparse
import io
import time

from engine.cli import emit_json
from engine.errors import UserError

HELP = "write the embeddings of DATA's rows (same order) computed with a trained run, as a float32 .npy array"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `train` or the app")
    parser.add_argument("data", metavar="DATA", help="events file: JSON array, JSONL, CSV or Parquet (optionally .gz)")
    parser.add_argument("--out", required=True, metavar="EMB.npy", help="output file (.npy, float32 [rows, d_model])")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint to use (default best)")
    parser.add_argument("--batch-size", type=int, default=4096, metavar="N", help="rows per inference batch (default 4096)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    # Imported here so that `python -m engine --help` does not pay for torch and pandas.
    import numpy as np

    from engine.atomic import atomic_write_bytes
    from engine.embed import embed
    from engine.ingest import load
    from engine.runs import load_run

    if not str(args.out).endswith(".npy"):
        raise UserError(f"--out {args.out}: the output must be a .npy file")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got --batch-size {args.batch_size}")
    started = time.perf_counter()
    loaded = load_run(args.run_dir, args.checkpoint)
    df, _report = load(args.data)
    if len(df) == 0:
        raise UserError(f"{args.data}: no usable rows to embed")
    embeddings = embed(loaded, df, batch_size=args.batch_size)
    buffer = io.BytesIO()
    np.save(buffer, embeddings, allow_pickle=False)
    out = atomic_write_bytes(args.out, buffer.getvalue())
    document = {
        "rows": int(embeddings.shape[0]), "dim": int(embeddings.shape[1]), "out": str(out),
        "run_dir": str(loaded.run_dir), "checkpoint": loaded.checkpoint, "epochs_done": loaded.epochs_done,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        emit_json(document)
    else:
        print(f"wrote {document['rows']:,} x {document['dim']} embeddings to {out} ({loaded.checkpoint} checkpoint, "
              f"{document['seconds']:.1f} s)")
    return 0
