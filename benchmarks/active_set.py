"""P@1 per epoch of SLIDE with any output-layer options, without MLflow: for comparing active-set
compositions (strategies, budgets, retrieval caps, padding and its log-Q correction, hash
families, K, schedules) quickly and over several seeds. Same data, batch order, initial
weights and evaluation as the harness; prints one line per evaluation and a FINAL line.

    .venv/bin/python -m benchmarks.active_set --epochs 2 sparsity=0.009 strategy=random
    .venv/bin/python -m benchmarks.active_set --epochs 2 sparsity=0.009 hash_family=simhash K=8
    .venv/bin/python -m benchmarks.active_set --data bibtex --epochs 20 --seed 1 sparsity=auto
    .venv/bin/python -m benchmarks.active_set --data delicious --epochs 10 --dense   # numpy_dense
    .venv/bin/python -m benchmarks.active_set --net '{"schedule": "fixed", "rehash_every": 10}' sparsity=auto

Layer options are LayerConfig fields (key=value, values parsed as JSON when they can be);
--net takes NetworkConfig fields as JSON. Serial kernels by default (--threads 1: the same
numbers every time); the evaluation set is 2,000 seeded test rows (all of them for sets with
at most 1,000 labels). The learning rate is the dataset's (conf/dataset/*.yaml) unless --lr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numba
import numpy as np
from hydra import compose, initialize_config_dir

from benchmarks.retrieval_anatomy import anatomy, format_anatomy, hidden_rows
from harness.data.batching import iterate_batches
from harness.data.datasets import load_dataset
from harness.evaluation import precision_at_k
from harness.models.base import ModelContext
from harness.models.init import initial_weights
from slide_core import LayerConfig, NetworkConfig, SlideNetwork

ROOT = Path(__file__).resolve().parents[1]


def dataset_config(name: str):
    """The composed `dataset` group of conf/ (paths resolved as run.py resolves them)."""
    os.environ.setdefault("SLIDE_BENCH_ROOT", str(ROOT))
    from harness.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"dataset={name}"])
    return cfg.dataset, Path(cfg.paths.cache_dir)


def parse_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


class DenseModel:
    """numpy_dense behind SlideNetwork's train_batch / predict_topk / stats names."""

    def __init__(self, ctx: ModelContext):
        from harness.models.numpy_dense import NumpyDenseModel

        self.model = NumpyDenseModel(ctx)

    def train_batch(self, x, y):
        return self.model.train_step(x, y)

    def predict_topk(self, x, k):
        return self.model.predict_topk(x, k)

    def stats(self):
        return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="synthetic", help="a conf/dataset name (default: synthetic)")
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--eval-every", type=int, default=0, help="batches between evaluations (0: each epoch)")
    ap.add_argument("--dense", action="store_true", help="train numpy_dense instead (the reference P@1)")
    ap.add_argument("--net", default="{}", help="NetworkConfig fields as JSON")
    ap.add_argument("--retrieval", action="store_true",
                    help="at each evaluation also print the tables' retrieval quality on 256 test rows "
                         "(recall and lift of the exact top-k, softmax mass, retrieved count)")
    ap.add_argument("--anatomy", action="store_true",
                    help="at each evaluation also print where the exact top-100 rank by angle "
                         "(benchmarks/retrieval_anatomy.py)")
    ap.add_argument("--save", default=None, help="save the trained SLIDE network here (.npz; SlideNetwork.load)")
    ap.add_argument("options", nargs="*", help="LayerConfig fields of the output layer, key=value")
    args = ap.parse_args()

    dcfg, cache = dataset_config(args.data)
    ds = load_dataset(dcfg, cache)
    lr = args.lr or float(dcfg.lr)
    counts = np.bincount(ds.train.labels.indices, minlength=ds.n_labels)
    ctx = ModelContext(n_features=ds.n_features, n_labels=ds.n_labels, hidden=(128,), lr=lr, seed=args.seed,
                       threads=args.threads, label_counts=counts)
    numba.set_num_threads(args.threads)
    if args.dense:
        net = DenseModel(ctx)
    else:
        out = LayerConfig(width=ds.n_labels, fan_in=128, **parse_options(args.options))
        config = NetworkConfig(n_features=ds.n_features, layers=(LayerConfig(128), out), lr=lr, seed=args.seed,
                               **json.loads(args.net))
        net = SlideNetwork(config, initial_weights=initial_weights(ctx), seed=args.seed, threads=args.threads,
                           label_counts=counts)
        print(f"output layer: budget {out.budget}, retrieval limit {out.chosen_limit}, K={out.K} L={out.L} "
              f"({out.hash_family}, {out.strategy}), expected retrieved at init {out.expected_retrieved:.0f}")
    rng = np.random.default_rng(1)
    n_eval = ds.test.n_points if ds.n_labels <= 1000 else min(2000, ds.test.n_points)
    rows = np.sort(rng.choice(ds.test.n_points, n_eval, replace=False))
    x_eval, y_eval = ds.test.features.take_rows(rows), ds.test.labels.take_rows(rows)
    per_epoch = math.ceil(ds.train.n_points / 128)
    total = int(args.epochs * per_epoch)
    every = args.eval_every or per_epoch
    history, clock, it = [], 0.0, 0

    def evaluate():
        p = precision_at_k(net.predict_topk(x_eval, 5), y_eval)
        st = net.stats()
        history.append(p[1])
        print(f"it={it} epoch={it / per_epoch:.2f} P@1={p[1]:.4f} P@5={p[5]:.4f} train_s={clock:.1f} "
              f"active={st.get('active_out_mean', 0):.0f} retrieved={st.get('retrieved_out_mean', 0):.0f} "
              f"padding={st.get('padding_out_mean', 0):.0f} shared={st.get('shared_out_mean', 0):.0f} "
              f"rehashes={st.get('rehashes', 0):.0f} "
              + " ".join(f"{k}={v:.2f}" for k, v in st.items() if k.endswith("_s")), flush=True)
        probe = min(256, x_eval.n_rows)
        if args.retrieval and not args.dense:
            q = net.retrieval_quality(x_eval.row_slice(0, probe), y_eval.row_slice(0, probe))
            print("  retrieval " + " ".join(f"{k}={v:.4g}" for k, v in q.items()), flush=True)
        if args.anatomy and not args.dense:
            out = net.config.layers[-1]
            H = hidden_rows(net, x_eval.row_slice(0, probe))
            W, b = net.params[-1].W, net.params[-1].b
            print("  anatomy " + format_anatomy(anatomy(H, W, b, out.K, out.L)), flush=True)

    for epoch in range(math.ceil(args.epochs)):
        for x, y in iterate_batches(ds.train, 128, epoch=epoch, seed=args.seed):
            t0 = time.perf_counter()
            net.train_batch(x, y)
            clock += time.perf_counter() - t0
            it += 1
            if it % every == 0:
                evaluate()
            if it >= total:
                break
        if it >= total:
            break
    if it % every:
        evaluate()
    print(f"FINAL P@1={history[-1]:.4f} best={max(history):.4f} train_s={clock:.1f}")
    if args.save and not args.dense:
        net.save(args.save)


if __name__ == "__main__":
    main()
