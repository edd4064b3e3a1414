"""The flags of `xpnet train`: the command line's own (data, network, files), written here,
and one per training option, generated from :class:`~xpnet.TrainConfig`'s declarations
(:mod:`~xpnet.cli.options`) with the few command-line defaults that differ from the library's."""

from __future__ import annotations

import argparse

from ..data import datasets
from ..errors import Interval
from .args import _common, _fraction, _int_list, _non_negative_float, _positive_int, _seed
from .options import add_training_flags
from .plots import PLOT_POINTS

DEFAULT_EPOCHS = 2000
DEFAULT_RATE = 0.5
REGRESSION_RATE = 0.1  # the default for regression: 0.5 can diverge on unstandardized inputs with the squared loss
DEFAULTS_WHY = ("xpnet.fit's defaults are a rate of 0.1 and 1,000 epochs, safe for any data and for minibatches; "
                "the command line's 0.5 (0.1 for regression) and 2,000 full-batch epochs are tuned for its small "
                "built-in datasets, so that `xpnet train` alone converges")
TASKS = ("auto", "classification", "regression")
HOLDOUT = Interval(0, 1, "left")  # --validation-fraction: 0 (nothing held out) up to, not including, 1


def _holdout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value not in HOLDOUT:
        raise argparse.ArgumentTypeError(f"must be {HOLDOUT.describe()} (0: no validation rows), got {text!r}")
    return value


# What the command line does differently from TrainConfig's declarations (see add_training_flags).
TRAINING_FLAGS = {
    "epochs": {"default": None, "shown": f"{DEFAULT_EPOCHS}; with --resume: the total of the saved run, counting "
                                         "the epochs already done",
               "help": "passes over the data; full-batch updates without --batch-size"},
    "learning_rate": {"default": DEFAULT_RATE, "aliases": ("--lr",),
                      "shown": f"{DEFAULT_RATE}, and {REGRESSION_RATE} for regression; xpnet.fit's is 0.1: see the "
                               "description",
                      "help": "gradient step size, Trask's alpha / WildML's epsilon (--lr for short)"},
    "optimizer": {"help": "sgd: gradient descent, with --momentum; adam: Adam (--beta1, --beta2, --epsilon; try "
                          "--learning-rate 0.001-0.01)"},
    "seed": {"default": 0, "type": _seed,
             "help": "seed for the data, its split, the weights, shuffling and dropout masks, 0 to 2**32-1"},
    "validation_fraction": {"default": None, "type": _holdout, "metavar": "F",
                            "shown": "0.2 of a --data file of 20 rows or more, else 0; 0.1 with --early-stopping",
                            "help": "hold out this fraction of the training rows (shuffled with --seed) as validation "
                                    "rows and report loss and accuracy (or R^2) on them; with --early-stopping their "
                                    "loss decides when to stop; 0: none. --dataset digits also sets 25% of its rows "
                                    "aside as test rows, which are only reported"},
    "early_stopping": {"default": None, "shown": "on for a --data file with validation rows, off otherwise",
                       "help": "stop when the validation loss has not improved for --patience epochs and restore the "
                               "best weights; --no-early-stopping trains all --epochs"},
    "log_every": {"shown": "about 20 points", "help": "log loss and accuracy every N epochs"},
    "batch_size": {"shown": "all rows, full batch",
                   "help": "samples per update, reshuffled every epoch from --seed (see --no-shuffle)"},
    "kernels": {"shown": "auto",
                "help": "whole-pass kernels for passes of over 256 rows: auto (numba's compiled kernels when numba is "
                        "installed, else NumPy's, and the summary says so), numpy (NumPy's only), jit (numba's only, "
                        "the generic pass where none applies; without numba an error: pip install '.[jit]' in the "
                        "clone); results are the same up to float rounding; a first run compiles for a few seconds"},
    "divergence_factor": {"help": "a logged loss this many times the first is divergence; none: only NaN/Inf"},
}


def add_parser(commands, handler) -> None:
    """Add the `train` subcommand to ``commands`` (the parser's subparsers), run by ``handler``."""
    train = commands.add_parser("train", help="train an MLP classifier or regressor on a built-in dataset or your "
                                              "own data file",
                                description="Train an MLP by gradient descent (full batch, or minibatches with "
                                            "--batch-size) on a built-in dataset or your own --data file: a "
                                            "classifier (softmax, cross-entropy) or, for numeric targets, a "
                                            "regressor (identity output, squared loss). Reports loss and accuracy "
                                            "(or R^2 and RMSE) on the training rows and on held-out rows (a data "
                                            "file keeps 20% for validation by default). Defaults: "
                                            f"{DEFAULTS_WHY}.")
    _common(train)
    _data_flags(train)
    _network_flags(train)
    add_training_flags(train.add_argument_group("training (xpnet.TrainConfig's options; see docs/training.md)"),
                       TRAINING_FLAGS)
    _file_flags(train)
    train.set_defaults(handler=handler, effective=effective)


def effective(args) -> set:
    """Resolve what depends on other flags (--standardize: on for a --data file) and return the
    settings that do not apply to this run (the built-in dataset's beside --data, and the
    reverse), which --print-config leaves out."""
    if args.standardize is None:
        args.standardize = bool(args.data)
    return {"dataset", "n_samples", "noise", "classes"} if args.data else {"data", "target", "header"}


def _data_flags(train) -> None:
    """The data: a built-in dataset, or your own file."""
    train.add_argument("--dataset", default="moons", choices=datasets.NAMES + ("digits",),
                       help="built-in dataset (default: moons); digits is scikit-learn's 8x8 handwritten digits "
                            "(needs scikit-learn) with a 25%% held-out test split")
    train.add_argument("--n-samples", type=_positive_int, default=1000, metavar="N",
                       help="samples to generate (default: 1000; the 4-row tables ignore it)")
    train.add_argument("--noise", type=_non_negative_float, default=None,
                       help="noise of the generated data (default: the dataset's own, 0.2 for moons)")
    train.add_argument("--classes", type=_positive_int, default=None, metavar="K",
                       help="number of classes for --dataset spirals or blobs (default: 3)")
    train.add_argument("--data", default=None, metavar="FILE",
                       help="train on your own data instead of --dataset: a .csv (comma, semicolon or tab separated; "
                            "a header row is detected, see --header; the target in the --target column: words or "
                            "whole numbers for classes, other numbers (or whole numbers with many distinct values) "
                            "for regression, see --task; missing values are refused), or .npy / .npz (arrays X and "
                            "y); see docs/data.md. Features are standardized and 20%% of the rows held out for "
                            "validation unless told otherwise. With --distributed each process reads only its block "
                            "of rows; the labels, the split and the standardization equal one process's")
    train.add_argument("--target", default=None, metavar="COLUMN",
                       help="the target column of --data: a CSV header name or a column index counting from 0 "
                            "(default: the last column)")
    header_flag(train)
    train.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                       help="rescale every feature to mean 0, standard deviation 1 (fitted on the training part; "
                            "saved with --save and applied by predict/evaluate); --no-standardize keeps the raw "
                            "values (default: on for a --data file, off for a built-in dataset)")
    train.add_argument("--task", choices=TASKS, default="auto",
                       help="classification (softmax, cross-entropy, labels) or regression (identity output, "
                            "squared loss, numeric targets standardized inside and reported in their own units); "
                            "auto: regression when the --data target holds fractional numbers, or more than 20 "
                            "distinct whole numbers that are also more than one per 20 rows; the summary says why "
                            "(default: auto)")


def _network_flags(train) -> None:
    """The network: widths, activations, precision, weights."""
    train.add_argument("--hidden", type=_int_list, default=[32], metavar="W[,W...]",
                       help="hidden layer widths, comma separated, e.g. 64,64 (default: 32)")
    train.add_argument("--activation", default="tanh", metavar="NAME",
                       help="hidden activation: tanh, sigmoid or relu; one, or one per layer comma separated "
                            "(default: tanh)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="floating point precision (default: float32)")
    train.add_argument("--init", default="auto",
                       help="weight init: auto, xavier, he, wildml, trask, cavar (default: auto)")
    train.add_argument("--dropout", type=_fraction, default=0.0, metavar="P",
                       help="inverted dropout rate on hidden layers, training only (default: 0, off)")
    train.add_argument("--batch-norm", action="store_true",
                       help="batch normalization before each hidden activation (running statistics at inference)")


def _file_flags(train) -> None:
    """Checkpoints, pictures, progress, processes."""
    train.add_argument("--save", default=None, metavar="FILE",
                       help="write the trained model to FILE (.npz + JSON metadata, written atomically; the "
                            "destination is checked before training). On Ctrl-C, SIGTERM or SIGHUP the epoch in "
                            "progress is finished and saved. With --resume and no --save: the resumed file")
    train.add_argument("--save-every", type=_positive_int, default=None, metavar="N",
                       help="also write the --save checkpoint every N epochs of this run (atomically), for long "
                            "runs; a failed periodic write is a warning and training goes on")
    train.add_argument("--resume", default=None, metavar="FILE",
                       help="continue the run saved in FILE up to --epochs in total, with its data and settings "
                            "(a flag given that contradicts them is an error); gives the same weights as an "
                            "uninterrupted run, and saves back to FILE unless --save says otherwise")
    train.add_argument("--plot", default=None, metavar="FILE",
                       help="draw the run to FILE (.png, .svg or .pdf): the decision boundary with the class names "
                            "(2-D data; else the confusion matrix) or predicted against true values (regression), "
                            "and the training and validation curves. Needs matplotlib: pip install matplotlib "
                            "(in a clone of xpnet: pip install '.[plot]')")
    train.add_argument("--quiet", action="store_true",
                       help="no progress output (neither the live bar on a terminal nor the periodic lines)")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel training over the processes of an MPI job, launched as `mpiexec -n P "
                            "python -m mpi4py -m xpnet train ... --distributed`. Each process holds only its own "
                            "rows: of a --data file it reads only its block (see --data); a built-in --dataset is "
                            "generated whole on every process and each keeps its block. One Allreduce per step sums "
                            "the gradients, the loss and the Ctrl-C flag, so results equal one process's, Ctrl-C "
                            "stops every process after the same epoch, and only rank 0 prints and writes files "
                            f"(--plot draws at most {PLOT_POINTS:,} of the training rows). The processes check at "
                            "start that they were given the same flags. Each process uses its share of the cores "
                            "unless --threads is given. Without mpiexec it runs as one process. Needs mpi4py and "
                            "an MPI: pip install mpi4py mpich")


HEADER_HELP = ("whether the first row of a .csv names its columns (default: detected; a first row of numbers is data, "
               "and the columns are then named by index 0, 1, ...)")


def header_flag(parser, help: str = HEADER_HELP) -> None:
    """--header / --no-header: whether a CSV's first row names its columns (train, predict, evaluate)."""
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=None, help=help)
