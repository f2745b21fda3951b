"""Seconds per training step, samples/s, peak RSS and full-evaluation time of the TF baselines.

Runs one configuration per process (TF's thread pools are fixed when its runtime starts) on
synthetic batches of the chosen shape; the default is Amazon-670K (135,909 -> 128 -> 670,091,
~76 nonzeros and ~5.4 labels per row). The machine is shared: run big shapes for a few steps.

    python benchmarks/bench_tf.py --model tf_cpu --batch 128 --steps 5
    python benchmarks/bench_tf.py --model tf_cpu --no-jit --batch 256 --steps 5
    python benchmarks/bench_tf.py --model tf_sampled --labels 67009 --steps 10
    python benchmarks/bench_tf.py --model tf_cpu --steps 0 --eval-points 10000
    python benchmarks/bench_tf.py --model plain --steps 5        # the obvious TF code, for comparison
    python benchmarks/bench_tf.py --compare --steps 6            # all of the above side by side
Prints one `RESULT {...}` JSON line per run (median seconds per step over the timed steps, minor
page faults per step). A run measures the process as started: --compare starts each variant in
its own process with the environment the harness gives a TF job (harness.job.
isolated_environment: glibc's huge-page tunable, thread counts), or without the huge pages, as
the harness ran TF before it set them at process start.

--model plain is the TF model a user would write for this network: tf.sparse.sparse_dense_matmul
first layer, dense output layer, softmax cross-entropy on a dense y/|y| target, Keras Adam,
tf.function without XLA (XLA has no kernel for the sparse matmul); the same shapes and init.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.sysinfo import peak_rss_mb  # noqa: E402  (the job's own measure: VmHWM)


def synthetic_csr(rng: np.random.Generator, n_rows: int, n_cols: int, mean_nnz: float, min_nnz: int):
    from harness.data.csr import CSR

    counts = np.maximum(min_nnz, rng.poisson(mean_nnz, n_rows)).astype(np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = rng.integers(0, n_cols, int(indptr[-1]), dtype=np.int32)
    data = rng.random(int(indptr[-1]), dtype=np.float32)
    return CSR(indptr, indices, data, n_cols)


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class PlainTFModel:
    """The obvious TF code for this network (module docstring), behind train_step / warmup."""

    def __init__(self, ctx, jit_compile: bool = False):
        import tensorflow as tf
        from harness.models.init import initial_weights

        tf.config.threading.set_intra_op_parallelism_threads(ctx.threads)
        tf.config.threading.set_inter_op_parallelism_threads(ctx.threads)
        self.tf, self.n_labels = tf, ctx.n_labels
        (w0, b0), (w1, b1) = initial_weights(ctx)
        self.vars = [tf.Variable(w0), tf.Variable(b0), tf.Variable(w1), tf.Variable(b1)]
        self.opt = tf.keras.optimizers.Adam(ctx.lr, beta_1=ctx.beta1, beta_2=ctx.beta2, epsilon=ctx.eps)

        def step(x_idx, x_val, x_shape, y_idx, y_val):
            x = tf.sparse.reorder(tf.SparseTensor(x_idx, x_val, x_shape))
            target = tf.scatter_nd(y_idx, y_val, tf.stack([x_shape[0], self.n_labels]))
            with tf.GradientTape() as tape:
                h = tf.nn.relu(tf.sparse.sparse_dense_matmul(x, self.vars[0]) + self.vars[1])
                logits = tf.matmul(h, self.vars[2]) + self.vars[3]
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits))
            self.opt.apply_gradients(zip(tape.gradient(loss, self.vars), self.vars))
            return loss

        i64, f32 = tf.int64, tf.float32
        sig = (tf.TensorSpec([None, 2], i64), tf.TensorSpec([None], f32), tf.TensorSpec([2], i64),
               tf.TensorSpec([None, 2], i64), tf.TensorSpec([None], f32))  # no retrace per batch shape
        self._step = tf.function(step, jit_compile=jit_compile, input_signature=sig)

    def _inputs(self, x, y):
        rows = np.repeat(np.arange(x.n_rows), np.diff(x.indptr))
        x_idx = np.stack([rows, x.indices.astype(np.int64)], axis=1)
        counts = np.diff(y.indptr)
        y_rows = np.repeat(np.arange(y.n_rows), counts)
        y_idx = np.stack([y_rows, y.indices.astype(np.int64)], axis=1)
        y_val = np.repeat(1.0 / np.maximum(counts, 1), counts).astype(np.float32)
        return x_idx, x.data, np.array([x.n_rows, x.n_cols], dtype=np.int64), y_idx, y_val

    def warmup(self, x, y):
        self._step(*self._inputs(x, y))  # one real step: Keras Adam's slots are created here

    def train_step(self, x, y) -> float:
        return float(self._step(*self._inputs(x, y)))

    def describe(self):
        return {"inter_op_threads": "", "jit_compile": "false", "eval_chunk": ""}

    def diagnostics(self):
        return {"tf/traces": float(self._step.experimental_get_tracing_count())}

    def close(self):
        self.vars = None


def compare(a) -> None:
    """Each variant in its own process, the harness's environment applied at its start."""
    import subprocess

    base = [sys.executable, __file__, "--steps", str(a.steps), "--batch", str(a.batch), "--labels",
            str(a.labels), "--features", str(a.features), "--threads", str(a.threads)]
    variants = [("tf_cpu (harness: huge pages at start)", "tf_cpu", True),
                ("tf_cpu, no huge pages (before)", "tf_cpu", False),
                ("plain TF (huge pages at start)", "plain", True),
                ("plain TF, no huge pages", "plain", False)]
    results = []
    for name, model, huge in variants:
        env = dict(os.environ)
        env.pop("GLIBC_TUNABLES", None)
        if huge:
            env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"  # what harness.job gives TF jobs
        out = subprocess.run([*base, "--model", model], env=env, capture_output=True, text=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(line[len("RESULT "):])
        results.append((name, r))
        print(f"{name:40s} {r['s_per_step_median']:.3f} s/step (min {r['s_per_step_min']:.3f}), "
              f"{r['samples_per_s']:.0f} samples/s, {r['page_faults_per_step']:,.0f} page faults/step, "
              f"peak RSS {r['peak_rss_mb']:,} MB", flush=True)
    if len(results) >= 2:
        ref = results[0][1]["s_per_step_median"]
        for name, r in results[1:]:
            print(f"  {results[0][0]} vs {name}: {r['s_per_step_median'] / ref:.2f}x faster")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["tf_cpu", "tf_sampled", "plain"], default="tf_cpu")
    p.add_argument("--compare", action="store_true", help="tf_cpu and plain TF, with and without huge pages")
    p.add_argument("--features", type=int, default=135_909)
    p.add_argument("--labels", type=int, default=670_091)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps after warm-up")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--inter-op", type=int, default=None, help="inter-op threads (default: --threads)")
    p.add_argument("--jit", dest="jit", action="store_true", default=None, help="XLA on")
    p.add_argument("--no-jit", dest="jit", action="store_false", help="XLA off")
    p.add_argument("--sampled-fraction", type=float, default=0.1)
    p.add_argument("--adam", choices=("lazy", "dense"), default="dense", help="tf_sampled's Adam (train.adam)")
    p.add_argument("--n-sampled", type=int, default=None)
    p.add_argument("--nnz", type=float, default=75.7, help="mean input nonzeros per row (Amazon-670K: 75.7)")
    p.add_argument("--labels-per-row", type=float, default=5.45, help="mean labels per row (Amazon-670K: 5.45)")
    p.add_argument("--eval-points", type=int, default=0, help="time predict_topk(k=5) on this many rows")
    p.add_argument("--eval-chunk", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.compare:
        return compare(a)

    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    from harness.models.base import ModelContext
    from harness.models.tf import TFSampledSoftmaxModel, TFSoftmaxModel

    ctx = ModelContext(n_features=a.features, n_labels=a.labels, hidden=(a.hidden,), lr=1e-3,
                       seed=a.seed, threads=a.threads, batch_size=a.batch,
                       label_counts=np.ones(a.labels, dtype=np.int64),  # the batches' labels are uniform
                       adam=a.adam)
    kwargs = {"inter_op_threads": a.inter_op, "eval_chunk": a.eval_chunk}
    if a.jit is not None:
        kwargs["jit_compile"] = a.jit
    t0 = time.perf_counter()
    if a.model == "tf_cpu":
        model = TFSoftmaxModel(ctx, device="cpu", **kwargs)
    elif a.model == "plain":
        model = PlainTFModel(ctx, jit_compile=bool(a.jit))
    else:
        model = TFSampledSoftmaxModel(ctx, n_sampled=a.n_sampled, sampled_fraction=a.sampled_fraction, **kwargs)
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(a.seed)
    n_batches = max(1, min(a.steps, 8))
    xs = [synthetic_csr(rng, a.batch, a.features, a.nnz, 1) for _ in range(n_batches)]
    ys = [synthetic_csr(rng, a.batch, a.labels, a.labels_per_row - 1, 0) for _ in range(n_batches)]
    ys = [y._replace(indptr=y.indptr, data=np.ones_like(y.data)) for y in ys]
    t0 = time.perf_counter()
    model.warmup(xs[0], ys[0])
    compile_s = time.perf_counter() - t0

    times, cpu_times, losses = [], [], []
    faults0 = minor_faults()
    for i in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(model.train_step(xs[i % n_batches], ys[i % n_batches]))
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)  # CPU-seconds: less sensitive to a busy machine
    faults = (minor_faults() - faults0) / max(a.steps, 1)
    eval_s = None
    if a.eval_points:
        xe = synthetic_csr(rng, a.eval_points, a.features, a.nnz, 1)
        t0 = time.perf_counter()
        model.predict_topk(xe, 5)
        eval_s = time.perf_counter() - t0
    tags = model.describe()
    med = statistics.median(times) if times else None
    result = {
        "model": a.model, "shape": [a.features, a.hidden, a.labels], "batch": a.batch,
        "threads": a.threads, "inter_op": tags.get("inter_op_threads"), "jit": tags.get("jit_compile"),
        "optimizer": tags.get("optimizer"),
        "n_sampled": tags.get("n_sampled"), "steps": a.steps,
        "s_per_step_median": med, "s_per_step_min": min(times) if times else None,
        "samples_per_s": a.batch / med if med else None,
        "cpu_s_per_step_median": statistics.median(cpu_times) if cpu_times else None,
        "page_faults_per_step": faults, "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "build_s": round(build_s, 2), "compile_s": round(compile_s, 2),
        "eval_points": a.eval_points, "eval_s": eval_s, "eval_chunk": tags.get("eval_chunk"),
        "peak_rss_mb": round(peak_rss_mb()), "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None, "traces": model.diagnostics()["tf/traces"],
        "load1_before": load_before, "load1_after": os.getloadavg()[0],
    }
    print("RESULT " + json.dumps(result), flush=True)
    model.close()
    return result


if __name__ == "__main__":
    main()
