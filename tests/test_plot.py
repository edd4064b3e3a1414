"""Pictures: the plot commands write images of the expected size that are not blank."""

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import reference  # noqa: E402
from conftest import run_cli  # noqa: E402

from xpnet import cli, plot, tutorials  # noqa: E402

FLOWERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "flowers.csv")


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
    proc = run_cli("train", "--backend", "numpy", "--threads", "1", "--n-samples", "200", "--epochs", "200",
                   "--plot", path, check=0)
    assert f"plot      {path}" in proc.stdout
    assert png_size(path) == (1500, 400)  # boundary, loss, accuracy: 3 panels of 5 x 4 inches at 100 dpi
    pixels = assert_not_blank(path)
    # the decision boundary panel is filled with (at least) two class colours
    left = np.round(pixels[50:350, 80:450] * 255).astype(int).reshape(-1, 3)
    _, counts = np.unique(left, axis=0, return_counts=True)
    assert np.sort(counts)[-2] > 0.1 * len(left)


def svg_text_of_cli(*args):
    """Run the CLI with matplotlib writing SVG text as text (not paths), return the run."""
    code = ("import sys, matplotlib; matplotlib.rcParams['svg.fonttype'] = 'none'; from xpnet.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_train_plot_names_the_classes_axes_and_curves(tmp_path):
    path = tmp_path / "flowers.svg"
    proc = svg_text_of_cli("train", "--backend", "numpy", "--data", FLOWERS, "--target", "species", "--standardize",
                           "--validation-fraction", "0.2", "--epochs", "100", "--quiet", "--plot", path)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    for words in ("setosa", "versicolor", "virginica",  # the legend: the species names
                  ">length<", ">width<",  # the decision boundary's axes: the feature names
                  ">epoch<", ">training<", ">validation<", ">loss<", ">accuracy<"):  # the curves and their legends
        assert words in text, words


def test_train_plot_svg_without_2d_inputs(tmp_path):
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    np.savez(data, X=X, y=(X[:, 0] > 0).astype(int))
    path = tmp_path / "loss.svg"
    proc = svg_text_of_cli("train", "--backend", "numpy", "--data", data, "--epochs", "50", "--quiet", "--plot", path)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "<path" in text
    assert 'width="1080pt" height="288pt"' in text  # 3-D inputs: confusion matrix, loss, accuracy; 5 x 4 inches each
    # a data file holds 20% out by default: the confusion matrix is theirs
    assert ">confusion matrix (validation rows)<" in text and ">predicted class<" in text and ">true class<" in text


def test_figures_draw_on_figure_objects_and_leave_the_backend_alone(tmp_path):
    code = ("import sys, matplotlib; matplotlib.use('pdf'); import numpy as np; from xpnet import plot; "
            "fig = plot.training_figure({'loss': {'training': ([0, 1], [1.0, 0.5])}}, "
            "predict=lambda P: (P[:, 0] > 0).astype(int), X=np.array([[0.0, 1], [1, 0], [-1, 0]]), "
            "y=np.array([0, 1, 0])); plot.save(fig, sys.argv[1]); "
            "print(matplotlib.get_backend(), type(fig).__module__, 'matplotlib.pyplot' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.png")], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split() == ["pdf", "matplotlib.figure", "False"]  # the user's backend, no pyplot
    assert png_size(tmp_path / "f.png") == (1000, 400)
    assert "matplotlib.use(" not in Path(plot.__file__).read_text()


def test_class_colours_are_solid_and_readable_on_white_and_on_their_fill():
    from matplotlib.colors import to_rgb

    def luminance(colour):
        channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]

    for n in (2, 3, 10, 15, 30):
        colours = plot.class_colours(n)
        assert len({to_rgb(c) for c in colours}) == n
        for colour in colours:
            assert 1.05 / (luminance(colour) + 0.05) >= 1.5, (n, colour)  # no pale yellow points on white
    fig = plot.training_figure({}, predict=lambda P: (P[:, 0] > 0).astype(int), X=np.array([[0.0, 1], [1, 0], [-1, 0]]),
                               y=np.array([0, 1, 0]), class_names=["left", "right"], feature_names=["a", "b"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["left", "right"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "b")
    for points, colour in zip(ax.collections[-2:], plot.class_colours(2)):
        face = points.get_facecolor()[0]
        assert face[3] == 1 and tuple(face[:3]) == to_rgb(colour)  # filled with the class colour, not hollow


def test_regression_figure_draws_predicted_against_true():
    y = np.linspace(0, 10, 30)
    fig = plot.training_figure({"loss": {"training": ([0, 10], [1.0, 0.1])}}, regression=(y, y + 0.5),
                               target_names=["price"])
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true price", "predicted price")
    assert "exact prediction" in [t.get_text() for t in ax.get_legend().get_texts()]
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 1], y + 0.5)


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
    assert err.startswith("xpnet: error: plotting needs matplotlib") and "pip install '.[plot]'" in err
    assert "xpnet[plot]" not in err  # xpnet is not on a package index
    assert "Traceback" not in err and not (tmp_path / "x.png").exists()


def test_optional_libraries_are_imported_only_when_asked():
    code = ("import sys, xpnet, xpnet.cli, xpnet.checkpoint, xpnet.data, xpnet.plot, xpnet.tutorials; "
            "print(sorted(m for m in ('matplotlib', 'sklearn', 'tqdm', 'pandas') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
