"""The tutorials' printed numbers, reproduced through the library.

Three kinds of reference: the digits the texts themselves print (../shared/seeds), the
tutorials' code run as written (tests/reference.py), and NumPy's own results for the
other backends.
"""

import json

import numpy as np
import pytest
import reference
from conftest import available_backend, run_cli

from xpnet import tutorials
from xpnet.data import datasets

# Printed in the texts (shared/seeds/002 and 000/001).
TRASK_2LAYER_PRINTED = [0.00966449, 0.00786506, 0.99358898, 0.99211957]
CAVAR_2LAYER_PRINTED = [0.00961242, 0.00782087, 0.99362525, 0.99216235]  # what 10,110 passes give
CAVAR_3LAYER_ERRORS = [0.49962354308293877, 0.010185068686370096, 0.006740755437297382, 0.005345052957883488,
                       0.004547502999833714, 0.004017450105072936, 0.0036334495140870125, 0.003339229754058864,
                       0.0031047453709322735, 0.0029123275501446943]
CAVAR_3LAYER_WO = [[-7.07355497], [14.20975817], [-7.01708617], [-7.15528258]]
CAVAR_3LAYER_WH = [[6.66182717, 6.80494448, -3.00320286, 3.65642155],
                   [-3.43419418, 6.77518798, 6.58168773, 3.71366194],
                   [0.59089835, -1.96151177, 0.18071609, -5.62078292]]
WILDML_PRINTED = ["Loss after iteration 0: 0.432387", "Loss after iteration 1000: 0.068947"]


def column(output):
    return [row[0] for row in output]


def test_trask_2layer_prints_the_texts_output():
    run = tutorials.run("trask-2layer", backend="numpy")
    assert np.round(column(run.data["output"]), 8).tolist() == TRASK_2LAYER_PRINTED
    assert np.array_equal(run.data["output"], reference.two_layer("trask", 10_000))
    assert run.lines[0] == "Output After Training:"


def test_cavar_2layer_follows_its_code_and_10110_passes_give_the_printed_output():
    run = tutorials.run("cavar-2layer", backend="numpy")
    assert np.array_equal(run.data["output"], reference.two_layer("cavar", 10_000))
    extra = tutorials.run("cavar-2layer", backend="numpy", iterations=10_110)
    assert np.round(column(extra.data["output"]), 8).tolist() == CAVAR_2LAYER_PRINTED


def test_trask_3layer_equals_the_code_bit_for_bit():
    run = tutorials.run("trask-3layer", backend="numpy")
    errors, _, _ = reference.three_layer("trask", 60_000)
    assert run.data["errors"] == errors
    assert run.lines[0] == f"Error:{errors[0]}" and len(run.lines) == 6


def test_cavar_3layer_prints_every_digit_of_the_text():
    run = tutorials.run("cavar-3layer", backend="numpy")
    errors, Wh, Wo = reference.three_layer("cavar", 100_000)
    assert run.data["errors"] == errors  # his code, run here: bit for bit
    assert np.array_equal(run.data["weights"]["Wh"], Wh) and np.array_equal(run.data["weights"]["Wo"], Wo)
    # The notebook printed repr() digits from another machine's BLAS/libm: his own code run
    # here differs from them in the 16th-17th significant digit (0.010185068686370102 vs
    # ...096), so the full-precision text matches to 1e-13 and the 8-digit weights exactly.
    assert run.data["errors"][0] == CAVAR_3LAYER_ERRORS[0]
    assert run.data["errors"] == pytest.approx(CAVAR_3LAYER_ERRORS, rel=1e-13)
    assert np.round(run.data["weights"]["Wo"], 8).tolist() == CAVAR_3LAYER_WO
    assert np.round(run.data["weights"]["Wh"], 8).tolist() == CAVAR_3LAYER_WH


@pytest.mark.parametrize("hidden, iterations", [(4, 60_000), (32, 20_001)])
def test_trask_alpha_sweep_equals_the_code(hidden, iterations):
    # pytest turns warnings into errors, so the saturating alpha=1000 run also proves
    # that the sigmoid never overflows.
    run = tutorials.run("trask-alpha", backend="numpy", hidden=hidden, iterations=iterations)
    assert [r["alpha"] for r in run.data["runs"]] == list(tutorials.TRASK_ALPHAS)
    for r in run.data["runs"]:  # alpha 10 with 32 hidden units is chaotic: still bit for bit
        errors, _, _ = reference.three_layer("trask", iterations, alpha=r["alpha"], hidden=hidden)
        assert r["errors"] == errors, r["alpha"]
    by_alpha = {r["alpha"]: r["errors"] for r in run.data["runs"]}
    assert by_alpha[1000][-1] == pytest.approx(0.5, abs=0.02)  # "hardlining at 0.5"
    assert by_alpha[10][-1] < by_alpha[0.001][-1]


@pytest.mark.parametrize("hidden", [1, 2, 3, 4, 5, 20, 50])
def test_wildml_moons_equals_the_code_for_every_hidden_size(hidden):
    X, y = datasets.moons(200, noise=0.2, seed=0)
    losses, accuracy = reference.wildml(X, y, hidden)
    run = tutorials.run("wildml-moons", backend="numpy", hidden=hidden)
    assert run.data["losses"] == losses  # bit for bit, chaotic sizes 2-4 included
    assert run.data["accuracy"] == accuracy
    if hidden == 3:
        assert run.lines[:2] == WILDML_PRINTED


# Shortened runs (array_api_strict is slow; the full runs are checked on NumPy above):
# trask-alpha is trask-3layer with other rates, so trask-3layer stands for it here.
@pytest.mark.parametrize("name, iterations", [("trask-3layer", 10_001), ("cavar-3layer", 10_001),
                                              ("wildml-moons", 5_000), ("trask-2layer", 10_000),
                                              ("cavar-2layer", 10_000)])
def test_array_api_strict_equals_numpy(name, iterations):
    available_backend("array_api_strict")
    ours = tutorials.run(name, backend="array_api_strict", iterations=iterations).data
    theirs = tutorials.run(name, backend="numpy", iterations=iterations).data
    assert_close_tree(ours, theirs, rtol=1e-9)


@pytest.mark.parametrize("name, hidden, iterations", [("trask-3layer", None, 20_001), ("cavar-3layer", None, 10_001),
                                                      ("trask-2layer", None, 10_000), ("wildml-moons", 5, 5_000)])
def test_torch_equals_numpy_on_non_chaotic_runs(name, hidden, iterations):
    available_backend("torch")
    ours = tutorials.run(name, backend="torch", hidden=hidden, iterations=iterations).data
    theirs = tutorials.run(name, backend="numpy", hidden=hidden, iterations=iterations).data
    assert_close_tree(ours, theirs, rtol=1e-9)


def assert_close_tree(a, b, rtol):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close_tree(a[key], b[key], rtol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close_tree(x, y, rtol)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=rtol, abs=1e-300)
    else:
        assert a == b


def test_cli_tutorial_json_is_one_line_with_the_documented_keys():
    proc = run_cli("tutorial", "wildml-moons", "--backend", "numpy", "--json", check=0)
    assert proc.stdout.count("\n") == 1
    data = json.loads(proc.stdout)
    assert len(data["losses"]) == 20 and 0.9 <= data["accuracy"] <= 1
    assert data["losses"][0] == 0.43238663152549245  # full precision survives JSON


def test_cli_tutorial_text_and_list():
    proc = run_cli("tutorial", "trask-3layer", "--backend", "numpy", "--iterations", "20000", check=0)
    assert proc.stdout.splitlines()[0] == "Error:0.4964100319027255"
    listing = run_cli("tutorial", "list", check=0).stdout
    assert all(name in listing for name in tutorials.TUTORIALS)


def test_cli_tutorial_errors():
    proc = run_cli("tutorial", "no-such-tutorial", check=2)
    assert proc.stderr.startswith("xpnet: error:") and "tutorial" in proc.stderr
    proc = run_cli("tutorial", "trask-2layer", "--hidden", "3", check=2)
    assert "hidden" in proc.stderr
