"""LSH hash families for SLIDE: SimHash, WTA, DWTA, DOPH, and packing of K codes into
bucket keys. See each family's module for its exact semantics and deviations from the
reference C++ (keroro824/HashingDeepLearning).

Paper terms: K codes per table, L tables, range_pow key bits, m = bin_size.
"""
from slide_core.hashing.dispatch import hash_dense, hash_dense_into, hash_rows, hash_rows_table_major, hash_sparse, hash_sparse_into
from slide_core.hashing.families import FAMILIES
from slide_core.hashing.functions import HashFunctions, make_hash_functions, scratch_sizes
from slide_core.hashing.packing import PACKINGS

__all__ = [
    "FAMILIES", "PACKINGS", "HashFunctions", "make_hash_functions", "scratch_sizes",
    "hash_dense_into", "hash_sparse_into", "hash_rows", "hash_rows_table_major", "hash_dense", "hash_sparse",
]
