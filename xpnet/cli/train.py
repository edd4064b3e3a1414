"""`xpnet train`: its flags, and training a model from them (progress, --resume, --save, the report).

A run: resolve the flags (a --config file, then the command line; --resume's saved settings),
check the output files, prepare the data (:mod:`~xpnet.cli.prepare`), build or restore the
model, fit it with a progress callback (which also writes --save-every checkpoints), then on
rank 0 save, draw and report. With --distributed every rank runs this same code; only rank 0
writes files, and whether it succeeded is broadcast so that every rank exits with the same status.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import distributed, metrics
from ..backend import to_numpy
from ..data import datasets
from ..errors import XpnetError, XpnetValueError
from ..mlp import MLP
from ..training import optim
from ..training.config import TrainConfig
from ..training.loop import fit
from .args import (
    _common,
    _fraction,
    _int_list,
    _non_negative_float,
    _positive_float,
    _positive_int,
    _progress,
    _seed,
    check_destination,
    say,
)

if TYPE_CHECKING:
    from .prepare import Prepared

DEFAULT_EPOCHS = 2000
DEFAULT_RATE = 0.5
REGRESSION_RATE = 0.1  # the default for regression: 0.5 can diverge on unstandardized inputs with the squared loss
DEFAULTS_WHY = ("xpnet.fit's defaults are a rate of 0.1 and 1,000 epochs, safe for any data and for minibatches; "
                "the command line's 0.5 (0.1 for regression) and 2,000 full-batch epochs are tuned for its small "
                "built-in datasets, so that `xpnet train` alone converges")
TASKS = ("auto", "classification", "regression")


def add_parser(commands) -> None:
    """Add the `train` subcommand to ``commands`` (the parser's subparsers)."""
    train = commands.add_parser("train", help="train an MLP classifier or regressor on a built-in dataset or your "
                                              "own data file",
                                description="Train an MLP by gradient descent (full batch, or minibatches with "
                                            "--batch-size) on a built-in dataset or your own --data file: a "
                                            "classifier (softmax, cross-entropy) or, for numeric targets, a "
                                            "regressor (identity output, squared loss). Reports loss and accuracy "
                                            "(or R^2 and RMSE) on the training rows and on held-out rows with "
                                            f"--validation-fraction. Defaults: {DEFAULTS_WHY}.")
    _common(train)
    train.add_argument("--dataset", default="moons", choices=datasets.NAMES + ("digits",),
                       help="built-in dataset (default: moons); digits is scikit-learn's 8x8 handwritten digits "
                            "(needs scikit-learn) with a 25%% held-out test split")
    train.add_argument("--n-samples", type=_positive_int, default=1000, metavar="N",
                       help="samples to generate (default: 1000; the 4-row tables ignore it)")
    train.add_argument("--noise", type=_non_negative_float, default=None,
                       help="noise of the generated data (default: the dataset's own, 0.2 for moons)")
    train.add_argument("--hidden", type=_int_list, default=[32], metavar="W[,W...]",
                       help="hidden layer widths, comma separated, e.g. 64,64 (default: 32)")
    train.add_argument("--activation", default="tanh", metavar="NAME",
                       help="hidden activation: tanh, sigmoid or relu; one, or one per layer comma separated "
                            "(default: tanh)")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help=f"passes over the data; full-batch updates without --batch-size (default: "
                            f"{DEFAULT_EPOCHS}; with --resume: the total of the saved run, counting the epochs "
                            f"already done)")
    train.add_argument("--learning-rate", type=_positive_float, default=DEFAULT_RATE, metavar="RATE",
                       help=f"gradient step size, Trask's alpha / WildML's epsilon (default: {DEFAULT_RATE}, and "
                            f"{REGRESSION_RATE} for regression; xpnet.fit's is 0.1: see the description)")
    train.add_argument("--l2", type=_non_negative_float, default=0.0,
                       help="L2 strength on the weights, WildML's reg_lambda (default: 0)")
    train.add_argument("--reduction", choices=("mean", "sum"), default="mean",
                       help="average the gradient over samples, or sum it as the tutorials do (default: mean)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="floating point precision (default: float32)")
    train.add_argument("--init", default="auto",
                       help="weight init: auto, xavier, he, wildml, trask, cavar (default: auto)")
    train.add_argument("--seed", type=_seed, default=0,
                       help="seed for data and weights, 0 to 2**32-1 (default: 0)")
    train.add_argument("--log-every", type=_positive_int, default=None, metavar="N",
                       help="log loss and accuracy every N epochs (default: about 20 points)")
    train.add_argument("--task", choices=TASKS, default="auto",
                       help="classification (softmax, cross-entropy, labels) or regression (identity output, "
                            "squared loss, numeric targets standardized inside and reported in their own units); "
                            "auto: regression when the --data target holds non-integer numbers (default: auto)")
    _user_flags(train)
    train.add_argument("--classes", type=_positive_int, default=None, metavar="K",
                       help="number of classes for --dataset spirals or blobs (default: 3)")
    _training_options(train)
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
    train.set_defaults(handler=cmd_train)


def _training_options(train: argparse.ArgumentParser) -> None:
    """Flags for minibatches, momentum, schedules, clipping, dropout, batch norm, early stopping."""
    group = train.add_argument_group("optimization (see xpnet.optim; defaults: plain full-batch descent)")
    group.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                       help="samples per update, reshuffled every epoch from --seed (default: all, full batch)")
    group.add_argument("--optimizer", default="sgd", choices=optim.OPTIMIZERS,
                       help="sgd: gradient descent, with --momentum; adam: Adam (--beta1, --beta2, --epsilon; "
                            "try --learning-rate 0.001-0.01) (default: sgd)")
    group.add_argument("--momentum", type=_fraction, default=0.0, metavar="MU",
                       help="SGD momentum in [0, 1): v = MU*v + g, step -RATE*v (default: 0, off)")
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum (needs --momentum > 0)")
    group.add_argument("--beta1", type=_fraction, default=TrainConfig.beta1, metavar="B1",
                       help=f"Adam: decay of the gradient's running mean (default: {TrainConfig.beta1})")
    group.add_argument("--beta2", type=_fraction, default=TrainConfig.beta2, metavar="B2",
                       help=f"Adam: decay of the squared gradient's running mean (default: {TrainConfig.beta2})")
    group.add_argument("--epsilon", type=_positive_float, default=TrainConfig.epsilon, metavar="EPS",
                       help=f"Adam: added to the root of that mean (default: {TrainConfig.epsilon:g})")
    group.add_argument("--schedule", default="constant", choices=optim.SCHEDULES,
                       help="learning-rate schedule over epochs t: constant; annealing RATE/(1+DECAY*t); "
                            "step RATE*GAMMA**floor(t/STEP); cosine from RATE down to 0; invscaling "
                            "RATE/(t*N+1)**POWER_T; adaptive: RATE divided by 5 whenever training stalls (needs "
                            "--tol) (default: constant)")
    group.add_argument("--lr-decay", type=float, default=optim.Schedule.decay, metavar="DECAY",
                       help=f"annealing: DECAY in RATE/(1+DECAY*t) (default: {optim.Schedule.decay})")
    group.add_argument("--lr-step", type=_positive_int, default=optim.Schedule.step, metavar="STEP",
                       help=f"step: epochs between drops (default: {optim.Schedule.step})")
    group.add_argument("--lr-gamma", type=float, default=optim.Schedule.gamma, metavar="GAMMA",
                       help=f"step: factor at each drop (default: {optim.Schedule.gamma})")
    group.add_argument("--power-t", type=_non_negative_float, default=optim.Schedule.power_t, metavar="P",
                       help=f"invscaling: the exponent (default: {optim.Schedule.power_t})")
    group.add_argument("--tol", type=_non_negative_float, default=None, metavar="TOL",
                       help="stop when the epoch's training loss improved by less than TOL for more than "
                            "--n-iter-no-change epochs in a row (scikit-learn's rule; default: off)")
    group.add_argument("--n-iter-no-change", type=_positive_int, default=TrainConfig.n_iter_no_change, metavar="K",
                       help=f"with --tol: epochs without progress allowed (default: {TrainConfig.n_iter_no_change})")
    group.add_argument("--kernels", choices=("auto", "numpy", "jit"), default=None,
                       help="whole-pass kernels for passes of over 256 rows: auto (numba's compiled kernels when "
                            "numba is installed, else NumPy's), numpy (NumPy's only), jit (numba's only, the generic "
                            "pass where none applies; pip install '.[jit]' in the clone); results are the same up to "
                            "float rounding; a first run compiles for a few seconds (default: auto)")
    group.add_argument("--clip-value", type=float, default=None, metavar="C",
                       help="clip every gradient entry to [-C, C], Trask's delta trimming (default: off)")
    group.add_argument("--clip-norm", type=float, default=None, metavar="N",
                       help="rescale all gradients together to global L2 norm <= N (default: off)")
    group = train.add_argument_group("regularization")
    group.add_argument("--dropout", type=_fraction, default=0.0, metavar="P",
                       help="inverted dropout rate on hidden layers, training only (default: 0, off)")
    group.add_argument("--batch-norm", action="store_true",
                       help="batch normalization before each hidden activation (running statistics at inference)")
    group.add_argument("--early-stopping", action="store_true",
                       help="hold out --validation-fraction of the data; stop when its loss has not improved "
                            "for --patience epochs and restore the best weights")
    group.add_argument("--patience", type=_positive_int, default=10, metavar="EPOCHS",
                       help="epochs without validation improvement before stopping (default: 10)")


def _user_flags(train) -> None:
    """The train flags of the users' side: own data, checkpoints, pictures, quiet."""
    train.add_argument("--data", default=None, metavar="FILE",
                       help="train on your own data instead of --dataset: a .csv (comma, semicolon or tab separated; "
                            "a header row is detected, see --header; labels in the --target column: words or whole "
                            "numbers for classes, other numbers for regression (see --task); missing values are "
                            "refused), or .npy / .npz (arrays X and y); see docs/data.md. With "
                            "--distributed each process reads only its block of rows (.npy and np.savez members by "
                            "offset, np.savez_compressed members as a stream, a CSV after a first pass that finds "
                            "where its rows start); the labels, --validation-fraction split and --standardize "
                            "statistics are agreed over the processes and equal one process's")
    train.add_argument("--target", default=None, metavar="COLUMN",
                       help="the label column of --data: a CSV header name or a column index counting from 0 "
                            "(default: the last column)")
    _header_flag(train)
    train.add_argument("--standardize", action="store_true",
                       help="rescale every feature to mean 0, standard deviation 1 (fitted on the training part; "
                            "saved with --save and applied by predict/evaluate)")
    train.add_argument("--validation-fraction", type=float, default=None, metavar="F",
                       help="hold out this fraction of the training rows (shuffled with --seed) as validation rows "
                            "and report loss and accuracy (or R^2) on them; with --early-stopping their loss decides "
                            "when to stop (default: 0; 0.1 with --early-stopping). --dataset digits also sets 25%% "
                            "of its rows aside as test rows, which are only reported")
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


def _train_config(args) -> TrainConfig:
    """The :class:`xpnet.TrainConfig` of the training flags (checked, so errors come before any work;
    the epochs of this run and the logging interval are set once they are known)."""
    return TrainConfig(learning_rate=args.learning_rate, l2=args.l2, reduction=args.reduction,
                       batch_size=args.batch_size, optimizer=args.optimizer, momentum=args.momentum,
                       nesterov=args.nesterov, beta1=args.beta1, beta2=args.beta2, epsilon=args.epsilon,
                       schedule=optim.Schedule(args.schedule, decay=args.lr_decay, step=args.lr_step,
                                               gamma=args.lr_gamma, power_t=args.power_t),
                       tol=args.tol, n_iter_no_change=args.n_iter_no_change, kernels=args.kernels,
                       clip_value=args.clip_value, clip_norm=args.clip_norm, early_stopping=args.early_stopping,
                       patience=args.patience)


@dataclass
class _Run:
    """One `xpnet train` run once its data and model are ready."""

    comm: distributed.Communicator | None  # with --distributed
    prepared: Prepared  # this process's rows
    model: MLP
    task: str  # "classification" or "regression"
    scaling: tuple | None  # (mean, scale) of a regression's targets
    done: int  # epochs a resumed run had already done
    history: dict  # their logged epochs and losses

    @property
    def root(self) -> bool:
        return self.comm is None or self.comm.is_root  # only rank 0 prints and writes files


def cmd_train(args) -> int:
    comm = distributed.active() if args.distributed else None  # launched in main()
    ckpt, config, train_config = _settings(args, comm)
    run = _start(args, comm, ckpt, config)
    saver = _Saver(args.save, run.model, config, run.history, run.prepared, run.done) if args.save and run.root \
        else None
    progress = _Progress(args, run.model, run.prepared, run.done, comm, run.task, run.scaling, saver)
    train_config = dataclasses.replace(train_config, epochs=args.epochs - run.done, learning_rate=args.learning_rate,
                                       log_every=progress.fit_every)
    _compile_ahead(args, run, train_config)
    progress.start = time.perf_counter()  # the clock starts with training, after any compiling
    result = _fit(comm, run.model, run.prepared, train_config, callback=progress, initial_epoch=run.done,
                  optimizer_state=ckpt.optimizer_state if ckpt else None,
                  validation_data=(run.prepared.X_val, run.prepared.y_val) if args.early_stopping else None)
    progress.close()
    return _finish(args, run, result, saver, progress)


def _compile_ahead(args, run, config: TrainConfig) -> None:
    """Compile the JIT kernel the run's passes will take before the first epoch (its first run,
    before numba's cache has it), saying so: a progress line, not a silent pause."""
    from ..engine.numpy_ops import get_ops
    from ..engine.plan import choose

    model, n = run.model, run.prepared.X.shape[0]
    rows = n if config.batch_size is None else min(config.batch_size, n)
    say = run.root and not args.quiet and not args.json
    choose(get_ops(model.backend), model.spec, model.dtype_name, rows, config.kernels or model.kernels).warm_up(
        before=(lambda: _progress("xpnet: compiling the JIT kernels (first run only)...")) if say else None)


def _settings(args, comm) -> tuple:
    """The run's settings from the flags (and --resume's checkpoint), checked before any work:
    ``(checkpoint or None, the run's config, its TrainConfig)``."""
    ckpt = _resume(args) if args.resume else None  # first: it restores the saved run's flags
    train_config = _train_config(args)
    _check_flags(args)
    args.epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    saving_back = bool(args.resume and not args.save)
    if saving_back:
        args.save = args.resume
    config = _run_config(args)
    if comm is not None:
        _check_same_settings(comm, args)
    if comm is None or comm.is_root:
        _check_outputs(args)
        if saving_back and not args.quiet:
            _progress(f"xpnet: no --save given: the run will be saved back to {args.save} (atomically)")
    return ckpt, config, train_config


def _start(args, comm, ckpt, config) -> _Run:
    """Prepare the data (this process's rows) and build or restore the model."""
    from .prepare import prepare

    prepared = prepare(config, comm)
    task = _task(args, prepared)
    config["task"] = task
    if task == "regression" and ckpt is None and "learning_rate" not in getattr(args, "given", ()):
        args.learning_rate = config["learning_rate"] = REGRESSION_RATE
    scaling = _target_scaling(prepared)
    if scaling is not None:
        config["target_scaling"] = {"mean": scaling[0].tolist(), "scale": scaling[1].tolist()}
    model = _model(args, ckpt, prepared, task, comm)
    done = ckpt.epochs_done if ckpt else 0
    if args.epochs <= done:
        raise XpnetValueError(f"--epochs {args.epochs} is not more than the {done} epochs {args.resume!r} already "
                              f"ran; --epochs counts the total, so ask for more than {done}")
    run = _Run(comm, prepared, model, task, scaling, done, dict(ckpt.history) if ckpt else {"epochs": [], "losses": []})
    if not args.json and not args.quiet and run.root:
        _progress(f"xpnet: training {model} on {prepared.source} ({prepared.n_samples} samples"
                  f"{f', {prepared.n_val} for validation' if prepared.n_val else ''}"
                  f"{f', {prepared.n_test} for testing' if prepared.n_test else ''}); "
                  f"backend: {model.backend.reason}" + (f"; resuming at epoch {done}" if done else ""))
    for note in prepared.notes if run.root and not args.quiet else ():  # e.g. a large CSV held in memory
        _progress(f"xpnet: {note}")
    return run


def _finish(args, run: _Run, result, saver, progress) -> int:
    """Save (rank 0), draw, score and report; the exit status, the same on every rank."""
    comm = run.comm
    save_ok, rescue = True, None
    if args.save:  # rank 0 writes; every rank learns whether it worked
        rescue = saver.final(progress, run.done + result.epochs, result.optimizer_state) if saver else None
        save_ok = _agree(comm, rescue is None)
    saved = args.save if args.save and save_ok else None
    plotted = _plot(args, run, progress) if args.plot else None
    scores = _scores(comm, run.model, run.prepared, run.task, run.scaling)  # collectives with --distributed
    if run.root:
        _report(args, run, result, scores, saved, rescue, plotted)
    if comm is not None:  # python -m mpi4py aborts the job at a non-zero exit: not before rank 0 is done
        sys.stdout.flush()
        sys.stderr.flush()
        comm.barrier()
    return _exit_code(result, not save_ok, plotted is False)


def _check_flags(args) -> None:
    if args.classes is not None and (args.data or args.dataset not in ("spirals", "blobs")):
        raise XpnetValueError(f"--classes applies to --dataset spirals or blobs, not {args.data or args.dataset}; "
                              "drop it")
    if args.save_every is not None and not (args.save or args.resume):
        raise XpnetValueError("--save-every needs --save FILE (or --resume FILE) to know where to write")


def _check_outputs(args) -> None:
    """Refuse unwritable --save and --plot destinations before any work (rank 0: it writes them)."""
    if args.save:
        check_destination("--save", args.save)
    if args.plot:
        from .. import plot

        plot.check_path(args.plot)
        check_destination("--plot", args.plot)


def _exit_code(result, save_failed: bool, plot_failed: bool) -> int:
    """128 + the signal's number when a signal stopped training (130 for Ctrl-C), 1 when it
    diverged or a file could not be written, else 0."""
    if result.interrupted:
        return 128 + _signal_number(result)
    return 1 if result.diverged or save_failed or plot_failed else 0


def _signal_number(result) -> int:
    return int(result.signal or signal.SIGINT)


def _agree(comm, ok: bool) -> bool:
    """Rank 0's ``ok`` on every rank (one broadcast), so all ranks exit with the same status."""
    return ok if comm is None else bool(comm.from_root(1.0 if ok else 0.0))


# -- the run's settings -----------------------------------------------------------------------

# Flags that belong to one invocation; every other train flag is the run's configuration,
# saved in checkpoints and restored by --resume (so flags added later are covered too).
_PER_RUN = {"command", "handler", "resume", "save", "save_every", "plot", "quiet", "json", "backend", "threads",
            "log_every", "epochs", "distributed", "given", "config", "print_config", "debug"}
# What may differ between the processes of one MPI job (each picks its device and cores).
_RANK_LOCAL = {"handler", "given", "backend", "threads", "debug"}


def _run_config(args) -> dict:
    """The run's configuration as saved in checkpoints (JSON values; the data file's absolute path)."""
    config = {key: value for key, value in vars(args).items() if key not in _PER_RUN and _jsonable(value)}
    config["epochs_requested"] = args.epochs
    if config.get("data"):  # so that --resume and `xpnet evaluate` find it from any directory
        config["data"] = os.path.abspath(config["data"])
    return config


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _check_same_settings(comm, args) -> None:
    """Stop every process with a clear error unless all were given the same flags and data
    (one gather of the settings: a few hundred bytes per process)."""
    mine = {key: value for key, value in vars(args).items() if key not in _RANK_LOCAL and _jsonable(value)}
    if args.data:
        mine["data file size"] = os.path.getsize(args.data) if os.path.isfile(args.data) else None
    everyone = comm.allgather(mine)
    first = everyone[0]
    keys = sorted({key for other in everyone for key in set(other) | set(first) if other.get(key) != first.get(key)})
    if keys:
        ranks = [rank for rank, other in enumerate(everyone) if other != first]
        names = ", ".join(key if " " in key else "--" + key.replace("_", "-") for key in keys)
        raise XpnetValueError(f"the processes were started with different settings ({names} differ between rank 0 "
                              f"and rank {', '.join(map(str, ranks))}); start every process with the same flags "
                              "and data")


def _header_flag(parser) -> None:
    """--header / --no-header: whether a CSV's first row names its columns (shared with predict and evaluate)."""
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                        help="whether the first row of a .csv names its columns (default: detected; a first row of "
                             "numbers is data, and the columns are then named by index 0, 1, ...)")


def _resume(args):
    """Load the checkpoint and put its configuration into ``args``.

    A flag given on the command line (or in --config) that contradicts the saved value is an
    error, whatever its value: "given" is read from the command line, not by comparing with
    the defaults, so ``--learning-rate 0.5`` against a saved 0.1 is refused too.
    """
    from ..io import checkpoint

    ckpt = checkpoint.load(args.resume, backend=args.backend)
    given = getattr(args, "given", set())
    for key, saved in ckpt.config.items():
        if key in _PER_RUN or not hasattr(args, key):
            continue
        value = getattr(args, key)
        if key in given and not _same_setting(key, value, saved):
            flag = "--" + key.replace("_", "-")
            raise XpnetValueError(f"{flag} {value!r} differs from the {saved!r} saved in {args.resume!r}; "
                                  f"--resume continues the saved run with its settings, so drop {flag}")
        setattr(args, key, saved)
    if args.epochs is None:
        args.epochs = ckpt.config.get("epochs_requested", ckpt.epochs_done)
    return ckpt


def _same_setting(key: str, given, saved) -> bool:
    if key == "data" and given and saved:
        return os.path.abspath(given) == os.path.abspath(saved)
    if key == "task" and given == "auto":  # saved resolved: auto found it then
        return True
    return given == saved


# -- the model --------------------------------------------------------------------------------

def _task(args, prepared) -> str:
    """The task of the run: what the data preparation found (or was told with --task)."""
    task = getattr(prepared, "task", None) or "classification"
    if args.task != "auto" and args.task != task:
        raise XpnetValueError(f"--task {args.task}: the data of this run ({prepared.source}) is for {task}; "
                              f"regression needs numeric targets (a --data file), classification labels")
    return task


def _target_scaling(prepared):
    """``(mean, scale)`` arrays of the target standardization of a regression run, else None."""
    scaler = getattr(prepared, "target_scaler", None)
    if scaler is None:
        return None
    return np.atleast_1d(np.asarray(scaler.mean, dtype=np.float64)), \
        np.atleast_1d(np.asarray(scaler.scale, dtype=np.float64))


def _model(args, ckpt, prepared, task, comm) -> MLP:
    """The model to train: the checkpoint's with --resume, else a new one from the flags."""
    n_out = prepared.n_outputs
    if ckpt is not None:
        _check_resumable(args.resume, ckpt.model, prepared, n_out)
        return ckpt.model
    sizes = [prepared.X.shape[1], *args.hidden, n_out]
    _check_weights_fit(sizes, args.dtype)
    activation = args.activation.split(",") if "," in args.activation else args.activation
    return MLP(sizes, activation=activation, output="softmax" if task == "classification" else "identity",
               init=args.init, dtype=args.dtype, seed=args.seed, dropout=args.dropout, batch_norm=args.batch_norm,
               backend=args.backend if comm is None else comm.backend_name(args.backend))


def _check_weights_fit(sizes, dtype: str) -> None:
    """Refuse layer widths whose weights cannot fit, before they are drawn: the initial
    weights are drawn on the host in float64, then copied in the model's dtype."""
    from .. import memory

    params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    memory.require(params * (8 + (4 if dtype == "float32" else 8)), f"the weights of layers {sizes} (--hidden)")


def _check_resumable(path, model, prepared, n_out: int) -> None:
    if model.layer_sizes[0] != prepared.X.shape[1] or model.layer_sizes[-1] != n_out:
        raise XpnetValueError(f"the model in {path!r} has layer sizes {list(model.layer_sizes)}, which do not fit "
                              f"its data now ({prepared.X.shape[1]} features, {n_out} outputs); "
                              f"did the data file change?")


def _fit(comm, model, prepared, config: TrainConfig, **options):
    """:func:`xpnet.fit`; with --distributed, :func:`xpnet.distributed.fit` on this process's rows
    (``prepared.rows`` places them in the training order; the weights and the logged losses cover all rows)."""
    if comm is None:
        return fit(model, prepared.X, prepared.y, config, **options)
    return distributed.fit(model, prepared.X, prepared.y, comm=comm, global_rows=prepared.rows, config=config,
                           **options)


# -- scores -----------------------------------------------------------------------------------

def _accuracy(comm, model, X, y) -> float:
    """The fraction of every process's rows ``model`` classifies correctly (hits and count summed)."""
    if comm is None or comm.size == 1:
        return model.accuracy(X, y)
    hits = round(model.accuracy(X, y) * X.shape[0]) if X.shape[0] else 0
    total, n = comm.sum_floats([hits, X.shape[0]])
    return total / n


def _mean_loss(comm, model, X, y) -> float:
    """The mean data loss (no L2) over every process's rows ``X, y``: what early stopping watches."""
    n = X.shape[0]
    local = model.loss(X, y) * n if n else 0.0
    if comm is None:
        return local / n
    total, count = comm.sum_floats([local, n])
    return total / count


def _in_units(values, scaling):
    """Standardized targets or predictions (N,) or (N, K) back in the targets' own units (N, K)."""
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape(values.shape[0], -1)
    return values if scaling is None else values * scaling[1] + scaling[0]


def _regression_scores(comm, model, X, y, scaling) -> dict:
    """R^2, RMSE and MAE in the targets' units over every process's rows (sums in two gathers)."""
    true = _in_units(y, scaling)
    pred = _in_units(to_numpy(model.predict(X)), scaling) if X.shape[0] else np.zeros_like(true)
    if comm is None or comm.size == 1:
        return {"r2": metrics.r2(true, pred), "rmse": metrics.rmse(true, pred), "mae": metrics.mae(true, pred)}
    k = true.shape[1]
    n, *sums = comm.sum_floats([true.shape[0], *np.sum(true, axis=0)])
    mean = np.asarray(sums) / n
    parts = comm.sum_floats([*np.sum((true - pred) ** 2, axis=0), *np.sum((true - mean) ** 2, axis=0),
                             *np.sum(np.abs(true - pred), axis=0)])
    residual, total, absolute = (np.asarray(parts[i * k:(i + 1) * k]) for i in range(3))
    r2 = np.where(total != 0, 1 - residual / np.where(total != 0, total, 1), np.where(residual == 0, 1.0, 0.0))
    return {"r2": float(np.mean(r2)), "rmse": float(np.mean(np.sqrt(residual / n))),
            "mae": float(np.mean(absolute / n))}


def _measure(comm, model, X, y, task: str, scaling) -> dict:
    """Scores of ``model`` on rows ``X, y`` of every process: ``accuracy`` or ``r2``/``rmse``/``mae``,
    and ``loss`` (the mean data loss, no L2)."""
    scores = {"accuracy": _accuracy(comm, model, X, y)} if task == "classification" \
        else _regression_scores(comm, model, X, y, scaling)
    return {**scores, "loss": _mean_loss(comm, model, X, y)}


def _scores(comm, model, prepared, task: str, scaling) -> dict:
    """``{"training": {...}, "validation": {...}, "test": {...}}`` over all processes' rows; the
    held-out sets only when they have rows (validation: may steer training; test: only reported)."""
    scores = {"training": _measure(comm, model, prepared.X, prepared.y, task, scaling)}
    for name, X, y, n in (("validation", prepared.X_val, prepared.y_val, prepared.n_val),
                          ("test", prepared.X_test, prepared.y_test, prepared.n_test)):
        if n:
            scores[name] = {**_measure(comm, model, X, y, task, scaling), "samples": int(n)}
    return scores


# -- report -----------------------------------------------------------------------------------

def _report(args, run: _Run, result, scores, saved, rescue, plotted) -> None:
    """What rank 0 prints at the end: the results, then why training stopped early, if it did."""
    _print_training(args, run, result, scores, saved, plotted)
    epochs = run.done + result.epochs
    if result.interrupted:
        name = signal.Signals(_signal_number(result)).name
        by = "" if name == "SIGINT" else f" by {name}"
        kept = f"; saved epoch {epochs} to {saved} (continue with --resume {saved})" if saved else ""
        _progress(f"xpnet: interrupted{by} after epoch {epochs}{kept}")
    elif result.diverged:
        _progress(f"xpnet: error: {result.message}")
    if rescue:
        _progress(f"xpnet: error: {rescue}")
    if plotted is False:
        _progress(f"xpnet: error: could not draw {args.plot} (see above)")


def _print_training(args, run: _Run, result, scores, saved, plotted) -> None:
    """The results of `xpnet train` on stdout: a few aligned lines, or one JSON object."""
    model, prepared, task, done = run.model, run.prepared, run.task, run.done
    training = scores["training"]
    summary = {**result.to_dict(), "task": task, "dataset": args.data or args.dataset,
               "n_samples": int(prepared.n_samples), "layer_sizes": list(model.layer_sizes),
               "learning_rate": args.learning_rate, "l2": args.l2, "epochs_total": done + result.epochs}
    summary.update({key: value for key, value in training.items() if key != "loss"})
    for split in ("validation", "test"):
        summary.update({f"{split}_{key}": value for key, value in scores.get(split, {}).items()})
    comm = distributed.active() if args.distributed else None  # launched in main()
    if comm is not None:
        summary["processes"] = comm.size
    if saved:
        summary["saved"] = saved
    if args.plot and plotted:
        summary["plot"] = args.plot
    if args.json:
        say(json.dumps(summary))
        return
    output = model.spec.output
    say(f"backend   {model.backend.describe()}  ({model.backend.reason})")
    say(f"model     {list(model.layer_sizes)} {','.join(a.name for a in model.spec.hidden)} -> {output}, "
        f"{model.dtype_name} ({task})")
    say(f"epochs    {done + result.epochs}" + (f" ({result.epochs} in this run)" if done else "")
        + f"   time {result.seconds:.3f} s")
    say(f"loss      {result.final_loss:.6f} (training objective)")
    for name, values in scores.items():
        n = values.get("samples")
        where = f"{name}, {n} samples" if n else name
        if task == "classification":
            say(f"accuracy  {values['accuracy']:.4f} ({where})")
        else:
            say(f"r2        {values['r2']:.4f} ({where})")
            say(f"rmse      {values['rmse']:.6g} ({where}, in the target's units)")
        if n:
            say(f"loss      {values['loss']:.6f} ({name}, mean data loss)")
    if getattr(args, "early_stopping", False):
        why = "stopped early" if result.stopped_early else "stopped by a signal" if result.interrupted \
            else "ran all epochs"
        say(f"early     best epoch {result.best_epoch} (weights restored), {why}")
    if saved:
        say(f"saved     {saved}")
    if args.plot and plotted:
        say(f"plot      {args.plot}")


# -- files --------------------------------------------------------------------------------------

def _merged(history, progress, done, epochs_done) -> dict:
    """The saved run's logged (epoch, loss) points followed by this run's, without repeats."""
    merged = {"epochs": list(history.get("epochs", [])), "losses": list(history.get("losses", []))}
    for epoch, loss in zip(progress.epochs, progress.losses):
        if done + epoch <= epochs_done and not (merged["epochs"] and done + epoch <= merged["epochs"][-1]):
            merged["epochs"].append(done + epoch)
            merged["losses"].append(loss)
    return merged


class _Saver:
    """Writes the run's checkpoint: every --save-every epochs from the progress callback, and at the end."""

    def __init__(self, path, model, config, history, prepared, done):
        self.path, self.model, self.config, self.history, self.prepared, self.done = \
            path, model, config, history, prepared, done
        self.failed = False  # a periodic save failed: no more of them

    def save(self, progress, epochs_done: int, state) -> None:
        from ..io import checkpoint

        prepared = self.prepared
        config = dict(self.config, target=prepared.target or self.config.get("target"))
        checkpoint.save(self.path, self.model, config=config, history=_merged(self.history, progress, self.done,
                                                                                epochs_done),
                        epochs_done=epochs_done, optimizer_state=state, labels=prepared.labels,
                        scaler=prepared.scaler, feature_names=prepared.feature_names)

    def periodic(self, progress, epochs_done: int, state) -> None:
        """A --save-every checkpoint. A failure is a warning, and the last periodic save of the
        run (each failure may leave a rescue file): the final save is what must succeed."""
        if self.failed:
            return
        try:
            self.save(progress, epochs_done, state)
        except (OSError, XpnetError) as exc:
            self.failed = True
            _progress(f"xpnet: warning: epoch {epochs_done}: {_one_line(exc)}; training goes on without periodic "
                      "saves (the final save tries again)")

    def final(self, progress, epochs_done: int, state) -> str | None:
        """The checkpoint at the end; None when written, else what went wrong (and where the
        checkpoint module rescued the weights, when it could)."""
        try:
            self.save(progress, epochs_done, state)
        except (OSError, XpnetError) as exc:
            from ..io.checkpoint import SaveError

            if isinstance(exc, SaveError):  # it names the destination, the cause and the rescue file
                return _one_line(exc)
            return f"could not save the checkpoint to {self.path!r}: {_one_line(exc)}"
        return None


def _one_line(exc: BaseException) -> str:
    """An error as one line; a plain OSError by its reason ("No space left on device")."""
    if isinstance(exc, OSError) and not isinstance(exc, XpnetError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())


PLOT_POINTS = 10_000  # with --distributed, --plot draws every k-th training row, at most this many


def _plot(args, run: _Run, progress) -> bool:
    """Draw the run (rank 0, from a sample of every process's rows); True when drawn, False
    when it failed (on every rank: rank 0's outcome is broadcast)."""
    from .. import plot

    comm, model, prepared, task, scaling = run.comm, run.model, run.prepared, run.task, run.scaling
    points = (prepared.X, prepared.y) if comm is None else comm.sample(prepared.X, prepared.y, PLOT_POINTS)
    confusion = None
    if task == "classification" and prepared.X.shape[1] != 2:
        name, X, y = ("test", prepared.X_test, prepared.y_test) if prepared.n_test else \
            ("validation", prepared.X_val, prepared.y_val) if prepared.n_val else ("training", prepared.X, prepared.y)
        confusion = (_confusion(comm, model, X, y, prepared.n_classes), f"confusion matrix ({name} rows)")
    ok = True
    if points is not None:
        try:
            fig = plot.training_figure(_curves(run.history, progress, task),
                                       **_first_panel(model, points, task, scaling, prepared, confusion))
            plot.save(fig, args.plot)
        except (OSError, ValueError, XpnetError) as exc:
            _progress(f"xpnet: error: could not draw {args.plot}: {' '.join(str(exc).split())}")
            ok = False
    return _agree(comm, ok)


def _first_panel(model, points, task, scaling, prepared, confusion) -> dict:
    X, y = points
    if task == "regression":
        true, pred = _in_units(y, scaling), _in_units(to_numpy(model.predict(X)), scaling)
        return {"regression": (true, pred), "target_names": [prepared.target] if prepared.target else None}
    names = prepared.labels.classes if prepared.labels is not None else None
    from ..plot import model_predictor

    return {"predict": model_predictor(model), "X": X, "y": y, "class_names": names,
            "feature_names": prepared.feature_names, "confusion": confusion}


def _confusion(comm, model, X, y, n_classes: int) -> np.ndarray:
    """The confusion matrix of every process's rows (summed in one small reduction)."""
    local = metrics.confusion_matrix(y, to_numpy(model.predict(X)), n_classes) if X.shape[0] else \
        np.zeros((n_classes, n_classes), dtype=np.int64)
    if comm is None:
        return local
    return np.rint(comm.sum_floats(local.ravel())).astype(np.int64).reshape(n_classes, n_classes)


def _curves(history, progress, task: str) -> dict:
    """The panels of training curves: the loss (all logged epochs, the saved run's too) and
    the validation loss and the accuracy or R^2 where this run measured them."""
    merged = _merged(history, progress, progress.done, progress.done + (progress.epochs[-1] if progress.epochs else 0))
    curves = {"loss": {"training": (merged["epochs"], merged["losses"])}}
    metric = "accuracy" if task == "classification" else "r2"
    points = progress.points
    epochs = [epoch for epoch, _ in points]
    if any("val_loss" in stats for _, stats in points):
        curves["loss"]["validation"] = (epochs, [stats["val_loss"] for _, stats in points])
    panel = {"training": (epochs, [stats[metric] for _, stats in points])}
    if any("val_" + metric in stats for _, stats in points):
        panel["validation"] = (epochs, [stats["val_" + metric] for _, stats in points])
    curves["accuracy" if metric == "accuracy" else "R^2"] = panel
    return curves


# -- progress -----------------------------------------------------------------------------------

_SHORT = {"accuracy": "acc", "val_accuracy": "val_acc"}  # names in the progress lines

class _Progress:
    """The training callback: a live tqdm bar when stderr is a terminal, periodic lines otherwise.

    Records the logged epochs and losses of this run (for checkpoints and plots), the scores
    it measured (for --plot), and writes the --save-every checkpoints. With --distributed
    every process computes the scores (they sum over all processes' rows) unless --quiet;
    rank 0 alone shows them and writes files.
    """

    def __init__(self, args, model, prepared, done, comm=None, task="classification", scaling=None,
                 saver=None) -> None:
        self.model, self.prepared, self.done, self.total, self.comm = model, prepared, done, args.epochs, comm
        self.task, self.scaling, self.saver, self.save_every = task, scaling, saver, args.save_every
        self.measure = not args.quiet or bool(args.plot)
        self.show = not args.quiet and (comm is None or comm.is_root)
        self.epochs: list[int] = []  # every logged point of this run (epochs counted from its start)
        self.losses: list[float] = []  # and its training objective
        self.points: list = []  # (epoch since the run began, {score: value}) where scores were measured
        self.bar = None
        if self.show and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=done, file=sys.stderr, unit="epoch", dynamic_ncols=True,
                            desc="training")
        # a live bar wants frequent updates; plain lines about 20 per run; every process logs where rank 0 does
        every = args.log_every or max(1, (self.total - done) // (200 if self.bar else 20))
        self.show_every = every if comm is None else int(comm.from_root(every))
        # fit logs where lines are shown and where checkpoints are due
        self.fit_every = math.gcd(self.show_every, self.save_every) if self.save_every else self.show_every
        self.start = time.perf_counter()

    def __call__(self, event) -> None:
        self.epochs.append(event.epoch)
        self.losses.append(event.loss)
        if self.saver is not None and self.save_every and event.epoch and event.epoch % self.save_every == 0 \
                and event.epoch < event.epochs:
            self.saver.periodic(self, self.done + event.epoch, event.state)
        # a point off fit's grid is where training stopped (a signal, early stopping)
        shown = event.epoch % self.show_every == 0 or event.epoch % self.fit_every or event.epoch == event.epochs
        if not (self.measure and shown):
            return
        stats = self._stats(event)
        self.points.append((self.done + event.epoch, stats))
        if not self.show:
            return
        text = {"loss": f"{event.loss:.5f}"}
        text.update({_SHORT.get(key, key): f"{value:.5f}" if "loss" in key else f"{value:.4f}"
                     for key, value in stats.items()})
        epoch = self.done + event.epoch
        if self.bar is not None:
            self.bar.update(epoch - self.bar.n)
            self.bar.set_postfix(text, refresh=False)
            return
        elapsed = time.perf_counter() - self.start
        left = f"{elapsed / event.epoch * (event.epochs - event.epoch):.1f}s" if event.epoch else "?"
        _progress(f"epoch {epoch:>{len(str(self.total))}}/{self.total}  "
                  + "  ".join(f"{k} {v}" for k, v in text.items()) + f"  elapsed {elapsed:.1f}s  left {left}")

    def _stats(self, event) -> dict:
        """The scores of this logging point: accuracy (or R^2), and the held-out loss and accuracy (or R^2)."""
        prepared, comm, model = self.prepared, self.comm, self.model
        if self.task == "classification":
            stats = {"accuracy": _accuracy(comm, model, prepared.X, prepared.y)}
        else:
            stats = {"r2": _regression_scores(comm, model, prepared.X, prepared.y, self.scaling)["r2"]}
        if prepared.n_val:
            held = _measure(comm, model, prepared.X_val, prepared.y_val, self.task, self.scaling)
            metric = "accuracy" if self.task == "classification" else "r2"
            stats.update({"val_loss": held["loss"], "val_" + metric: held[metric]})
        return stats

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
