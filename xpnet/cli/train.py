"""`xpnet train`: training a model from its flags, from the settings to the exit status.

A run: resolve the flags (a --config file, then the command line; --resume's saved settings,
:mod:`~xpnet.cli.settings`), check the output files, prepare the data
(:mod:`~xpnet.cli.prepare`), build or restore the model, fit it with a progress callback
(:mod:`~xpnet.cli.progress`, which also writes --save-every checkpoints,
:mod:`~xpnet.cli.saving`), then on rank 0 save, draw (:mod:`~xpnet.cli.plots`) and report
(:mod:`~xpnet.cli.report`). The flags are :mod:`~xpnet.cli.train_flags`'. With --distributed
every rank runs this same code; only rank 0 writes files, and whether it succeeded is
broadcast so that every rank exits with the same status (:mod:`~xpnet.cli.processes`).
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import distributed
from ..errors import XpnetValueError, XpnetWarning
from ..mlp import MLP
from ..training.config import TrainConfig
from ..training.loop import fit
from . import train_flags
from .args import _progress, check_destination
from .options import train_config as config_of_flags
from .plots import draw
from .processes import agree, check_same_settings
from .progress import Progress
from .report import diagnosis, report, signal_number
from .saving import Saver
from .scores import scores
from .settings import resume, run_config
from .train_flags import DEFAULT_EPOCHS, REGRESSION_RATE

if TYPE_CHECKING:
    from .prepare import Prepared


def add_parser(commands) -> None:
    """Add the `train` subcommand to ``commands`` (the parser's subparsers)."""
    train_flags.add_parser(commands, cmd_train)


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
    blas: dict = dataclasses.field(default_factory=dict)  # NumPy's BLAS when it runs the products (_blas)

    @property
    def root(self) -> bool:
        return self.comm is None or self.comm.is_root  # only rank 0 prints and writes files


def cmd_train(args) -> int:
    comm = distributed.active() if args.distributed else None  # launched in main()
    ckpt, config, train_config = _settings(args, comm)
    run = _start(args, comm, ckpt, config)
    fraction = run.prepared.validation_fraction
    # what this invocation trains; the record keeps the total requested and the held-out fraction used
    train_config = dataclasses.replace(train_config, learning_rate=args.learning_rate,
                                       early_stopping=args.early_stopping,
                                       **({"validation_fraction": fraction} if 0 < fraction < 1 else {}))
    record = dataclasses.replace(train_config, epochs=args.epochs, log_every=args.log_every)
    saver = Saver(args.save, run.model, config, record, run.history, run.prepared, run.done) \
        if args.save and run.root else None
    progress = Progress(args, run.model, run.prepared, run.done, comm, run.task, run.scaling, saver)
    train_config = dataclasses.replace(train_config, epochs=args.epochs - run.done, log_every=progress.fit_every)
    _compile_ahead(args, run, train_config)
    progress.start = time.perf_counter()  # the clock starts with training, after any compiling
    result = _fit(comm, run.model, run.prepared, train_config, callback=progress, initial_epoch=run.done,
                  optimizer_state=ckpt.optimizer_state if ckpt else None,
                  validation_data=(run.prepared.X_val, run.prepared.y_val) if args.early_stopping else None)
    progress.close()
    return _finish(args, run, result, saver, progress, train_config)


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
    ``(checkpoint or None, the run's command-line settings, its TrainConfig)``."""
    ckpt, saved = resume(args) if args.resume else (None, None)  # first: it restores the saved run's flags
    train_flags.effective(args)
    # --validation-fraction is the command line's hold-out of the data (resolved once the data is
    # read), not TrainConfig's fraction for early stopping without validation data
    train_config = saved if saved is not None else \
        config_of_flags(args, epochs=1, validation_fraction=TrainConfig().validation_fraction,
                        early_stopping=bool(args.early_stopping))  # (None: decided once the data is read)
    _check_flags(args)
    args.epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    saving_back = bool(args.resume and not args.save)
    if saving_back:
        args.save = args.resume
    config = run_config(args)
    if comm is not None:
        check_same_settings(comm, args)
    if comm is None or comm.is_root:
        _check_outputs(args)
        if saving_back and not args.quiet:
            _progress(f"xpnet: no --save given: the run will be saved back to {args.save} (atomically)")
    return ckpt, config, train_config


def _start(args, comm, ckpt, config) -> _Run:
    """Prepare the data (this process's rows) and build or restore the model."""
    from .prepare import prepare

    prepared = prepare(config, comm, stream=True)  # a mapped file stays mapped: training reads it a chunk at a time
    task = _task(args, prepared)
    config["task"] = task
    config["validation_fraction"] = prepared.validation_fraction  # as used: a data file's default resolved
    if args.early_stopping is None:  # the default: a data file's validation rows stop training when it overfits
        args.early_stopping = bool(args.data) and prepared.n_val > 0
    elif args.early_stopping and not prepared.n_val:
        raise XpnetValueError(f"--early-stopping watches validation rows, and {prepared.source} has none held out "
                              f"({prepared.n_samples} rows); give --validation-fraction, or drop --early-stopping")
    config["early_stopping"] = args.early_stopping
    if task == "regression" and ckpt is None and "learning_rate" not in getattr(args, "given", ()):
        args.learning_rate = REGRESSION_RATE
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
                  f"{f', {prepared.n_test} for testing' if prepared.n_test else ''}"
                  f"{'; features standardized' if prepared.scaler is not None else ''}); "
                  f"backend: {model.backend.reason}" + (f"; resuming at epoch {done}" if done else ""))
    for note in prepared.notes if run.root and not args.quiet else ():  # e.g. a large CSV held in memory
        _progress(f"xpnet: {note}")
    run.blas = _blas(model)
    if run.root and run.blas.get("warning"):  # an environment variable forces narrower BLAS kernels than the CPU has
        warnings.warn(run.blas["warning"], XpnetWarning, stacklevel=2)
    if not args.quiet and run.root and args.task == "auto" and "--task classification" in prepared.task_reason:
        _progress(f"xpnet: note: {prepared.task_reason}")  # whole numbers read as a regression: say why
    return run


def _finish(args, run: _Run, result, saver, progress, config: TrainConfig) -> int:
    """Save (rank 0), draw, score and report; the exit status, the same on every rank."""
    comm = run.comm
    save_ok, rescue = True, None
    if args.save:  # rank 0 writes; every rank learns whether it worked
        rescue = saver.final(progress, run.done + result.epochs, result.optimizer_state) if saver else None
        save_ok = agree(comm, rescue is None)
    saved = args.save if args.save and save_ok else None
    plotted = draw(args, run, progress, result) if args.plot else None
    measured = scores(comm, run.model, run.prepared, run.task, run.scaling)  # collectives with --distributed
    warning = diagnosis(args, run, result, measured["training"])  # collectives too
    if run.root:
        report(args, run, result, measured, saved, rescue, plotted, _notes(run, result, config), warning)
    if comm is not None:  # python -m mpi4py aborts the job at a non-zero exit: not before rank 0 is done
        sys.stdout.flush()
        sys.stderr.flush()
        comm.barrier()
    return _exit_code(result, not save_ok, plotted is False)


def _blas(model: MLP) -> dict:
    """NumPy's BLAS as :func:`xpnet.engine.blas.numpy_blas` reports it (the JSON ``blas``), when
    NumPy's products run the model; else (another backend, or no BLAS found) empty."""
    from ..engine import blas
    from ..engine.numpy_ops import get_ops

    info = blas.numpy_blas() if get_ops(model.backend).name == "numpy" else None
    return info.as_dict() if info is not None else {}


def _notes(run: _Run, result, config: TrainConfig) -> dict:
    """What the summary adds about the machinery: ``blas`` (which BLAS kernels ran NumPy's
    products, see :func:`_blas`), and ``kernels_reason`` when ``auto`` ran NumPy's kernels
    because numba's compiled ones are not installed (never a silent substitute)."""
    from ..engine.kernels import numba_support
    from ..engine.numpy_ops import get_ops
    from ..engine.plan import JIT_HINT

    notes: dict = {"blas": run.blas} if run.blas else {}
    choice = config.kernels or run.model.kernels
    # (numba_support.available() is cached: the plan asked it already for any pass but the tiny "plain")
    if choice == "auto" and result.kernels not in ("plain", "") and get_ops(run.model.backend).name == "numpy" \
            and not numba_support.available():
        notes["kernels_reason"] = (f"{result.kernels}: auto ran NumPy's kernels, as numba's compiled ones are not "
                                   f"installed; {JIT_HINT}")
    return notes


def _check_flags(args) -> None:
    if args.classes is not None and (args.data or args.dataset not in ("spirals", "blobs")):
        raise XpnetValueError(f"--classes applies to --dataset spirals or blobs, not {args.data or args.dataset}; "
                              "drop it")
    if args.save_every is not None and not (args.save or args.resume):
        raise XpnetValueError("--save-every needs --save FILE (or --resume FILE) to know where to write")
    if args.early_stopping and args.validation_fraction == 0:
        raise XpnetValueError("--early-stopping watches validation rows, which --validation-fraction 0 leaves out; "
                              "give a fraction such as 0.1, or drop --early-stopping")
    if args.kernels == "jit":
        from ..engine.kernels import numba_support
        from ..engine.plan import JIT_HINT

        reason = numba_support.unavailable_reason()
        if reason:
            raise XpnetValueError(f"--kernels jit asks for numba's compiled kernels, which cannot run here: {reason}; "
                                  f"{JIT_HINT}, or use --kernels auto, which falls back to NumPy's")


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
        return 128 + signal_number(result)
    return 1 if result.diverged or save_failed or plot_failed else 0


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
