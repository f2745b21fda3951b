"""read_xmc / write_xmc: the format, every malformed case, and agreement with a plain-Python
reference parser."""
from __future__ import annotations

import numpy as np
import pytest

from harness.data.csr import CSR
from harness.data.xmc import XMCFormatError, XMCSplit, read_xmc, write_xmc


def _write(tmp_path, text: str, name: str = "data.txt", newline: str = "\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def reference_parse(text: str):
    """Obviously-correct Python parser of well-formed files: (n_feat, n_lab, rows) where rows
    are (sorted labels, {feature: value})."""
    lines = text.replace("\r", "").split("\n")
    n, nf, nl = (int(t) for t in lines[0].split())
    rows = []
    for line in lines[1:n + 1]:
        tokens = line.split(" ")
        labels = [int(t) for t in tokens[0].split(",") if t] if ":" not in tokens[0] else []
        feats = {}
        for tok in tokens[1 if ":" not in tokens[0] else 0:]:
            if tok:
                f, v = tok.split(":")
                feats[int(f)] = float(np.float32(float(v)))
        rows.append((sorted(set(labels)), feats))
    return nf, nl, rows


def assert_matches_reference(split: XMCSplit, text: str):
    nf, nl, rows = reference_parse(text)
    assert split.features.shape == (len(rows), nf)
    assert split.labels.shape == (len(rows), nl)
    for i, (labels, feats) in enumerate(rows):
        lo, hi = split.labels.indptr[i], split.labels.indptr[i + 1]
        assert split.labels.indices[lo:hi].tolist() == labels
        lo, hi = split.features.indptr[i], split.features.indptr[i + 1]
        assert split.features.indices[lo:hi].tolist() == sorted(feats)
        assert split.features.data[lo:hi].tolist() == [feats[f] for f in sorted(feats)]


def assert_csr_equal(a: CSR, b: CSR):
    assert a.n_cols == b.n_cols
    np.testing.assert_array_equal(a.indptr - a.indptr[0], b.indptr - b.indptr[0])
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


# ---------------------------------------------------------------- well-formed files

def test_basic_file_dtypes_and_values(tmp_path):
    text = "3 10 5\n1,2 3:0.5 1:1e-3\n 4:2\n0,4 9:7.25\n"
    split = read_xmc(_write(tmp_path, text))
    f, y = split
    assert f.indptr.dtype == np.int64 and f.indices.dtype == np.int32
    assert f.data.dtype == np.float32
    assert y.indptr.dtype == np.int64 and y.indices.dtype == np.int32
    assert y.data.dtype == np.float32 and np.all(y.data == 1.0)
    assert f.indptr.tolist() == [0, 2, 3, 4]
    assert f.indices.tolist() == [1, 3, 4, 9]  # sorted within the row
    assert f.data.tolist() == [np.float32(1e-3), 0.5, 2.0, 7.25]  # values follow their ids
    assert y.indptr.tolist() == [0, 2, 2, 4]
    assert y.indices.tolist() == [1, 2, 0, 4]
    assert split.n_points == 3


def test_rows_without_labels_features_or_both(tmp_path):
    # a leading space = no labels; a label list alone = no features; a lone space = neither
    text = "4 6 3\n 1:1 2:2\n2\n \n0,1 5:1\n"
    f, y = read_xmc(_write(tmp_path, text))
    assert y.row_counts().tolist() == [0, 1, 0, 2]
    assert f.row_counts().tolist() == [2, 0, 0, 1]


def test_windows_line_endings_and_trailing_blank_lines(tmp_path):
    text = "2 4 3\n0,2 1:0.5 3:1\n1 0:2\n\n\n"
    a = read_xmc(_write(tmp_path, text, "unix.txt"))
    b = read_xmc(_write(tmp_path, text, "win.txt", newline="\r\n"))
    c = read_xmc(_write(tmp_path, text.rstrip("\n"), "no_final_newline.txt"))
    for other in (b, c):
        assert_csr_equal(a.features, other.features)
        assert_csr_equal(a.labels, other.labels)
    # whitespace-only lines after the declared points are ignored too
    d = read_xmc(_write(tmp_path, text + "   \n\t\n", "blank_spaces.txt"))
    assert_csr_equal(a.features, d.features)


def test_label_list_forms(tmp_path):
    # "3,7" then features; "545, 32" continues after a trailing comma (LSHTC style);
    # repeated label ids collapse
    text = "3 10 600\n3,7 1:1\n545, 32 8:1 9:2\n5,5,2 0:1\n"
    f, y = read_xmc(_write(tmp_path, text))
    assert y.indices.tolist() == [3, 7, 32, 545, 2, 5]
    assert y.indptr.tolist() == [0, 2, 4, 6]
    assert f.indices.tolist() == [1, 8, 9, 0]


def test_value_syntax(tmp_path):
    values = ["1", "0.5", ".25", "3.", "-2.5", "+4", "1e3", "1E-3", "2.5e+2", "0", "-0.0",
              "12345678901234567890.5", "0.000000000000000000000123456789", "3.4e38",
              "1e-50", "007"]
    text = f"1 {len(values)} 1\n0 " + " ".join(f"{i}:{v}" for i, v in enumerate(values)) + "\n"
    f, _ = read_xmc(_write(tmp_path, text))
    expected = np.array([float(v) for v in values], dtype=np.float32)
    np.testing.assert_array_equal(f.data, expected)


def test_random_values_parse_like_python(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.lognormal(0, 6, size=2000) * rng.choice([-1, 1], size=2000)
    texts = [f"{v:.{p}{c}}" for v, p, c in zip(raw, rng.integers(1, 17, 2000),
                                                 rng.choice(list("efg"), 2000))]
    text = "1 2000 1\n0 " + " ".join(f"{i}:{t}" for i, t in enumerate(texts)) + "\n"
    f, _ = read_xmc(_write(tmp_path, text))
    np.testing.assert_array_equal(f.data, np.array([float(t) for t in texts], dtype=np.float32))


def test_long_unsorted_rows_and_large_ids(tmp_path):
    rng = np.random.default_rng(1)
    n_features = 2_000_000_000
    ids = rng.choice(n_features, size=300, replace=False)  # > 32: the argsort path
    vals = rng.random(300).astype(np.float32)
    text = (f"2 {n_features} {n_features}\n{n_features - 1} "
            + " ".join(f"{i}:{v!r}" for i, v in zip(ids, vals.tolist()))
            + f"\n 5:1 {n_features - 1}:2 3:4\n")
    f, y = read_xmc(_write(tmp_path, text))
    order = np.argsort(ids)
    assert f.indices[:300].tolist() == ids[order].tolist()
    np.testing.assert_array_equal(f.data[:300], vals[order])
    assert f.indices[300:].tolist() == [3, 5, n_features - 1]
    assert y.indices.tolist() == [n_features - 1]


def test_header_only_and_zero_points(tmp_path):
    f, y = read_xmc(_write(tmp_path, "0 5 7\n"))
    assert f.shape == (0, 5) and y.shape == (0, 7)
    f, y = read_xmc(_write(tmp_path, "0 5 7", "no_newline.txt"))
    assert f.shape == (0, 5) and f.indptr.tolist() == [0]


def test_matches_reference_parser_on_generated_text(tmp_path):
    rng = np.random.default_rng(2)
    lines = []
    for _ in range(300):
        labels = rng.choice(50, size=rng.integers(0, 5), replace=False)
        feats = rng.choice(200, size=rng.integers(1, 40), replace=False)
        vals = rng.random(len(feats)) * 10.0 ** rng.integers(-4, 4)
        body = " ".join(f"{f}:{v:.7g}" for f, v in zip(feats, vals))
        lines.append(",".join(map(str, labels)) + (" " + body if body else ""))
    text = "300 200 50\n" + "\n".join(lines) + "\n"
    assert_matches_reference(read_xmc(_write(tmp_path, text)), text)


# ---------------------------------------------------------------- round trip

def random_split(seed: int, n: int, n_features: int, n_labels: int) -> XMCSplit:
    rng = np.random.default_rng(seed)
    frows, vrows, lrows = [], [], []
    for i in range(n):
        k = 0 if i % 7 == 3 else int(rng.integers(0, 30))  # some empty feature rows
        frows.append(sorted(rng.choice(n_features, size=k, replace=False).tolist()))
        raw = rng.standard_normal(k) * 10.0 ** rng.integers(-30, 30, size=k)
        vrows.append(raw.astype(np.float32).tolist())
        m = 0 if i % 5 == 1 else int(rng.integers(1, 6))  # some rows without labels
        lrows.append(sorted(rng.choice(n_labels, size=m, replace=False).tolist()))
    return XMCSplit(CSR.from_rows(frows, n_features, vrows), CSR.from_rows(lrows, n_labels))


def test_write_read_round_trip_is_exact(tmp_path):
    split = random_split(3, 500, 1000, 77)
    path = tmp_path / "rt.txt"
    write_xmc(split, path)
    back = read_xmc(path)
    assert_csr_equal(split.features, back.features)
    assert_csr_equal(split.labels, back.labels)


def test_write_special_float32_values(tmp_path):
    vals = np.array([1.0, 0.1, 1 / 3, 123456789.0, 1.2345678e-7, np.finfo(np.float32).max,
                     np.finfo(np.float32).tiny, 1e-45, 7e-5, 7e-6, 100.0, 12.5, -0.0, -2.5e9],
                    dtype=np.float32)
    split = XMCSplit(CSR(np.array([0, len(vals)]), np.arange(len(vals), dtype=np.int32), vals, 20),
                     CSR(np.array([0, 1]), np.array([2], dtype=np.int32),
                         np.ones(1, dtype=np.float32), 3))
    write_xmc(split, tmp_path / "v.txt")
    text = (tmp_path / "v.txt").read_text()
    assert text.startswith("1 20 3\n2 0:1 1:0.100000001 ")
    np.testing.assert_array_equal(read_xmc(tmp_path / "v.txt").features.data, vals)


def test_write_rejects_mismatched_rows_and_nonfinite(tmp_path):
    split = random_split(4, 5, 40, 8)
    with pytest.raises(ValueError, match="rows"):
        write_xmc(XMCSplit(split.features, split.labels.row_slice(0, 4)), tmp_path / "x.txt")
    bad = split.features._replace(data=np.full_like(split.features.data, np.nan))
    with pytest.raises(ValueError, match="finite"):
        write_xmc(XMCSplit(bad, split.labels), tmp_path / "x.txt")


# ---------------------------------------------------------------- malformed files

MALFORMED = [
    # (file text, line, problem substring)
    ("", 1, "header must be three"),
    ("3 10\n0 1:1\n", 1, "header must be three"),
    ("3 10 5 7\n", 1, "header must be three"),
    ("a b c\n", 1, "header must be three"),
    ("3 10 -5\n", 1, "header must be three"),
    ("3 10 5\n0 1:1\n1 2:1\n", 4, "row count 2 differs from the header's 3 points"),
    ("3 10 5\n0 1:1\n1 2:1\n\n\n", 4, "row count 2 differs"),  # blank lines are not points
    # a header claiming a huge row count fails on the rows, not on allocating for them
    ("1000000000000 10 5\n0 1:1\n", 3, "row count 1 differs from the header's 1000000000000"),
    ("5 10 5\n", 2, "row count 0 differs"),
    ("1 10 5\n0 1:1\n1 2:1\n", 3, "row count differs from the header"),
    ("1 10 5\n0 1:1\n\n \n1 2:1\n", 5, "row count differs from the header"),
    ("2 10 5\n0 1:1\n5 2:1\n", 3, "label id out of range [0, 5) in '5'"),
    ("2 10 5\n0 1:1\n1,99999999999999999999 2:1\n", 3, "label id out of range"),
    ("1 10 5\n-1 1:1\n", 2, "negative label id -1"),
    ("1 10 5\n1,-3 1:1\n", 2, "negative label id -3"),
    ("1 10 5\n1,,2 1:1\n", 2, "malformed label list '1,,2'"),
    ("1 10 5\n,1 1:1\n", 2, "malformed label list"),
    ("1 10 5\na 1:1\n", 2, "malformed label list 'a'"),
    ("2 10 5\n0 1:1\n0 10:1\n", 3, "feature id 10 out of range [0, 10) in '10:1'"),
    ("1 10 5\n0 -3:1\n", 2, "negative feature id -3 in '-3:1'"),
    ("1 10 5\n0 3:\n", 2, "malformed feature '3:'"),
    ("1 10 5\n0 3\n", 2, "malformed feature '3'"),
    ("1 10 5\n0 :1\n", 2, "malformed feature ':1'"),
    ("1 10 5\n0 3:x\n", 2, "malformed feature '3:x'"),
    ("1 10 5\n0 3:1:2\n", 2, "malformed feature '3:1:2'"),
    ("1 10 5\n0 3:1e\n", 2, "malformed feature '3:1e'"),
    ("1 10 5\n0 3:1.2.3\n", 2, "malformed feature"),
    ("1 10 5\n0 3:nonsense\n", 2, "malformed feature"),
    ("1 10 5\n0 x:1\n", 2, "malformed feature 'x:1'"),
    ("1 10 5\n 3,4 1:1\n", 2, "malformed feature '3,4'"),  # labels after a leading space
    ("1 10 5\n0 1:1 2\n", 2, "malformed feature '2'"),
    ("1 10 5\n0 3:nan\n", 2, "non-finite value in '3:nan'"),
    ("1 10 5\n0 3:inf\n", 2, "non-finite value in '3:inf'"),
    ("1 10 5\n0 3:-Infinity\n", 2, "non-finite value"),
    ("1 10 5\n0 3:NaN\n", 2, "non-finite value"),
    ("1 10 5\n0 3:1e39\n", 2, "non-finite value"),  # overflows float32
    ("1 10 5\n0 3:1e400\n", 2, "non-finite value"),
    ("2 10 5\n0 1:1\n0 3:1 5:1 3:2\n", 3, "duplicate feature id 3 in one row"),
]


@pytest.mark.parametrize("text,line,problem", MALFORMED)
def test_malformed_file_names_file_line_and_problem(tmp_path, text, line, problem):
    path = _write(tmp_path, text)
    with pytest.raises(XMCFormatError) as info:
        read_xmc(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.line == line
    assert str(err).startswith(f"{path}:{line}: "), str(err)
    assert problem in str(err), str(err)


def test_error_line_numbers_count_crlf_and_blank_lines(tmp_path):
    text = "4 10 5\n0 1:1\n\n \n0 11:1\n"  # rows 1-3 fine (two empty points), row 4 bad
    path = _write(tmp_path, text, newline="\r\n")
    with pytest.raises(XMCFormatError) as info:
        read_xmc(path)
    assert info.value.line == 5 and "out of range" in str(info.value)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_xmc(tmp_path / "absent.txt")



def test_duplicate_found_in_a_long_unsorted_row(tmp_path):
    ids = list(range(60, 0, -1)) + [17]  # > 32 entries: the heapsort path
    text = "1 100 5\n0 " + " ".join(f"{i}:1" for i in ids) + "\n"
    with pytest.raises(XMCFormatError, match=r":2: duplicate feature id 17 in one row"):
        read_xmc(_write(tmp_path, text))
