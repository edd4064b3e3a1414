"""Reading data files (xpnet.data): hostile files are one clear error, any reasonable CSV is read.

Issue 15: every malformed or hostile file is one ``XpnetValueError`` line naming the file,
the line (CSV) or array index, and the fix; sizes from headers are checked against the file
and against the memory available before anything of that size is allocated.
Issue 17: header detection, sniffed delimiters, quotes, missing values, regression targets,
held-out rows (validation from the training part, test rows only reported).

Speed of the CSV reader (issue 17), measured side by side on a 200,000 x 20 numeric CSV with
an integer label column (38 MB, ``np.savetxt(fmt="%.6f")``) on this project's busy 2-core
machine: whole process ``python -c "...load_file(path)"``, medians of 7 alternated runs,
before (csv module, a Python float per cell) 2.54 s wall / 1.58 s CPU, after (a vectorised
pass over the bytes, then numpy.loadtxt) 0.96 s / 0.59 s; ``load_file`` alone (timeit
medians) 2.3 s before, 0.6 s after. Method and numbers: docs/data.md. No test here asserts
on a timing.
"""

import io
import json
import os
import threading
import zipfile

import numpy as np
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet
from xpnet import memory
from xpnet.cli.prepare import prepare
from xpnet.data import datasets, preprocess
from xpnet.data.labels import infer_task, typed_labels
from xpnet.errors import XpnetValueError
from xpnet.io import csv, files, npy, tables


def write(path, content):
    """Write ``content`` (str as UTF-8, or bytes) to ``path``; return the path."""
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def npy_header(shape, descr="<f8") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# -- issue 15: hostile and malformed files ------------------------------------------------------
BAD_CSV = {  # name: (content, words the message must hold)
    "latin1.csv": (b"a,b,label\n1,2,x\n3,4,caf\xe9\n", ["line 3", "not UTF-8", "0xe9", "iconv"]),
    "huge-cell.csv": ("a,b,label\n1,2,x\n3,4," + "y" * (csv.FIELD_LIMIT + 1) + "\n",
                      ["line 3", "longer than 131,072 characters"]),
    "dup.csv": ("a,a,label\n1,2,x\n3,4,y\n", ["columns 0 and 1", "both named 'a'", "own name"]),
    "empty-label.csv": ("a,b,label\n1,2,x\n3,4,\n5,6,y\n", ["line 3", "label (column 'label') is empty"]),
    "nul.csv": (b"a,b,label\n1,2,x\n3,\x004,y\n", ["line 3", "NUL byte"]),
    "ragged.csv": ("a,b,label\n1,2,x\n3,4\n5,6,y\n", ["line 3 has 2 fields", "has 3"]),
    "quote.csv": ('a,b,label\n1,2,x\n3,4,"y\n5,6,z\n', ["line 3", "does not close"]),
    "missing.csv": ("a,b,label\n1,2,x\n3,,y\n", ["line 3", "column 'b' is empty", "missing value"]),
    "na.csv": ("a,b,label\n1,2,x\nNA,4,y\n", ["line 3", "column 'a' holds 'NA'", "missing value"]),
    "nan.csv": ("a,b,label\n1,2,x\n3,nan,y\n", ["line 3", "column 'b' is nan", "missing value"]),
    "inf.csv": ("a,b,label\n1,2,x\n\n3,-inf,y\n", ["line 4", "column 'b' is -inf", "finite"]),
    "word.csv": ("a,b,label\n1,2,x\n3,four,y\n", ["line 3", "column 'b' holds 'four'", "not a number"]),
    "nan-target.csv": ("a,b,t\n1,2,0.5\n3,4,nan\n", ["line 3", "is nan", "missing label"]),
    "na-target.csv": ("a,b,t\n1,2,0.5\n3,4,NA\n5,6,1\n", ["line 3", "is 'NA'", "missing label"]),
}


@pytest.mark.parametrize("name", list(BAD_CSV))
def test_malformed_csv_is_one_line_naming_file_line_and_fix(tmp_path, name):
    content, words = BAD_CSV[name]
    with pytest.raises(XpnetValueError) as info:
        tables.load_file(write(tmp_path / name, content))
    message = one_line(info)
    assert f"data file '{tmp_path / name}'" in message
    for word in words:
        assert word in message, (word, message)


def test_a_utf8_bom_is_dropped_from_the_first_name(tmp_path):
    path = write(tmp_path / "bom.csv", "\ufefflabel,b,c\nx,1,2\ny,3,4\n")
    table = tables.load_file(path, target="label")
    assert table.target == "label" and table.y.tolist() == ["x", "y"] and table.feature_names == ["b", "c"]


def test_unreadable_files_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(XpnetValueError, match=r"dir.csv'.*is a directory; give the path of a \.csv"):
        tables.load_file(tmp_path / "dir.csv")
    path = write(tmp_path / "locked.csv", "a,b\n1,2\n")

    def denied(*args, **kwargs):  # root reads any file: a chmod 000 would not stop this test
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files, "open", denied, raising=False)
    for name in ("locked.csv", "locked.npy", "locked.npz"):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(XpnetValueError) as info:
            tables.load_file(tmp_path / name)
        assert "cannot open it (Permission denied)" in one_line(info) and name in str(info.value)
    assert path.exists()


@pytest.mark.parametrize("array, words", [
    (np.array([["2024-01-01", "2024-01-02"]], dtype="datetime64[D]"), ["dates and times", "datetime64"]),
    (np.array([[1 + 2j, 3], [4, 5j]]), ["complex numbers", "imaginary part"]),
    (np.array([(1.0, 2.0)], dtype=[("a", "<f8"), ("b", "<f8")]).reshape(1, 1), ["not plain numbers"]),
    (np.array([["1", "2"]]), ["text"]),
])
def test_npy_arrays_that_are_not_numbers_are_refused(tmp_path, array, words):
    np.save(tmp_path / "odd.npy", array)
    with pytest.raises(XpnetValueError) as info:
        tables.load_file(tmp_path / "odd.npy", has_target=False)
    for word in ["odd.npy", *words]:
        assert word in one_line(info)


def test_npz_members_that_are_not_numbers_are_refused(tmp_path):
    np.savez(tmp_path / "c.npz", X=np.ones((2, 2), dtype=complex), y=np.array([0, 1]))
    with pytest.raises(XpnetValueError, match=r"c.npz\[X\]'.*complex"):
        tables.load_file(tmp_path / "c.npz")
    np.savez(tmp_path / "t.npz", X=np.ones((2, 2)), y=np.array(["2024-01-01"] * 2, dtype="datetime64[D]"))
    with pytest.raises(XpnetValueError, match=r"t.npz\[y\]'.*dates and times"):
        tables.load_file(tmp_path / "t.npz")
    np.savez(tmp_path / "nan.npz", X=np.array([[1.0, 2.0], [np.nan, 3.0]]), y=np.array([0, 1]))
    with pytest.raises(XpnetValueError, match=r"nan.npz'.*X\[1, 0\] is nan \(a missing value\)"):
        tables.load_file(tmp_path / "nan.npz")
    np.savez(tmp_path / "empty.npz", X=np.ones((2, 2)), y=np.array(["a", ""]))
    with pytest.raises(XpnetValueError, match=r"empty.npz'.*y\[1\].*is empty"):
        tables.load_file(tmp_path / "empty.npz")


def test_a_184_byte_npy_claiming_1e10_rows_is_refused_before_allocating(tmp_path):
    import tracemalloc

    header = npy_header((10**10, 2))
    path = write(tmp_path / "liar.npy", header + bytes(184 - len(header)))
    assert path.stat().st_size == 184
    tracemalloc.start()
    try:
        with pytest.raises(XpnetValueError) as info:
            tables.load_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "10000000000 x 2 float64" in one_line(info) and "truncated" in str(info.value)
    assert peak < 1 << 20  # nothing of the claimed 149 GiB was allocated


def test_an_honest_npy_larger_than_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    header = npy_header((10**10, 2))
    with open(tmp_path / "big.npy", "wb") as handle:  # sparse: the file says what its header says
        handle.write(header)
        handle.truncate(len(header) + 10**10 * 2 * 8)
    monkeypatch.setattr(memory, "available_bytes", lambda backend=None: (1 << 30, "test limit"))
    with pytest.raises(memory.XpnetMemoryError) as info:
        tables.load_file(tmp_path / "big.npy")
    assert "big.npy" in one_line(info) and "1.0 GiB is available" in str(info.value)
    with pytest.raises(memory.XpnetMemoryError):  # the distributed reader checks too
        npy.read_npy_rows(tmp_path / "big.npy", lambda n: (0, n))


def lying_npz(path, members):
    """An .npz whose members are deflated ``(npy header, payload)`` but whose zip directory
    declares ``declared`` bytes for each: ``members`` maps name -> (header, payload, declared)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (header, payload, _) in members.items():
            archive.writestr(name + ".npy", header + payload)
    raw = bytearray(path.read_bytes())
    at = 0
    for name, (_, _, declared) in members.items():  # patch each central directory entry's uncompressed size
        at = raw.index(b"PK\x01\x02", at)
        assert raw[at + 46:at + 46 + len(name) + 4] == (name + ".npy").encode()
        raw[at + 24:at + 28] = declared.to_bytes(4, "little")
        at += 46
    path.write_bytes(bytes(raw))
    return path


def test_npz_reads_only_x_and_y_and_checks_their_declared_sizes_before_inflating(tmp_path, monkeypatch):
    X, y = np.arange(6.0).reshape(3, 2), np.array([0, 1, 0])
    bomb = npy_header((2**28, 1))  # 2 GiB of float64 zeros declared, a few bytes deflated
    honest = {"X": (npy_header((3, 2)), X.tobytes(), len(npy_header((3, 2))) + X.nbytes),
              "y": (npy_header((3,), "<i8"), y.tobytes(), len(npy_header((3,), "<i8")) + y.nbytes)}
    path = lying_npz(tmp_path / "junk.npz", {**honest, "junk": (bomb, bytes(64), len(bomb) + 2**31)})
    inflated = []
    real_read = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        out = real_read(self, n)
        inflated.append(len(out))
        return out

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    table = tables.load_file(path)  # the junk member is never opened
    np.testing.assert_array_equal(table.X, X)
    assert table.y.tolist() == [0, 1, 0] and sum(inflated) < 4096
    # X itself declares 2 GiB (directory and header agree): refused before inflating when it does not fit
    inflated.clear()
    path = lying_npz(tmp_path / "big.npz", {"X": (npy_header((2**27, 2)), bytes(64), len(npy_header((2**27, 2)))
                                                  + 2**31)})
    monkeypatch.setattr(memory, "available_bytes", lambda backend=None: (1 << 30, "test limit"))
    with pytest.raises(memory.XpnetMemoryError, match="big.npz"):
        tables.load_file(path, has_target=False)
    assert sum(inflated) < 4096
    # a header that claims more than the zip directory declares: damaged, refused before inflating
    inflated.clear()
    path = lying_npz(tmp_path / "short.npz", {"X": (npy_header((2**27, 2)), bytes(64), 4096), "y": honest["y"]})
    with pytest.raises(XpnetValueError, match=r"short.npz\[X\]'.*2.0 GiB.*truncated or damaged"):
        tables.load_file(path)
    assert sum(inflated) < 4096


def test_n_samples_too_large_for_memory_is_refused_before_generating():
    with pytest.raises(memory.XpnetMemoryError) as info:
        xpnet.datasets.load("moons", n_samples=10**13)
    assert "generating 10,000,000,000,000 samples of moons" in one_line(info)
    assert xpnet.datasets.generation_bytes(1000, 2) >= 1000 * 2 * 8 * 3


CLI_BAD_FILES = {  # file name: (content, words of the error line)
    "latin1.csv": (b"a,b,label\n1,2,x\n3,4,caf\xe9\n", ["line 3", "not UTF-8"]),
    "huge-cell.csv": ("a,b,label\n1,2,x\n3,4," + "y" * (csv.FIELD_LIMIT + 1) + "\n", ["longer than"]),
    "dup.csv": ("a,a,label\n1,2,x\n3,4,y\n", ["both named 'a'"]),
    "empty-label.csv": ("a,b,label\n1,2,x\n3,4,\n", ["line 3", "is empty"]),
    "liar.npy": (npy_header((10**10, 2)) + bytes(56), ["truncated"]),
    "when.npy": (None, ["dates and times"]),
    "complex.npy": (None, ["complex numbers"]),
    "folder.csv": (None, ["is a directory"]),
}


@pytest.mark.parametrize("name", list(CLI_BAD_FILES))
def test_cli_hostile_files_are_one_error_line_and_exit_2(tmp_path, name):
    content, words = CLI_BAD_FILES[name]
    path = tmp_path / name
    if name == "when.npy":
        np.save(path, np.array([["2024-01-01", "2024-01-02"]] * 3, dtype="datetime64[D]"))
    elif name == "complex.npy":
        np.save(path, np.array([[1 + 1j, 0], [2, 1]] * 3))
    elif name == "folder.csv":
        path.mkdir()
    else:
        write(path, content)
    proc = run_cli("train", "--data", path, "--epochs", 1, "--backend", "numpy", check=2)
    assert proc.stderr.startswith(f"xpnet: error: data file '{path}"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


def test_cli_n_samples_beyond_memory_is_one_line():
    proc = run_cli("train", "--n-samples", 10**13, "--backend", "numpy", check=2)
    assert proc.stderr.startswith("xpnet: error: generating 10,000,000,000,000 samples") and "available" in proc.stderr


# -- issue 17: any reasonable CSV ---------------------------------------------------------------
def flowers(n=90, seed=1):
    X, y = xpnet.datasets.load("blobs", n_samples=n, noise=0.5, seed=seed)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


def csv_text(X, labels, header=("length", "width", "species"), delimiter=",", newline="\n", quote=False):
    q = (lambda s: f'"{s}"') if quote else str
    lines = [delimiter.join(q(h) for h in header)] if header else []
    lines += [delimiter.join([repr(float(v)) for v in row] + [q(label)]) for row, label in zip(X, labels)]
    return newline.join(lines) + newline


def test_a_headerless_csv_keeps_its_first_row_and_names_columns_by_index(tmp_path):
    X, labels = flowers()
    path = write(tmp_path / "nohdr.csv", csv_text(X, labels, header=None))
    table = tables.load_file(path)
    assert table.X.shape == (90, 2) and table.feature_names == ["0", "1"] and table.target == "2"
    np.testing.assert_array_equal(table.X, X)
    np.testing.assert_array_equal(table.y, labels)
    numbers = write(tmp_path / "numbers.csv", "0,1.5,2\n1,2.5,3\n0,3.5,4\n")
    by_index = tables.load_file(numbers, target=0)
    assert by_index.y.tolist() == [0, 1, 0] and by_index.feature_names == ["1", "2"]
    assert tables.load_file(numbers, target="0").target == "0" and tables.load_file(numbers, target=-3).target == "0"


def test_header_detection_and_its_override(tmp_path):
    named_by_numbers = write(tmp_path / "years.csv", "2020,2021,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")  # labels repeat
    assert tables.load_file(named_by_numbers).feature_names == ["2020", "2021"]
    numeric_names = write(tmp_path / "ids.csv", "1,2,3\n4,5,0\n6,7,1\n")  # numbers only: data unless told
    assert tables.load_file(numeric_names).X.shape == (3, 2)
    told = tables.load_file(numeric_names, header=True)
    assert told.feature_names == ["1", "2"] and told.target == "3" and told.y.tolist() == [0, 1]
    words = write(tmp_path / "words.csv", "a,b,label\n1,2,x\n")
    with pytest.raises(XpnetValueError, match="line 1, column '0' holds 'a', not a number"):
        tables.load_file(words, header=False)
    many_classes = write(tmp_path / "many.csv", "".join(f"{i},{i / 2},class{i}\n" for i in range(150)))
    assert tables.load_file(many_classes).X.shape == (150, 2)  # a first label not seen below, among many: data
    target_named = write(tmp_path / "t.csv", "1,2,species\n3,4,cat\n5,6,dog\n")  # --target species names row 1
    assert tables.load_file(target_named, target="species").X.tolist() == [[3, 4], [5, 6]]
    with pytest.raises(XpnetValueError, match="header="):
        tables.load_file(words, header="yes")


@pytest.mark.parametrize("delimiter, newline, quote", [
    (";", "\n", False), ("\t", "\n", False), (",", "\r\n", False), (",", "\n", True), (";", "\r\n", True),
])
def test_delimiters_line_ends_and_quotes_read_the_same_table(tmp_path, delimiter, newline, quote):
    X, labels = flowers()
    path = write(tmp_path / "f.csv", csv_text(X, labels, delimiter=delimiter, newline=newline, quote=quote))
    table = tables.load_file(path, target="species")
    np.testing.assert_array_equal(table.X, X)
    np.testing.assert_array_equal(table.y, labels)
    assert table.feature_names == ["length", "width"]


def test_quoted_cells_may_hold_the_delimiter_and_blank_lines_are_skipped(tmp_path):
    path = write(tmp_path / "q.csv", 'a;"b;c";label\n\n1;2;"x;1"\n   \n3;4;"y ""quoted"""\n5;6;z')
    table = tables.load_file(path)
    assert table.feature_names == ["a", "b;c"] and table.X.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert table.y.tolist() == ["x;1", 'y "quoted"', "z"]


def test_a_word_label_below_the_sampled_rows_is_still_read(tmp_path):
    rows = "".join(f"{i},{i % 3}\n" for i in range(csv.SAMPLE_ROWS + 50)) + "7,cat\n"
    table = tables.load_file(write(tmp_path / "late.csv", "x,label\n" + rows))
    assert table.y.dtype.kind == "U" and table.y[-1] == "cat" and table.y[0] == "0"


def reference_table(records, header, delimiter):
    """What load_file must return for ``records`` (lists of cells, labels last), computed plainly."""
    body = records[1:] if header else records
    X = np.array([[float(c) for c in row[:-1]] for row in body]).reshape(len(body), -1)
    return X, typed_labels(np.array([row[-1] for row in body]))


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(1, 40), n_features=st.integers(1, 4), header=st.booleans(),
       delimiter=st.sampled_from(csv.DELIMITERS), crlf=st.booleans(), quote=st.booleans(), bom=st.booleans(),
       blanks=st.lists(st.sampled_from(["", " ", "\t", "  \r"]), max_size=5), trailing_newline=st.booleans(),
       words=st.booleans(), chunk=st.sampled_from([5, 16, 64, 1 << 16]), parts=st.integers(1, 4),
       seed=st.integers(0, 99))
def test_any_layout_reads_the_table_and_its_blocks(tmp_path_factory, n_rows, n_features, header, delimiter, crlf,
                                                     quote, bom, blanks, trailing_newline, words, chunk, parts, seed):
    """Random CSV layouts, read with tiny chunks (records straddle every chunk boundary):
    the whole file and the blocks of ``parts`` processes equal the table written."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n_rows, n_features)) * 100, rng.integers(0, 6))
    labels = rng.choice(["cat", "dog", "emu"] if words else ["0", "1", "2"], n_rows)
    q = (lambda s: f'"{s}"') if quote else str
    lines = [[f"c{i}" for i in range(n_features)] + ["label"]] if header else []
    lines += [[repr(float(v)) for v in row] + [label] for row, label in zip(X, labels)]
    text = [delimiter.join(q(c) for c in row) for row in lines]
    for blank in blanks:  # blank lines anywhere after the first record
        text.insert(int(rng.integers(1, len(text) + 1)), blank)
    newline = "\r\n" if crlf else "\n"
    content = ("\ufeff" if bom else "") + newline.join(text) + (newline if trailing_newline else "")
    path = write(tmp_path_factory.mktemp("csv") / "t.csv", content)
    want_X, want_y = reference_table(lines, header, delimiter)
    # detection needs two rows, and no first label that looks like a name (a few labels repeated below, not it)
    below = list(labels[1:])
    ambiguous = n_rows == 1 or (words and not header and labels[0] not in below and 2 * len(set(below)) <= len(below))
    old = files.CHUNK
    files.CHUNK = chunk
    try:
        whole = tables.load_file(path, header=header if ambiguous else None)
        blocks = [tables.load_file(path, header=header, block=lambda n, r=r: xpnet.distributed.shard_bounds(
            n, r, parts, allow_empty=True)) for r in range(parts)]
    finally:
        files.CHUNK = old
    np.testing.assert_array_equal(whole.X, want_X)
    np.testing.assert_array_equal(whole.y, want_y)
    assert whole.feature_names == ([f"c{i}" for i in range(n_features)] if header else
                                   [str(i) for i in range(n_features)])
    np.testing.assert_array_equal(np.concatenate([b.X for b in blocks]), want_X)
    np.testing.assert_array_equal(typed_labels(np.concatenate([b.y.astype(str) for b in blocks])), want_y)


# -- issue 17: regression targets and tasks -----------------------------------------------------
def test_infer_task():
    assert infer_task(np.array([0.5, 1.0, 2.0])) == "regression"
    assert infer_task(np.array([0.0, 1.0, 2.0])) == "classification"  # whole numbers are classes
    assert infer_task(np.array([3, 1, 2])) == "classification"
    assert infer_task(np.array(["a", "b"])) == "classification"
    assert infer_task(np.array([True, False])) == "classification"


def regression_csv(path, n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = 50 + 10 * X[:, 0] - 3 * X[:, 1] ** 2 + rng.normal(scale=0.1, size=n)
    write(path, "a,b,c,price\n" + "".join(",".join(repr(float(v)) for v in [*r, v]) + "\n" for r, v in zip(X, t)))
    return X, t


def test_a_regression_file_is_prepared_with_standardized_targets_fitted_on_training_rows(tmp_path):
    X, t = regression_csv(tmp_path / "reg.csv")
    table = tables.load_file(tmp_path / "reg.csv")
    assert table.y.dtype == np.float64 and infer_task(table.y) == "regression"
    config = {"data": str(tmp_path / "reg.csv"), "validation_fraction": 0.25, "seed": 2, "standardize": True}
    prepared = prepare(config)
    assert prepared.task == "regression" and prepared.labels is None and prepared.n_classes == 0
    assert prepared.n_outputs == 1 and prepared.y.dtype == np.float64 and prepared.y.shape == (150,)
    kept, held = preprocess.split_order(200, 0.25, seed=2)
    scaler = prepared.target_scaler
    assert scaler.mean == pytest.approx(t[kept].mean(), rel=1e-12)  # the training rows only
    assert scaler.scale == pytest.approx(t[kept].std(), rel=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(prepared.y), t[kept], rtol=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(prepared.y_val), t[held], rtol=1e-12)
    assert abs(prepared.y.mean()) < 1e-12 and prepared.y.std() == pytest.approx(1)
    assert "regression" in prepared.source
    classified = prepare({**config, "task": "classification", "data": str(write(
        tmp_path / "int.csv", "a,t\n1,3\n2,5\n3,3\n4,5\n"))})
    assert classified.task == "classification" and classified.labels.classes == [3, 5]
    whole_numbers = prepare({"data": str(tmp_path / "int.csv"), "task": "regression"})
    assert whole_numbers.task == "regression" and whole_numbers.y.dtype == np.float64


@pytest.mark.parametrize("config, words", [
    ({"data": "reg.csv", "task": "classification"}, ["fractional", "--task regression"]),
    ({"data": "words.csv", "task": "regression"}, ["--task regression needs numbers", "'x'"]),
    ({"dataset": "moons", "task": "regression"}, ["--task regression", "moons", "class labels"]),
    ({"dataset": "moons", "task": "clustering"}, ["task", "clustering"]),
])
def test_task_errors(tmp_path, config, words):
    regression_csv(tmp_path / "reg.csv")
    write(tmp_path / "words.csv", "a,label\n1,x\n2,y\n")
    if "data" in config:
        config = {**config, "data": str(tmp_path / config["data"])}
    with pytest.raises(XpnetValueError) as info:
        prepare(config)
    for word in words:
        assert word in one_line(info)


class ThreadComm:
    """Just enough of xpnet.distributed.Communicator for prepare, over threads (no MPI)."""

    def __init__(self, rank, size, board, barrier):
        self.rank, self.size, self.board, self.barrier = rank, size, board, barrier

    def bounds(self, n_rows, *, allow_empty=False):
        return xpnet.distributed.shard_bounds(n_rows, self.rank, self.size, allow_empty=allow_empty)

    def allgather(self, value):
        self.barrier.wait()
        self.board[self.rank] = value
        self.barrier.wait()
        out = [self.board[r] for r in range(self.size)]
        self.barrier.wait()
        return out

    def sum_floats(self, values):
        return list(np.sum(np.asarray(self.allgather(np.asarray(values, dtype=np.float64))), axis=0))


def prepare_on_threads(config, size):
    board, barrier, results = {}, threading.Barrier(size), [None] * size

    def run(rank):
        results[rank] = prepare(config, ThreadComm(rank, size, board, barrier))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_regression_blocks_of_processes_equal_one_process(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=301)
    config = {"data": str(tmp_path / "reg.csv"), "validation_fraction": 0.2, "seed": 1, "standardize": True}
    want = prepare(config)
    parts = prepare_on_threads(config, 3)
    assert all(p.task == "regression" and p.n_samples == want.n_samples and p.n_val == want.n_val for p in parts)
    y = np.empty_like(want.y)
    for part in parts:
        y[part.rows] = part.y
        assert part.target_scaler.mean == pytest.approx(want.target_scaler.mean, rel=1e-12)
        assert part.target_scaler.scale == pytest.approx(want.target_scaler.scale, rel=1e-12)
    np.testing.assert_allclose(y, want.y, rtol=1e-10, atol=1e-12)
    held = np.sort(np.concatenate([part.y_val for part in parts]))
    np.testing.assert_allclose(held, np.sort(want.y_val), rtol=1e-10, atol=1e-12)


# -- issue 17: held-out data honestly ------------------------------------------------------------
def test_digits_test_rows_never_steer_training_validation_comes_from_the_training_part():
    pytest.importorskip("sklearn")
    X, y = datasets.load_digits()
    _, _, X_test, y_test = preprocess.split(X, y, 0.25, seed=0)  # the test split, as before
    plain = prepare({"dataset": "digits", "seed": 0})
    assert (plain.n_samples, plain.n_val, plain.n_test) == (1348, 0, 449)
    np.testing.assert_array_equal(plain.X_test, X_test)
    stopping = prepare({"dataset": "digits", "seed": 0, "early_stopping": True})
    assert (stopping.n_samples, stopping.n_val, stopping.n_test) == (1213, 135, 449)
    np.testing.assert_array_equal(stopping.X_test, X_test)
    np.testing.assert_array_equal(stopping.y_test, y_test)
    test_rows = {row.tobytes() for row in X_test}
    assert not any(row.tobytes() in test_rows for row in stopping.X_val)  # validation rows are training rows
    assert not any(row.tobytes() in test_rows for row in stopping.X)
    assert stopping.X_held is stopping.X_val and stopping.n_held == 135  # the former names: validation rows
    fraction = prepare({"dataset": "digits", "seed": 0, "validation_fraction": 0.2, "standardize": True})
    assert (fraction.n_samples, fraction.n_val, fraction.n_test) == (1078, 270, 449)
    np.testing.assert_allclose(fraction.X.mean(axis=0)[fraction.scaler.scale != 1], 0, atol=1e-12)


def test_generated_data_has_no_test_rows_and_early_stopping_takes_a_tenth():
    prepared = prepare({"dataset": "moons", "n_samples": 300, "early_stopping": True})
    assert (prepared.n_samples, prepared.n_val, prepared.n_test) == (270, 30, 0)
    assert prepared.X_test.shape == (0, 2) and prepared.task == "classification" and prepared.n_outputs == 2


def test_distributed_built_in_data_keeps_every_set_in_blocks():
    pytest.importorskip("sklearn")
    config = {"dataset": "digits", "seed": 0, "early_stopping": True}
    want = prepare(config)
    parts = prepare_on_threads(config, 2)
    for name in ("X", "X_val", "X_test"):
        np.testing.assert_array_equal(np.concatenate([getattr(p, name) for p in parts]), getattr(want, name))
    assert all((p.n_samples, p.n_val, p.n_test) == (1213, 135, 449) for p in parts)


# -- the CLI on any reasonable CSV ---------------------------------------------------------------
def test_cli_headerless_and_semicolon_files_train_on_every_row(tmp_path):
    X, labels = flowers()
    nohdr = write(tmp_path / "nohdr.csv", csv_text(X, labels, header=None))
    every_row = ["--validation-fraction", 0]  # (a data file's default holds 20% out)
    summary = json.loads(run_cli("train", "--data", nohdr, "--epochs", 50, "--backend", "numpy", "--json",
                                 "--save", tmp_path / "m.npz", *every_row, check=0).stdout)
    assert summary["n_samples"] == 90
    pred = run_cli("predict", "--model", tmp_path / "m.npz", "--data", nohdr, "--backend", "numpy", check=0)
    assert len(pred.stdout.split()) == 90
    semi = write(tmp_path / "semi.csv", csv_text(X, labels, delimiter=";"))
    summary = json.loads(run_cli("train", "--data", semi, "--target", "species", "--epochs", 50, "--backend",
                                 "numpy", "--json", *every_row, check=0).stdout)
    assert summary["n_samples"] == 90 and summary["layer_sizes"][0] == 2
    by_index = json.loads(run_cli("train", "--data", nohdr, "--target", 2, "--epochs", 5, "--backend", "numpy",
                                  "--json", check=0).stdout)
    assert by_index["layer_sizes"][0] == 2


def test_cli_header_flags(tmp_path):
    path = write(tmp_path / "ids.csv", "1,2,3\n4,5,0\n6,7,1\n8,9,0\n")
    detected = json.loads(run_cli("train", "--data", path, "--epochs", 2, "--backend", "numpy", "--json",
                                  check=0).stdout)
    told = json.loads(run_cli("train", "--data", path, "--header", "--epochs", 2, "--backend", "numpy", "--json",
                              "--save", tmp_path / "m.npz", check=0).stdout)
    assert (detected["n_samples"], told["n_samples"]) == (4, 3)
    words = write(tmp_path / "w.csv", "a,b,c\n4,5,0\n")
    proc = run_cli("train", "--data", words, "--no-header", "--epochs", 2, "--backend", "numpy", check=2)
    assert "line 1, column '0' holds 'a'" in proc.stderr
    # predict and evaluate read the file as training did (--header saved), or as told
    assert len(run_cli("predict", "--model", tmp_path / "m.npz", "--data", path, check=0).stdout.split()) == 3
    bare = write(tmp_path / "bare.csv", "4,5\n6,7\n8,9\n1,2\n")  # no header, no label column
    assert len(run_cli("predict", "--model", tmp_path / "m.npz", "--data", bare, "--no-header",
                       check=0).stdout.split()) == 4
    out = json.loads(run_cli("evaluate", "--model", tmp_path / "m.npz", "--data", path, "--json", check=0).stdout)
    assert out["n_samples"] == 3
    assert "--header, --no-header" in run_cli("predict", "--help", check=0).stdout


def test_the_help_of_train_documents_the_data_flags():
    text = " ".join(run_cli("train", "--help", check=0).stdout.split())
    assert "--header, --no-header" in text and "semicolon" in text and "docs/data.md" in text


def test_the_data_docs_exist_and_name_the_rules():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "data.md"), encoding="utf-8") as handle:
        text = handle.read()
    for words in ("--header", "semicolon", "missing value", "regression", "UTF-8", "FIELD_LIMIT", "target_scaler"):
        assert words in text, words
