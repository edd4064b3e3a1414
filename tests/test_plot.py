"""Pictures: the plot commands write images of the expected size that are not blank."""

import struct
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from xpnet import cli, plot, tutorials  # noqa: E402

import reference  # noqa: E402
from conftest import run_cli  # noqa: E402


def png_size(path):
    """(width, height) from the PNG header."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", head[16:24])


def assert_not_blank(path, min_colors=50):
    from matplotlib.image import imread

    pixels = imread(path)[..., :3]
    colors = np.unique(np.round(pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colors) >= min_colors, f"only {len(colors)} colours: blank or nearly"
    assert pixels.std() > 0.05
    return pixels


def test_train_plot_png(tmp_path):
    path = tmp_path / "moons.png"
    proc = run_cli("train", "--backend", "numpy", "--threads", "1", "--n-samples", "200", "--epochs", "200", "--plot", path, check=0)
    assert f"plot      {path}" in proc.stdout
    assert png_size(path) == (1000, 400)  # figsize 10 x 4 inches at 100 dpi
    pixels = assert_not_blank(path)
    # the decision boundary panel is filled with (at least) two class colours
    left = np.round(pixels[50:350, 80:450] * 255).astype(int).reshape(-1, 3)
    _, counts = np.unique(left, axis=0, return_counts=True)
    assert np.sort(counts)[-2] > 0.1 * len(left)


def test_train_plot_svg_without_2d_inputs(tmp_path):
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    np.savez(data, X=X, y=(X[:, 0] > 0).astype(int))
    path = tmp_path / "loss.svg"
    run_cli("train", "--backend", "numpy", "--data", data, "--epochs", "50", "--quiet", "--plot", path, check=0)
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "<path" in text
    assert 'width="360pt" height="288pt"' in text  # 3-D inputs: only the loss curve, 5 x 4 inches


def test_tutorial_wildml_moons_plot_cli(tmp_path):
    path = tmp_path / "w.png"
    proc = run_cli("tutorial", "wildml-moons", "--iterations", "2000", "--plot", path, check=0)
    assert "Loss after iteration 1000" in proc.stdout
    assert png_size(path) == (1000, 400)
    assert_not_blank(path)


def test_hidden_sweep_and_alpha_figures(tmp_path):
    sweep = tutorials.wildml_hidden_sweep(backend="numpy", iterations=1000, sizes=(1, 3, 50))
    assert [run["hidden"] for run in sweep.data["runs"]] == [1, 3, 50]
    assert sweep.data["runs"][2]["accuracy"] > sweep.data["runs"][0]["accuracy"]
    plot.tutorial_figure(tmp_path / "sweep.png", sweep)
    assert png_size(tmp_path / "sweep.png") == (1000, 800)  # 2 rows of 2 panels, 4 inches each
    assert_not_blank(tmp_path / "sweep.png")
    # the figure draws what the tutorial returns; these numbers have its shape (the real run,
    # 420,000 updates, is too slow for a unit test; its numbers are the tutorial tests' business)
    runs = [{"alpha": a, "errors": list(0.5 * np.exp(-a * np.arange(6)))} for a in (0.01, 0.1, 1, 10)]
    alpha = tutorials.TutorialResult("trask-alpha", {"hidden": 4, "runs": runs})
    plot.tutorial_figure(tmp_path / "alpha.png", alpha)
    assert png_size(tmp_path / "alpha.png") == (800, 500)
    assert_not_blank(tmp_path / "alpha.png", min_colors=20)


def test_sweep_is_registered_and_matches_wildml_moons():
    assert "wildml-hidden-sweep" in tutorials.TUTORIALS
    sweep = tutorials.run("wildml-hidden-sweep", backend="numpy", iterations=1500)
    single = tutorials.run("wildml-moons", backend="numpy", hidden=3, iterations=1500)
    run3 = next(run for run in sweep.data["runs"] if run["hidden"] == 3)
    assert run3["losses"] == single.data["losses"]  # the sweep is the tutorial, once per size
    assert len(sweep.lines) == 7
    X, y = sweep.inputs
    for run in sweep.data["runs"][:2]:  # and the tutorial is WildML's program, digit for digit
        losses, accuracy = reference.wildml(X, y, run["hidden"], passes=1500)
        assert run["losses"] == losses and run["accuracy"] == accuracy


def test_plot_errors(tmp_path, capsys, monkeypatch):
    assert cli.main(["train", "--plot", str(tmp_path / "x.jpg")]) == 2
    assert "--plot" in capsys.readouterr().err
    assert cli.main(["tutorial", "trask-2layer", "--plot", str(tmp_path / "x.png")]) == 2
    assert "has no picture" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert cli.main(["train", "--epochs", "1", "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xpnet: error: plotting needs matplotlib") and "pip install 'xpnet[plot]'" in err
    assert "Traceback" not in err and not (tmp_path / "x.png").exists()


def test_optional_libraries_are_imported_only_when_asked():
    code = ("import sys, xpnet, xpnet.cli, xpnet.checkpoint, xpnet.data, xpnet.plot, xpnet.tutorials; "
            "print(sorted(m for m in ('matplotlib', 'sklearn', 'tqdm', 'pandas') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
