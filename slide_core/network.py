"""SlideNetwork: the engine's public object (numpy in, numpy out).

    net = SlideNetwork(config, initial_weights=None, seed=0, threads=2)
    loss = net.train_batch(x, y)         # x, y: CSR-like (indptr int64, indices int32, data f32)
    top = net.predict_topk(x, 5)         # int32 (n, 5), exact dense output by default
    net.stats(); net.save(path); SlideNetwork.load(path)
    arrays = net.state(); SlideNetwork.from_state(arrays)   # the same state, as named arrays

threads == 1 runs the serial kernels (bit-reproducible for a seed); threads > 1 runs the
parallel HOGWILD kernels with one chunk of the batch per thread.
"""
from __future__ import annotations

import logging
import time
from typing import Mapping

import numpy as np

from slide_core import inference
from slide_core.adam import DENSE, LAZY, UNTOUCHED, SharedGrad, adam_lr, adam_update
from slide_core.checkpoint import load_network, save_network
from slide_core.config import LayerConfig, NetworkConfig
from slide_core.diagnostics import retrieval_quality
from slide_core.hashing import HashFunctions, hash_rows, hash_rows_table_major, make_hash_functions
from slide_core.layer import LayerParams, keras_weights, make_layer, neuron_rows, random_weights
from slide_core.sampling import STRATEGY_CODES
from slide_core.schedule import maintenance_due
from slide_core.shared_products import SharedProducts
from slide_core.state import decode_meta, encode_meta, get_tuple, put_tuple
from slide_core.step import (
    PARALLEL, SERIAL, ST_ACTIVE, ST_CANDIDATES, ST_LABELS, ST_MULTS, ST_RETRIEVED, ST_SAMPLES, ST_SHARED, BatchResult,
    Labels, OutputSpec, SelectSpec, SharedTail,
)
from slide_core.tables import HashTables, build_tables, build_tables_table_major
from slide_core.tail import SharedSample, TailLaw, draws_for, make_law, sample_shared
from slide_core.workspace import Workspace, make_workspace

log = logging.getLogger(__name__)

# what state() saves of every layer: all but the gradients, which are zero between batches
_STATE_LAYER_FIELDS = tuple(name for name in LayerParams._fields if name not in ("gW", "gb"))
TIMERS = ("hash_s", "tables_s", "forward_backward_s", "tail_s", "adam_s", "rehash_s")
_NO_SHARED = SharedSample(np.zeros(0, np.int32), np.zeros(0, np.float32), 0)


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers (numpy SeedSequence), for hash functions and tables."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


def _as_csr(obj, name: str, n_cols: int):
    """(indptr int64, indices int32, data float32) views/copies of a CSR-like object."""
    for attr in ("indptr", "indices", "data"):
        if not hasattr(obj, attr):
            raise TypeError(f"{name} must be CSR-like with indptr/indices/data, got {type(obj).__name__}")
    indptr = np.ascontiguousarray(obj.indptr, dtype=np.int64)
    lo, hi = int(indptr[0]), int(indptr[-1])
    indices = np.ascontiguousarray(obj.indices[lo:hi] if lo else obj.indices[:hi], dtype=np.int32)
    data = np.ascontiguousarray(obj.data[lo:hi] if lo else obj.data[:hi], dtype=np.float32)
    if indptr.ndim != 1 or len(indptr) < 1 or np.any(np.diff(indptr) < 0):
        raise ValueError(f"{name}.indptr must be a non-decreasing 1-D array")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_cols):
        raise ValueError(f"{name} has column ids outside [0, {n_cols})")
    return indptr, indices, data


class SlideNetwork:
    def __init__(self, config: NetworkConfig, initial_weights: list | None = None, seed: int | None = None,
                 threads: int = 1, label_counts: np.ndarray | None = None):
        """label_counts: training count of every output neuron (label), for a tail law that
        follows the data (LayerConfig.tail_law; slide_core.tail)."""
        if not isinstance(config, NetworkConfig):
            raise TypeError(f"config must be a NetworkConfig, got {type(config).__name__}")
        if len(config.layers) < 2:
            raise ValueError("SlideNetwork needs at least one hidden layer before the output layer")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.config = config
        self.seed = config.seed if seed is None else int(seed)
        self.threads = int(threads)
        sizes = config.sizes
        if initial_weights is None:
            initial_weights = random_weights(sizes, self.seed)
        if len(initial_weights) != len(config.layers):
            raise ValueError(f"initial_weights has {len(initial_weights)} layers, config has {len(config.layers)}")
        # the output layer's gradient is assembled in the grouped Adam (no gW array, no race)
        # when its input is dense and its output sparse: the Amazon/Delicious configuration
        self.grouped = (not config.layers[-1].dense) and config.layers[-2].dense
        for i, cfg in enumerate(config.layers):
            if cfg.shared_tail and (i != len(config.layers) - 1 or not self.grouped):
                raise ValueError(f"layers[{i}]: a shared tail needs the output layer with a dense input")
        self.label_counts = None if label_counts is None else np.asarray(label_counts, dtype=np.int64).copy()
        self._products = SharedProducts(self.threads)  # the shared tail's BLAS products
        # the tail's law per layer (the output layer's labels; hidden layers sample uniformly),
        # and the draws of the output layer's per-sample tail and of its shared tail
        last = len(config.layers) - 1
        self.laws: list[TailLaw] = [
            make_law(cfg.tail_law if i == last else "uniform", cfg.width, self.label_counts,
                     pad_target=max(0, cfg.sampled_target - cfg.chosen_limit))
            for i, cfg in enumerate(config.layers)]
        out = config.layers[last]
        self.shared_draws = draws_for(self.laws[last], min(out.shared_tail, out.width))
        self._shared = _NO_SHARED  # the current batch's shared tail
        self.params: list[LayerParams] = []
        for i, (W, b) in enumerate(initial_weights):
            if tuple(np.shape(W)) != (sizes[i], sizes[i + 1]):
                raise ValueError(f"initial_weights[{i}] W has shape {np.shape(W)}, expected {(sizes[i], sizes[i + 1])}")
            self.params.append(make_layer(W, b, input_major=self.input_major(i),
                                          grad=not (i == len(config.layers) - 1 and self.grouped)))
        self.step = 0  # finished batches; batch ids are 1-based (step + 1)
        self.rebuilds = [0] * len(config.layers)
        self.last_drift = [0.0] * len(config.layers)  # adaptive schedule: key drift at the last check
        self._rehashes = 0  # rehashes (and rebuilds) since the last stats() call
        self.rehash_total = 0  # rehashes (and rebuilds) since construction
        self.hfs: list[HashFunctions | None] = [None] * len(config.layers)
        self.tables: list[HashTables | None] = [None] * len(config.layers)
        self._keys_t: dict[int, np.ndarray] = {}  # per layer: table-major key buffer of _rehash
        self._centers: dict[int, np.ndarray] = {}  # per layer (center_rows): the mean row at the last rehash
        self._dummy_tables = build_tables(np.zeros((1, 1), dtype=np.int32), 1, 1, "fifo", 0)
        self._ws: Workspace | None = None
        self._ws_predict: dict = {}
        self._stat_acc = np.zeros((len(config.layers), 8))
        self._timers = dict.fromkeys(TIMERS, 0.0)
        self._batches_since_stats = 0
        self._samples_since_stats = 0
        for i, cfg in enumerate(config.layers):
            if cfg.uses_tables:
                self._new_hash_functions(i)
                self._rehash(i)
        self._timers["rehash_s"] = 0.0  # initial build is set-up, not training

    # ---------------------------------------------------------------- kernels / workspaces
    @property
    def kernels(self):
        return PARALLEL if self.threads > 1 else SERIAL

    @property
    def n_chunks(self) -> int:
        return self.threads

    @staticmethod
    def input_major(i: int) -> bool:
        """Whether layer i's W is stored input-major (n_in, n_out): the first layer only, whose
        sparse input makes one input feature's weights the contiguous row a batch touches
        (slide_core.layer). Every other layer is neuron-major (n_out, n_in). The one place
        that decides it."""
        return i == 0

    def _workspace(self, rows: int, max_labels: int) -> Workspace:
        ws = self._ws
        if ws is None or ws.rows < rows or ws.label_room < max_labels or ws.n_chunks != self.n_chunks:
            room = 8
            while room < max_labels:
                room *= 2
            rows_alloc = max(rows, ws.rows if ws is not None else 0)
            if ws is not None:
                self._fold_stats(ws)
            self._ws = ws = make_workspace(self.config.layers, rows_alloc, max(room, ws.label_room if ws else 0),
                                           self.n_chunks, self.hfs, grouped=self.grouped,
                                           pad_draws=self.laws[-1].pad_draws,
                                           shared_draws=self.shared_draws)
        return ws

    def _fold_stats(self, ws: Workspace) -> None:
        for i, lw in enumerate(ws.layers):
            self._stat_acc[i] += lw.stats.sum(axis=0)[:8]
            lw.stats[:] = 0.0

    # ---------------------------------------------------------------- hash tables
    def _new_hash_functions(self, i: int) -> None:
        cfg = self.config.layers[i]
        self.hfs[i] = make_hash_functions(
            cfg.hash_family, self.config.sizes[i], cfg.K, cfg.L, cfg.range_pow,
            derive_seed(self.seed, i, self.rebuilds[i]), bin_size=cfg.bin_size,
            simhash_density=cfg.simhash_density, packing=cfg.packing)
        self._ws_predict.clear()

    def _rehash(self, i: int) -> None:
        """Re-insert every neuron of layer i. Keys go table-major into a buffer kept across
        rehashes (L*n int32, 134 MB at Amazon-670K), and the tables are rebuilt in the old
        tables' arrays: nothing else holds them (checkpoints and tests copy)."""
        cfg = self.config.layers[i]
        W = neuron_rows(self.params[i], self.input_major(i))
        buf = self._keys_t.get(i)
        if buf is None or buf.shape != (cfg.L, W.shape[0]):
            buf = self._keys_t[i] = np.empty((cfg.L, W.shape[0]), dtype=np.int32)
        center = None
        if cfg.center_rows:  # the rows' mean, kept: the drift check hashes about the same one
            center = self._centers[i] = W.mean(axis=0, dtype=np.float64).astype(np.float32)
        keys_t = hash_rows_table_major(self.hfs[i], W, out=buf, center=center)
        self.tables[i] = build_tables_table_major(keys_t, cfg.range_pow, cfg.bucket_capacity, cfg.insertion,
                                                  derive_seed(self.seed, i, self.step, 7), reuse=self.tables[i])

    def _key_drift(self, i: int) -> float:
        """Share of (neuron, table) keys of a random probe of layer i's neurons that differ
        from the keys the tables were built with (the adaptive schedule's signal)."""
        c = self.config
        n = self.config.layers[i].width
        rng = np.random.default_rng([self.seed, i, self.step, 0xD41F7])
        probe = np.sort(rng.choice(n, min(c.drift_probe, n), replace=False))
        W = neuron_rows(self.params[i], self.input_major(i))
        now = hash_rows(self.hfs[i], np.ascontiguousarray(W[probe]), center=self._centers.get(i))
        return float(np.mean(now != self._keys_t[i][:, probe].T))

    def _maintain(self) -> None:
        c = self.config
        due = maintenance_due(self.step, c.schedule, c.rehash_every if c.schedule != "adaptive"
                              else c.drift_check_every, c.rebuild_every, c.schedule_n0, c.schedule_lambda)
        if due is None:
            return
        t0 = time.perf_counter()
        for i, cfg in enumerate(c.layers):
            if not cfg.uses_tables:
                continue
            if due == "check":
                self.last_drift[i] = self._key_drift(i)
                if self.last_drift[i] < c.drift_threshold:
                    continue
            if due == "rebuild":
                self.rebuilds[i] += 1
                self._new_hash_functions(i)
            self._rehash(i)
            self._rehashes += 1
            self.rehash_total += 1
        self._timers["rehash_s"] += time.perf_counter() - t0

    # ---------------------------------------------------------------- the batch
    def _select(self, kern, i, ws, inp, rows, force, y_ptr, y_ids, stream, timers, sample=True):
        """Active sets of layer i for the batch in ws. force: the labels go in first (training);
        sample: fill up to the budget with uniform random neurons (off: only what the strategy
        chooses, for LSH inference and retrieval diagnostics)."""
        cfg: LayerConfig = self.config.layers[i]
        lw = ws.layers[i]
        p = self.params[i]
        if cfg.uses_tables:
            t0 = time.perf_counter()
            kern.hash(self.hfs[i], inp, lw.keys[:rows], lw.scratch_f, lw.scratch_i, ws.n_chunks)
            if timers:
                self._timers["hash_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        cap = lw.ids.shape[1]
        tables = self.tables[i] if cfg.uses_tables else self._dummy_tables
        spec = SelectSpec(STRATEGY_CODES[cfg.strategy], cap, cfg.chosen_limit, cfg.pool_limit,
                          cfg.sampled_target if sample else 0,
                          cfg.threshold, force, self.seed, stream, i)
        kern.select(tables, lw.keys[:rows], spec, Labels(y_ptr, y_ids), p, self.input_major(i), inp,
                    lw.select_scratch(), self.laws[i], lw.active(rows, False), ws.n_chunks, lw.stats)
        if timers:
            self._timers["tables_s"] += time.perf_counter() - t0

    def train_batch(self, x, y) -> float:
        """One Adam step on a batch; returns the mean loss (rows without labels count 0)."""
        loss = self._forward_backward(x, y)
        self._update()
        return loss

    def _update(self) -> None:
        """Adam after _forward_backward, then the step counter and table maintenance."""
        c = self.config
        rows = self._last_rows
        batch_id = self.step + 1
        t0 = time.perf_counter()
        mode = LAZY if c.optimizer == "lazy" else DENSE
        ws = self._ws
        n_chunks = ws.n_chunks
        adam_chunks = n_chunks * 4 if n_chunks > 1 else 1
        kern = self.kernels
        for i, p in enumerate(self.params):
            if i == len(self.params) - 1 and self.grouped:
                self._grouped_adam(ws, rows, batch_id)
                if mode == DENSE:
                    adam_update(kern.adam, p, batch_id, UNTOUCHED, c.lr, c.beta1, c.beta2, c.eps, adam_chunks)
            else:
                adam_update(kern.adam, p, batch_id, mode, c.lr, c.beta1, c.beta2, c.eps, adam_chunks)
        self._timers["adam_s"] += time.perf_counter() - t0
        self.step = batch_id
        self._batches_since_stats += 1
        self._samples_since_stats += rows
        self._maintain()

    def _grouped_adam(self, ws: Workspace, rows: int, batch_id: int) -> None:
        c = self.config
        last = len(c.layers) - 1
        lw = ws.layers[last]
        p = self.params[last]
        kern = self.kernels
        m = len(self._shared.ids)
        shared = SharedGrad(self._shared.ids, ws.tail.gW[:m], ws.tail.gb[:m])
        kern.group_rows(lw.ids[:rows], lw.cnt[:rows], ws.has_grad[:rows], shared, ws.grp_count, ws.grp_groups, p,
                        batch_id, ws.n_chunks)
        kern.grouped(p, ws.grp_groups, lw.vals[:rows], ws.layers[last - 1].vals[:rows], shared, ws.grp_gbuf,
                     adam_lr(c.lr, c.beta1, c.beta2, batch_id), c.beta1, c.beta2, c.eps, ws.n_chunks)
        self._shared = _NO_SHARED

    def _deferred_output_grad(self):
        """(gW (n_out, n_in), gb) of the output layer after _forward_backward in grouped mode
        (what grouped Adam assembles, the shared tail's rows included; for tests)."""
        ws = self._ws
        last = len(self.config.layers) - 1
        lw, prev = ws.layers[last], ws.layers[last - 1]
        n_out, n_in = self.params[last].W.shape
        gW = np.zeros((n_out, n_in))
        gb = np.zeros(n_out)
        rows = self._last_rows
        for s in range(rows):
            if not ws.has_grad[s]:
                continue
            ids = lw.ids[s, :lw.cnt[s]]
            dz = lw.vals[s, :lw.cnt[s]].astype(np.float64)
            np.add.at(gW, ids, dz[:, None] * prev.vals[s].astype(np.float64)[None, :])
            np.add.at(gb, ids, dz)
        m = len(self._shared.ids)
        gW[self._shared.ids] += ws.tail.gW[:m]
        gb[self._shared.ids] += ws.tail.gb[:m]
        return gW, gb

    def _forward_backward(self, x, y) -> float:
        """Everything but the update: active sets, forward, loss, gradients left in
        params[i].gW / gb with row stamps = step + 1. Returns the mean loss."""
        c = self.config
        n_out = c.layers[-1].width
        x_ptr, x_ids, x_vals = _as_csr(x, "x", c.n_features)
        y_ptr_in, y_ids, _ = _as_csr(y, "y", n_out)
        rows = len(x_ptr) - 1
        if len(y_ptr_in) - 1 != rows:
            raise ValueError(f"x has {rows} rows but y has {len(y_ptr_in) - 1}")
        if rows == 0:
            raise ValueError("empty batch")
        max_labels = int(np.diff(y_ptr_in).max())
        ws = self._workspace(rows, max_labels)
        np.subtract(x_ptr[:-1], x_ptr[0], out=ws.x_start[:rows])
        np.subtract(x_ptr[1:], x_ptr[:-1], out=ws.x_cnt[:rows])
        y_ptr = ws.y_ptr[:rows + 1]
        np.subtract(y_ptr_in, y_ptr_in[0], out=y_ptr)
        kern = self.kernels
        batch_id = self.step + 1
        last = len(c.layers) - 1
        inp = ws.batch_input(rows, x_ids, x_vals)
        inputs = []
        t_fb = 0.0
        for i, cfg in enumerate(c.layers):
            lw = ws.layers[i]
            p = self.params[i]
            inputs.append(inp)
            if not cfg.dense:
                self._select(kern, i, ws, inp, rows, i == last, y_ptr, y_ids, batch_id, True)
            t0 = time.perf_counter()
            if i < last:
                kern.forward(p, self.input_major(i), True, inp, lw.active(rows, cfg.dense), ws.n_chunks, lw.stats)
            else:
                prev = ws.layers[i - 1]
                tail = self._shared_tail_logits(ws, rows, batch_id)  # timed apart, as tail_s
                t0 = time.perf_counter()
                kern.output(p, inp, prev.delta[:rows].reshape(-1), lw.active(rows, cfg.dense), Labels(y_ptr, y_ids),
                            OutputSpec(cfg.log_q_correction, self.grouped, 1.0 / rows, batch_id), tail,
                            BatchResult(ws.losses[:rows], ws.has_grad[:rows]), ws.n_chunks, lw.stats)
                t_fb += time.perf_counter() - t0
                self._shared_tail_gradients(ws, rows)
                t0 = time.perf_counter()
            t_fb += time.perf_counter() - t0
            inp = lw.as_input(rows, cfg.dense)
        t0 = time.perf_counter()
        dummy = ws.layers[0].delta[:0].reshape(-1)
        for i in range(last - 1, -1, -1):
            cfg = c.layers[i]
            lw = ws.layers[i]
            p = self.params[i]
            i_delta = ws.layers[i - 1].delta[:rows].reshape(-1) if i > 0 else dummy  # empty: no delta wanted
            kern.backward(p, self.input_major(i), inputs[i], i_delta, lw.active(rows, cfg.dense), lw.delta[:rows],
                          ws.has_grad[:rows], batch_id, ws.n_chunks)
        self._timers["forward_backward_s"] += t_fb + time.perf_counter() - t0
        self._last_rows = rows
        return float(ws.losses[:rows].astype(np.float64).sum() / rows)

    def _shared_tail_logits(self, ws: Workspace, rows: int, batch_id: int) -> SharedTail:
        """Draw the batch's shared tail (tail.sample_shared) and its products with the batch's
        hidden activations, H @ W_S^T (shared_products.py): what the output kernel takes."""
        last = len(self.config.layers) - 1
        tw = ws.tail
        m = tw.z.shape[1]
        if m == 0:
            return SharedTail(tw.z[:rows], tw.shift, tw.pos)
        t0 = time.perf_counter()
        p = self.params[last]
        self._shared = sample = sample_shared(self.laws[last], p.b.shape[0], self.shared_draws, self.seed, batch_id,
                                              tw.seen, tw.ids, tw.log_q)
        m = len(sample.ids)
        np.subtract(p.b[sample.ids], sample.log_q, out=tw.shift[:m])
        tw.pos[sample.ids] = np.arange(m, dtype=np.int32)
        z = tw.z[:rows, :m]
        self._products.logits(p.W, sample.ids, ws.layers[last - 1].vals[:rows], tw.w[:m], z)
        self._timers["tail_s"] += time.perf_counter() - t0
        return SharedTail(z, tw.shift[:m], tw.pos)

    def _shared_tail_gradients(self, ws: Workspace, rows: int) -> None:
        """After the output kernel left dL/dz in the shared tail's columns: add the tail's part
        of the hidden delta (dZ @ W_S) and the shared rows' gradient (dZ^T @ H, column sums)
        for the grouped Adam (timed as tail_s)."""
        m = len(self._shared.ids)
        if m == 0:
            return
        t0 = time.perf_counter()
        last = len(self.config.layers) - 1
        tw = ws.tail
        prev = ws.layers[last - 1]
        self._products.gradients(tw.z[:rows, :m], tw.w[:m], prev.vals[:rows], tw.gW[:m], tw.gb[:m],
                                 tw.dh[:, :rows], prev.delta[:rows])
        tw.pos[self._shared.ids] = -1
        self._timers["tail_s"] += time.perf_counter() - t0

    # ---------------------------------------------------------------- inference
    def predict_topk(self, x, k: int, mode: str | None = None) -> np.ndarray:
        """int32 (n, k): the k highest-scoring labels per row, best first. mode "dense"
        (exact, all labels; the default) or "lsh" (only the tables' active set; rows whose
        active set is smaller than k are padded with -1)."""
        mode = self.config.inference if mode is None else mode
        if mode not in ("dense", "lsh"):
            raise ValueError(f"mode must be 'dense' or 'lsh', got {mode!r}")
        if not isinstance(k, (int, np.integer)) or k < 1 or k > self.config.layers[-1].width:
            raise ValueError(f"k must be an int in [1, {self.config.layers[-1].width}], got {k!r}")
        x_ptr, x_ids, x_vals = _as_csr(x, "x", self.config.n_features)
        if mode == "dense":
            return inference.predict_dense(self, x_ptr, x_ids, x_vals, int(k))
        return inference.predict_lsh(self, x_ptr, x_ids, x_vals, int(k))

    def _predict_workspace(self, rows: int, dense: bool) -> Workspace:
        key = (rows, dense, self.n_chunks)
        ws = self._ws_predict.get(key)
        if ws is None:
            self._ws_predict.clear()
            ws = make_workspace(self.config.layers, rows, 0, self.n_chunks, self.hfs, dense=dense)
            self._ws_predict[key] = ws
        return ws

    # ---------------------------------------------------------------- diagnostics
    def retrieval_quality(self, x, y=None) -> dict[str, float]:
        """How well the output layer's strategy finds the large logits on rows x (labels y
        optional): retrieved_mean, topk_recall_at_10/100, lift_at_10/100, label_recall,
        softmax_mass (slide_core.diagnostics). Computes every logit of x: call it on a few
        hundred held-out rows, outside any timed region."""
        x_ptr, x_ids, x_vals = _as_csr(x, "x", self.config.n_features)
        y_ptr = y_ids = None
        if y is not None:
            y_ptr, y_ids, _ = _as_csr(y, "y", self.config.layers[-1].width)
            if len(y_ptr) != len(x_ptr):
                raise ValueError(f"x has {len(x_ptr) - 1} rows but y has {len(y_ptr) - 1}")
            y_ptr = y_ptr - y_ptr[0]
        return retrieval_quality(self, x_ptr - x_ptr[0], x_ids, x_vals, y_ptr, y_ids)

    def stats(self) -> dict[str, float]:
        """Diagnostics accumulated since the last call (training batches only); resets."""
        if self._ws is not None:
            self._fold_stats(self._ws)
        out: dict[str, float] = {}
        acc = self._stat_acc
        last = len(self.config.layers) - 1
        total_mults = 0.0
        for i, cfg in enumerate(self.config.layers):
            if not cfg.dense:
                n = max(acc[i, ST_SAMPLES], 1.0)
                # the active set's parts: forced labels, retrieved (chosen by the strategy: the
                # tables, or the oracle control), padding (per-sample samples; all of the random
                # control's set unless the tail is shared), shared (the batch's shared tail
                # less the sample's accidental hits)
                out[f"active_mean/layer{i}"] = (acc[i, ST_ACTIVE] + acc[i, ST_SHARED]) / n
                out[f"labels_mean/layer{i}"] = acc[i, ST_LABELS] / n
                out[f"retrieved_mean/layer{i}"] = (acc[i, ST_CANDIDATES] - acc[i, ST_LABELS]) / n
                out[f"padding_mean/layer{i}"] = (acc[i, ST_ACTIVE] - acc[i, ST_CANDIDATES]) / n
                out[f"shared_mean/layer{i}"] = acc[i, ST_SHARED] / n
            total_mults += acc[i, ST_MULTS]
        lcfg = self.config.layers[last]
        out["active_out_mean"] = out.get(f"active_mean/layer{last}", float(lcfg.width))
        for part in ("labels", "retrieved", "padding", "shared"):
            if f"{part}_mean/layer{last}" in out:
                out[f"{part}_out_mean"] = out[f"{part}_mean/layer{last}"]
        if lcfg.uses_tables and acc[last, ST_LABELS] > 0:
            out["label_recall"] = acc[last, ST_RETRIEVED] / acc[last, ST_LABELS]
        n_samples = float(self._samples_since_stats)
        if n_samples > 0:
            sizes = self.config.sizes
            out["mults_per_sample"] = total_mults / n_samples
            # dense equivalent: the first layer's sparse-input product as run, plus every
            # later layer in full
            dense = acc[0, ST_MULTS] / n_samples + sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
            out["mults_dense_ratio"] = out["mults_per_sample"] / max(dense, 1.0)
        out.update(self._timers)
        out["rehashes"] = float(self._rehashes)
        if self.config.schedule == "adaptive" and lcfg.uses_tables:
            out["key_drift"] = self.last_drift[last]
        out["batches"] = float(self._batches_since_stats)
        self._stat_acc[:] = 0.0
        self._timers = dict.fromkeys(TIMERS, 0.0)
        self._batches_since_stats = 0
        self._samples_since_stats = 0
        self._rehashes = 0
        return out

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(W (n_in, n_out), b)] copies in the Keras layout."""
        return [keras_weights(p, self.input_major(i)) for i, p in enumerate(self.params)]

    # ---------------------------------------------------------------- state and checkpoint
    def state(self) -> dict[str, np.ndarray]:
        """The network's whole state as named arrays (no pickle): a JSON header (config, step,
        seed, rebuild counters, the diagnostics accumulated since the last stats() call), every
        layer's weights, Adam moments and row stamps, every layer's hash functions, tables and
        the keys the tables were built from (what the adaptive schedule measures drift
        against), the rows' centers and the training label counts a tail law follows. The RNG
        is counter-based (rng.py), so seed + step is its whole state. Views of the live arrays,
        not copies: write them out before the next training step."""
        if self._ws is not None:  # the workspace's per-batch counters into the accumulators
            self._fold_stats(self._ws)
        meta = {"config": self.config.to_dict(), "step": self.step, "seed": self.seed,
                "rebuilds": self.rebuilds, "rehash_total": self.rehash_total, "last_drift": self.last_drift,
                "rehashes_since_stats": self._rehashes, "batches_since_stats": self._batches_since_stats,
                "samples_since_stats": self._samples_since_stats, "timers": self._timers}
        arrays: dict[str, np.ndarray] = {"meta": encode_meta(meta), "stat_acc": self._stat_acc}
        if self.label_counts is not None:
            arrays["label_counts"] = self.label_counts
        for i, p in enumerate(self.params):
            for name in _STATE_LAYER_FIELDS:
                arrays[f"layer{i}.{name}"] = getattr(p, name)
            if self.hfs[i] is not None:
                put_tuple(arrays, f"hf{i}", self.hfs[i])
                put_tuple(arrays, f"tables{i}", self.tables[i])
                arrays[f"keys{i}"] = self._keys_t[i]
            if i in self._centers:
                arrays[f"center{i}"] = self._centers[i]
        return arrays

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], threads: int | None = None,
                   source: str = "state") -> "SlideNetwork":
        """A network with the state `state()` gave; it continues training bit-identically in
        serial mode (tests/test_slide_engine.py). `source` names where the arrays came from in
        error messages."""
        meta = decode_meta(arrays, source)
        config = NetworkConfig.from_dict(meta["config"])
        weights = []
        for i in range(len(config.layers)):
            W = arrays[f"layer{i}.W"]
            weights.append((W if cls.input_major(i) else W.T, arrays[f"layer{i}.b"]))
        # the constructor builds fresh tables from these weights; they are replaced below
        counts = arrays["label_counts"] if "label_counts" in arrays else None
        net = cls(config, initial_weights=weights, seed=meta["seed"], threads=threads or 1, label_counts=counts)
        for i in range(len(config.layers)):
            fields = {name: np.ascontiguousarray(arrays[f"layer{i}.{name}"]) for name in _STATE_LAYER_FIELDS}
            p = net.params[i]
            net.params[i] = LayerParams(**fields, gW=p.gW, gb=p.gb)
            if f"hf{i}.family" in arrays:
                net.hfs[i] = get_tuple(arrays, f"hf{i}", HashFunctions)
                net.tables[i] = get_tuple(arrays, f"tables{i}", HashTables)
                net._keys_t[i] = np.ascontiguousarray(arrays[f"keys{i}"])
            if f"center{i}" in arrays:
                net._centers[i] = np.ascontiguousarray(arrays[f"center{i}"])
        net.step = int(meta["step"])
        net.rebuilds = list(meta["rebuilds"])
        net.rehash_total = int(meta["rehash_total"])
        net.last_drift = list(meta["last_drift"])
        net._stat_acc[:] = arrays["stat_acc"]
        net._rehashes = int(meta["rehashes_since_stats"])
        net._batches_since_stats = int(meta["batches_since_stats"])
        net._samples_since_stats = int(meta["samples_since_stats"])
        net._timers.update(meta["timers"])
        return net

    def save(self, path) -> None:
        """state() in one .npz file (slide_core.checkpoint)."""
        save_network(self, path)

    @classmethod
    def load(cls, path, threads: int | None = None) -> "SlideNetwork":
        return load_network(cls, path, threads)
