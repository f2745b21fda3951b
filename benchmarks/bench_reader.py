"""Throughput of the XMC reader on a file of Amazon-670K's shape.

    python benchmarks/bench_reader.py [--mb 80] [--dir /tmp/xmc_bench] [--repeat 3]

Writes (once; reused while it exists) a synthetic Amazon-670K-shaped train file of about
--mb megabytes (135,909 features, 670,091 labels, ~73 non-zeros and ~5.5 labels per point),
then times: read_xmc (Numba compile excluded: a tiny file is read first), and
load_xmc_cached with an empty cache (parse + save) and again (cache hit). Prints MB/s and the
extrapolated time for the ~500 MB real Amazon-670K train file. The file is read from the page
cache after the first pass: the figures are parse speed, not disk speed.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from harness.data.cache import load_xmc_cached
from harness.data.synthetic import SyntheticSpec, generate
from harness.data.xmc import read_xmc, write_xmc

AMAZON_TRAIN_MB = 500.0  # the real train.txt is about this size
BYTES_PER_ROW = 1400  # measured for this generator's rows; used only to size the file


def make_file(path: Path, mb: float) -> None:
    n_rows = max(1, int(mb * 1e6 / BYTES_PER_ROW))
    spec = SyntheticSpec(n_train=n_rows, n_test=0, n_features=135_909, n_labels=670_091,
                         nnz_per_point=100, labels_per_point=10, seed=0)
    t = time.perf_counter()
    train, _ = generate(spec)
    t_gen = time.perf_counter() - t
    t = time.perf_counter()
    write_xmc(train, path)
    t_write = time.perf_counter() - t
    size = path.stat().st_size / 1e6
    print(f"generated {n_rows} rows in {t_gen:.1f} s; wrote {size:.1f} MB in {t_write:.1f} s "
          f"({size / t_write:.0f} MB/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=80.0, help="size of the generated file")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "xmc_bench")
    ap.add_argument("--repeat", type=int, default=3, help="timed read_xmc runs (median shown)")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"amazon_shape_{args.mb:g}mb.txt"
    if not path.exists():
        make_file(path, args.mb)
    size_mb = path.stat().st_size / 1e6

    tiny = args.dir / "tiny.txt"
    tiny.write_text("2 10 5\n0,1 1:0.5 3:1\n 2:1\n")
    t = time.perf_counter()
    read_xmc(tiny)  # compile, or load the Numba cache
    print(f"numba compile / cache load: {time.perf_counter() - t:.2f} s")

    wall, cpu = [], []
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        split = read_xmc(path)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(f"file: {size_mb:.1f} MB, {split.n_points} points, "
          f"{split.features.nnz / split.n_points:.1f} nnz and "
          f"{split.labels.nnz / split.n_points:.2f} labels per point")
    # CPU time too: on a busy shared machine the wall clock also counts time spent descheduled
    for name, times in (("wall", wall), ("cpu", cpu)):
        med = statistics.median(times)
        print(f"read_xmc {name}: median {med:.2f} s over {args.repeat} runs -> "
              f"{size_mb / med:.0f} MB/s; extrapolated {AMAZON_TRAIN_MB:.0f} MB: "
              f"{AMAZON_TRAIN_MB * med / size_mb:.1f} s")

    cache_dir = args.dir / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    t = time.perf_counter()
    load_xmc_cached(path, cache_dir)
    t_miss = time.perf_counter() - t
    t = time.perf_counter()
    load_xmc_cached(path, cache_dir)
    t_hit = time.perf_counter() - t
    print(f"load_xmc_cached: empty cache (parse + save) {t_miss:.2f} s; cache hit {t_hit:.2f} s "
          f"-> extrapolated {AMAZON_TRAIN_MB:.0f} MB: {t_hit * AMAZON_TRAIN_MB / size_mb:.1f} s")


if __name__ == "__main__":
    main()
