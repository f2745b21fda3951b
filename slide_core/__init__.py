"""SLIDE: sub-linear deep learning with LSH-selected active neurons (Numba engine).

    from slide_core import SlideNetwork, NetworkConfig, LayerConfig

numpy in, numpy out; imports nothing from the harness (harness/), Hydra, MLflow or TF.
"""
from slide_core.config import LayerConfig, NetworkConfig
from slide_core.hashing import (
    FAMILIES, PACKINGS, HashFunctions, hash_dense, hash_dense_into, hash_rows, hash_sparse,
    hash_sparse_into, make_hash_functions, scratch_sizes,
)
from slide_core.inference import dense_topk
from slide_core.network import SlideNetwork
from slide_core.tables import HashTables, build_tables

__all__ = [
    "SlideNetwork", "NetworkConfig", "LayerConfig", "dense_topk",
    "FAMILIES", "PACKINGS", "HashFunctions", "make_hash_functions", "scratch_sizes",
    "hash_dense_into", "hash_sparse_into", "hash_rows", "hash_dense", "hash_sparse",
    "HashTables", "build_tables",
]
