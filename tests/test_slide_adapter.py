"""model=slide: the adapter obeys the Model protocol; warmup leaves the state unchanged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from harness.data.csr import CSR
from harness.models.base import Model, ModelContext
from harness.models.init import initial_weights
from harness.models.slide import SlideModel
from slide_core import SlideNetwork

ROOT = Path(__file__).resolve().parents[1]


def ctx(threads=1):
    return ModelContext(n_features=80, n_labels=300, hidden=(16,), lr=1e-2, seed=3, threads=threads, batch_size=16)


def data(seed=0, rows=16):
    rng = np.random.default_rng(seed)
    x = CSR.from_rows([sorted(rng.choice(80, int(rng.integers(0, 6)), replace=False).tolist()) for _ in range(rows)], 80)
    y = CSR.from_rows([sorted(rng.choice(300, int(rng.integers(0, 3)), replace=False).tolist()) for _ in range(rows)], 300)
    return x, y


def snapshot(model):
    net = model.net
    return ([a.copy() for p in net.params for a in (p.W, p.b, p.mW, p.vW, p.row_stamp)],
            net.tables[-1].entries.copy(), net.step)


@pytest.mark.parametrize("threads", [1, 2])
def test_protocol_and_warmup_leaves_state_unchanged(threads):
    # budget 15: up to 11 chosen by the tables; the uniform tail fills every set to exactly the
    # budget, which the accounting below checks (a frequency law's tail varies in size)
    m = SlideModel(ctx(threads), sparsity=0.05, hash_family="dwta", K=2, L=6, range_pow=6, rehash_every=2,
                   min_padding=4, tail_law="uniform")
    assert isinstance(m, Model)
    for (W, b), (Wk, bk) in zip(initial_weights(ctx()), m.net.weights()):
        assert np.array_equal(W, Wk) and np.array_equal(b, bk)  # the shared initialisation
    x, y = data()
    before = snapshot(m)
    m.warmup(x, y)
    after = snapshot(m)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0]))
    assert np.array_equal(before[1], after[1]) and before[2] == after[2]
    batches = [data(i) for i in range(4)]
    losses = [m.train_step(*b) for b in batches]
    assert all(np.isfinite(losses))
    top = m.predict_topk(x, 5)
    assert top.shape == (16, 5) and top.dtype == np.int32
    d = m.diagnostics()
    # the four training batches, and only they (not warmup, not prediction), as the data says:
    # every sample's distinct labels are forced in, then padded to exactly the budget
    out = m.config.layers[-1]
    labels = np.array([len(set(by.indices[by.indptr[s]:by.indptr[s + 1]].tolist()))
                       for _, by in batches for s in range(by.n_rows)])
    assert d["slide/batches"] == 4
    assert d["slide/labels_out_mean"] == pytest.approx(labels.mean())
    assert d["slide/active_out_mean"] == pytest.approx(np.minimum(300, labels + out.budget).mean())
    assert d["slide/labels_out_mean"] + d["slide/retrieved_out_mean"] + d["slide/padding_out_mean"] == \
        pytest.approx(d["slide/active_out_mean"])
    assert 0 < d["slide/retrieved_out_mean"] <= out.chosen_limit  # the tables chose some
    assert 0 < d["slide/mults_dense_ratio"] < 1 and d["slide/forward_backward_s"] > 0
    if threads == 1:  # serial is deterministic: the same as the engine on its own, timers aside
        net = SlideNetwork(m.config, initial_weights=initial_weights(ctx()), seed=3, threads=1)
        for b in batches:
            net.train_batch(*b)
        engine = {f"slide/{k}": v for k, v in net.stats().items() if not k.endswith("_s")}
        assert {k: d[k] for k in engine} == pytest.approx(engine)
    assert m.diagnostics()["slide/batches"] == 0  # reading them resets them
    tags = m.describe()
    assert tags["optimizer"] == "adam_lazy" and tags["slide.hash_family"] == "dwta"
    q = m.eval_diagnostics(x, y)
    rq = m.net.retrieval_quality(x, y)
    assert q["slide/eval_retrieved_mean"] == rq["retrieved_mean"] > 0
    assert q["slide/topk_recall_at_10"] == rq["topk_recall_at_10"] and q["slide/softmax_mass"] == rq["softmax_mass"]
    m.close()


def test_state_dict_restores_a_model_that_continues_identically():
    """What a job checkpoint holds of the SLIDE model (SlideNetwork.state, as copies like
    harness.job_state reads them) builds a model that trains on exactly as the original."""
    def make():
        return SlideModel(ctx(), sparsity=0.05, hash_family="dwta", K=2, L=6, range_pow=6, rehash_every=2,
                          tail_law="uniform")

    m = make()
    for i in range(3):
        m.train_step(*data(i))
    state = {k: np.array(v) for k, v in m.state_dict().items()}
    restored = make()
    restored.load_state_dict(state)
    assert restored.net.step == 3
    later = [data(i) for i in range(3, 6)]
    assert [m.train_step(*b) for b in later] == [restored.train_step(*b) for b in later]
    assert all(np.array_equal(a, b) for a, b in zip(snapshot(m)[0], snapshot(restored)[0]))
    state["meta"] = np.frombuffer(b'{"format": 2}', dtype=np.uint8)
    with pytest.raises(ValueError, match="format 2 is not one of"):
        restored.load_state_dict(state)


def _model_params(name: str):
    """model.params of conf/model/<name>.yaml with its defaults list (other model files) applied."""
    cfg = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")
    parents = [d for d in cfg.get("defaults", []) if isinstance(d, str) and d not in ("_self_", "model_schema")]
    params = OmegaConf.create({})
    for parent in parents:
        params = OmegaConf.merge(params, _model_params(parent))
    return OmegaConf.merge(params, cfg.params)


@pytest.mark.parametrize("name", ["slide", "slide_reference", "slide_delicious200k"])
def test_model_configs_instantiate(name):
    params = OmegaConf.merge(_model_params(name), {"range_pow": min(_model_params(name).range_pow, 8), "L": 4})
    m = instantiate(params, _partial_=True)(ctx=ctx())  # as harness.job does
    assert isinstance(m, SlideModel)
    out = m.config.layers[-1]
    assert 1 <= out.budget <= 300 and out.K >= 1
    assert set(m.resolved_params()) >= {"slide.K", "slide.L", "slide.budget", "slide.sparsity"}


def test_reference_config_is_the_reference():
    """model=slide_reference holds the C++ code's settings (Config.h / Config_amz.csv / Layer.cpp)."""
    p = _model_params("slide_reference")
    assert (p.hash_family, p.K, p.L, p.range_pow, p.bin_size, p.bucket_capacity) == ("dwta", 6, 50, 18, 8, 128)
    assert (p.packing, p.insertion, p.adam, p.strategy) == ("reference_ln", "fifo", "dense", "vanilla")
    assert p.retrieval_cap is None and p.padding and p.active_budget == 1000 and not p.log_q_correction
    assert (p.rehash_every, p.rebuild_every, p.threshold, p.bias_init_std) == (50, 1000, 3, 0.01)
    m = instantiate(OmegaConf.merge(p, {"range_pow": 8, "L": 4}), _partial_=True)(ctx=ctx())
    b = m.net.params[-1].b
    assert 0.005 < float(b.std()) < 0.015  # biases drawn from N(0, 0.01), not the shared zeros


def test_adapter_defaults_equal_slide_yaml():
    """One source of truth: the adapter's keyword defaults are what conf/model/slide.yaml says."""
    import inspect

    params = _model_params("slide")
    sig = inspect.signature(SlideModel.__init__)
    for key, value in params.items():
        if key.startswith("_"):
            continue
        assert sig.parameters[key].default == value, key
