"""Command line front end: turns flags into library calls and prints the results.

    xpnet train                                  # moons, 2 -> 32 tanh -> 2 softmax, auto backend
    xpnet train --backend numpy --hidden 64,64 --epochs 500 --json
    xpnet tutorial list
    xpnet tutorial wildml-moons --hidden 5 --json
    xpnet bench --backend numpy --dtype float32,float64 --hidden 64,256 --compare torch

Progress goes to stderr, results to stdout; with ``--json`` stdout is exactly one line
holding one JSON object. Errors are one line on stderr starting ``xpnet: error:`` and exit
with status 2 (a diverged run exits with 1, an interrupted one with 130).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from . import __version__, datasets, distributed, optim, tutorials
from .backend import ENV_VAR, limit_threads
from .errors import XpnetError, XpnetValueError
from .mlp import MLP


class UsageError(Exception):
    """A command-line usage problem (reported like argparse's, as one line)."""


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one ``xpnet: error:`` line instead of usage + message."""

    def error(self, message):
        raise UsageError(message)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 64,64, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be whole numbers >= 1, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _float(minimum: float, inclusive: bool, below: float | None = None):
    """An argparse type: a finite float above ``minimum`` (or equal to it when ``inclusive``),
    and under ``below`` when given."""
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    bound += "" if below is None else f" and < {below:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive) \
                or (below is not None and value >= below):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
        return value

    return parse


_positive_float, _non_negative_float, _fraction = _float(0.0, False), _float(0.0, True), _float(0.0, True, 1.0)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, metavar="NAME",
                        help=f"array backend: numpy, cupy, auto, torch, array_api_strict, or any importable "
                             f"array-API module; a device may follow a colon (array_api_strict:no_float64). "
                             f"Default: ${ENV_VAR}, else auto (CuPy when a CUDA GPU works, else NumPy)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="bound the CPU threads of xpnet and its BLAS to N (default: all cores); "
                             "results do not depend on it")
    parser.add_argument("--json", action="store_true",
                        help="print exactly one line on stdout: a JSON object with full-precision floats")


def build_parser() -> Parser:
    parser = Parser(prog="xpnet", description="Neural networks from the classic NumPy tutorials, on any array backend.")
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    train = commands.add_parser("train", help="train an MLP classifier on a built-in dataset or your own data file",
                                description="Train an MLP classifier by gradient descent (full batch, or "
                                            "minibatches with --batch-size) on a built-in dataset or your own "
                                            "--data file and report loss and accuracy (training, and held-out "
                                            "with --validation-fraction).")
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
                       help="hidden activation: tanh, sigmoid or relu; one, or one per layer comma separated (default: tanh)")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="passes over the data; full-batch updates without --batch-size (default: 2000; with "
                            "--resume: the total of the saved run, counting the epochs already done)")
    train.add_argument("--learning-rate", type=_positive_float, default=0.5, metavar="RATE",
                       help="gradient step size, Trask's alpha / WildML's epsilon (default: 0.5)")
    train.add_argument("--l2", type=_non_negative_float, default=0.0,
                       help="L2 strength on the weights, WildML's reg_lambda (default: 0)")
    train.add_argument("--reduction", choices=("mean", "sum"), default="mean",
                       help="average the gradient over samples, or sum it as the tutorials do (default: mean)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="floating point precision (default: float32)")
    train.add_argument("--init", default="auto",
                       help="weight init: auto, xavier, he, wildml, trask, cavar (default: auto)")
    train.add_argument("--seed", type=int, default=0, help="seed for data and weights (default: 0)")
    train.add_argument("--log-every", type=_positive_int, default=None, metavar="N",
                       help="log loss and accuracy every N epochs (default: about 20 points)")
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
                            f"(--plot draws at most {PLOT_POINTS:,} of the training rows). Each process uses its "
                            "share of the cores unless --threads is given. Without mpiexec it runs as one process. "
                            "Needs `pip install 'xpnet[mpi]'` and an MPI (e.g. `pip install mpich`)")
    train.set_defaults(handler=cmd_train)

    tutorial = commands.add_parser("tutorial", help="run one of the tutorials exactly, through the library",
                                   description="Run a tutorial program through xpnet (float64, the tutorial's own "
                                               "seed) and print what the tutorial prints. `xpnet tutorial list` "
                                               "names them.")
    _common(tutorial)
    tutorial.add_argument("name", metavar="NAME", help="a tutorial name, or `list`")
    tutorial.add_argument("--hidden", type=_positive_int, default=None,
                          help="hidden layer size (trask-alpha: 4, the text also shows 32; wildml-moons: 3)")
    tutorial.add_argument("--iterations", type=_positive_int, default=None,
                          help="passes to run instead of the tutorial's own count")
    tutorial.add_argument("--plot", default=None, metavar="FILE",
                          help="draw the tutorial's picture to FILE (.png, .svg or .pdf; needs matplotlib): "
                               "wildml-moons, wildml-hidden-sweep, trask-alpha")
    tutorial.add_argument("--activation", default=None, metavar="NAME",
                          help="hidden activation where the tutorial allows it (wildml-activations: relu or "
                               "sigmoid, default relu)")
    tutorial.set_defaults(handler=cmd_tutorial)
    _model_commands(commands)
    _add_bench(commands)
    return parser


def _training_options(train: argparse.ArgumentParser) -> None:
    """Flags for minibatches, momentum, schedules, clipping, dropout, batch norm, early stopping."""
    group = train.add_argument_group("optimization (see xpnet.optim; defaults: plain full-batch descent)")
    group.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                       help="samples per update, reshuffled every epoch from --seed (default: all, full batch)")
    group.add_argument("--momentum", type=_fraction, default=0.0, metavar="MU",
                       help="momentum in [0, 1): v = MU*v + g, step -RATE*v (default: 0, off)")
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum (needs --momentum > 0)")
    group.add_argument("--schedule", default="constant", choices=optim.SCHEDULES,
                       help="learning-rate schedule over epochs t: constant; annealing RATE/(1+DECAY*t); "
                            "step RATE*GAMMA**floor(t/STEP); cosine from RATE down to 0 (default: constant)")
    group.add_argument("--lr-decay", type=float, default=optim.Schedule.decay, metavar="DECAY",
                       help=f"annealing: DECAY in RATE/(1+DECAY*t) (default: {optim.Schedule.decay})")
    group.add_argument("--lr-step", type=_positive_int, default=optim.Schedule.step, metavar="STEP",
                       help=f"step: epochs between drops (default: {optim.Schedule.step})")
    group.add_argument("--lr-gamma", type=float, default=optim.Schedule.gamma, metavar="GAMMA",
                       help=f"step: factor at each drop (default: {optim.Schedule.gamma})")
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


def _fit_options(args) -> dict:
    """The keyword arguments of xpnet.fit for the training flags (checked, so errors come before any work)."""
    optim.check_options(momentum=args.momentum, nesterov=args.nesterov, clip_value=args.clip_value,
                        clip_norm=args.clip_norm)
    return dict(batch_size=args.batch_size, momentum=args.momentum, nesterov=args.nesterov,
                schedule=optim.Schedule(args.schedule, decay=args.lr_decay, step=args.lr_step, gamma=args.lr_gamma),
                clip_value=args.clip_value, clip_norm=args.clip_norm, early_stopping=args.early_stopping,
                patience=args.patience)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    from . import data

    ckpt = _resume(args) if args.resume else None  # first: it restores the saved run's flags
    fit_options = _fit_options(args)
    if args.classes is not None and (args.data or args.dataset not in ("spirals", "blobs")):
        raise XpnetValueError(f"--classes applies to --dataset spirals or blobs, not {args.data or args.dataset}; "
                              "drop it")
    args.epochs = 2000 if args.epochs is None else args.epochs
    if args.plot:
        from . import plot

        plot.check_path(args.plot)
    if args.early_stopping and args.validation_fraction is None and not (args.dataset == "digits" and not args.data):
        args.validation_fraction = 0.1  # early stopping needs a held-out set
    config = {key: value for key, value in vars(args).items() if key not in _PER_RUN and _jsonable(value)}
    config["epochs_requested"] = args.epochs
    if config.get("data"):  # so that --resume and `xpnet evaluate` find it from any directory
        config["data"] = os.path.abspath(config["data"])
    comm = distributed.active() if args.distributed else None  # launched in main()
    root = comm is None or comm.is_root  # only rank 0 prints and writes files
    prepared = data.prepare(config, comm)  # with --distributed: this process's rows only
    model = _model(args, ckpt, prepared, comm)
    done = ckpt.epochs_done if ckpt else 0
    history = dict(ckpt.history) if ckpt else {"epochs": [], "losses": []}
    if args.epochs <= done:
        raise XpnetValueError(f"--epochs {args.epochs} is not more than the {done} epochs {args.resume!r} already "
                              f"ran; --epochs counts the total, so ask for more than {done}")
    if args.early_stopping:
        fit_options["validation_data"] = (prepared.X_held, prepared.y_held)
    if ckpt and ckpt.optimizer_state:
        fit_options["optimizer_state"] = ckpt.optimizer_state
    if not args.json and not args.quiet and root:
        _progress(f"xpnet: training {model} on {prepared.source} ({prepared.n_samples} samples"
                  f"{f', {prepared.n_held} held out' if prepared.n_held else ''}); "
                  f"backend: {model.backend.reason}" + (f"; resuming at epoch {done}" if done else ""))
    progress = _Progress(args, model, prepared, done, comm)
    result = _fit(comm, model, prepared, epochs=args.epochs - done, initial_epoch=done,
                  learning_rate=args.learning_rate, l2=args.l2, reduction=args.reduction,
                  log_every=args.log_every or progress.log_every, callback=progress, **fit_options)
    progress.close()
    history = _merged(history, progress, done, done + result.epochs)
    if args.save and root:
        _save(args.save, model, config, history, done + result.epochs, prepared, result.optimizer_state)
    if args.plot and not result.interrupted:
        _plot(args.plot, comm, model, prepared, history)
    scores = _scores(comm, model, prepared)  # on every process: with --distributed they are collectives
    code = 130 if result.interrupted else 1 if result.diverged else 0
    if root:
        _report(args, model, prepared, result, done, scores)
    if comm is not None:  # python -m mpi4py aborts the job at a non-zero exit: not before rank 0 is done
        sys.stdout.flush()
        sys.stderr.flush()
        comm.barrier()
    return code


def _model(args, ckpt, prepared, comm) -> MLP:
    """The model to train: the checkpoint's with --resume, else a new one from the flags."""
    if ckpt is not None:
        _check_resumable(args.resume, ckpt.model, prepared)
        return ckpt.model
    activation = args.activation.split(",") if "," in args.activation else args.activation
    return MLP([prepared.X.shape[1], *args.hidden, prepared.n_classes], activation=activation, output="softmax",
               init=args.init, dtype=args.dtype, seed=args.seed, dropout=args.dropout, batch_norm=args.batch_norm,
               backend=args.backend if comm is None else comm.backend_name(args.backend))


def _fit(comm, model, prepared, **options):
    """``model.fit``; with --distributed, :func:`xpnet.distributed.fit` on this process's rows
    (``prepared.rows`` places them in the training order; the weights and the logged losses cover all rows)."""
    if comm is None:
        return model.fit(prepared.X, prepared.y, **options)
    return distributed.fit(model, prepared.X, prepared.y, comm=comm, global_rows=prepared.rows, **options)


PLOT_POINTS = 10_000  # with --distributed, --plot draws every k-th training row, at most this many


def _plot(path, comm, model, prepared, history) -> None:
    """Rank 0 draws the picture; with --distributed from a sample of every process's rows."""
    from . import plot

    points = (prepared.X, prepared.y) if comm is None else comm.sample(prepared.X, prepared.y, PLOT_POINTS)
    if points is not None:
        plot.training_figure(path, model, *points, history["epochs"], history["losses"])


def _accuracy(comm, model, X, y) -> float:
    return model.accuracy(X, y) if comm is None else comm.accuracy(model, X, y)


def _scores(comm, model, prepared) -> tuple:
    """Training accuracy and held-out accuracy (None when nothing is held out), over all processes' rows."""
    held = _accuracy(comm, model, prepared.X_held, prepared.y_held) if prepared.n_held else None
    return _accuracy(comm, model, prepared.X, prepared.y), held


def _report(args, model, prepared, result, done, scores) -> None:
    """What rank 0 prints at the end: the results, then why training stopped early, if it did."""
    _print_training(args, model, prepared, result, done, scores)
    if result.interrupted:
        saved = f"; saved epoch {done + result.epochs} to {args.save} (continue with --resume {args.save})" \
            if args.save else ""
        print(f"xpnet: interrupted after epoch {done + result.epochs}{saved}", file=sys.stderr)
    elif result.diverged:
        print(f"xpnet: error: {result.message}", file=sys.stderr)


def _print_training(args, model, prepared, result, done, scores) -> None:
    """The results of `xpnet train` on stdout: a few aligned lines, or one JSON object."""
    (accuracy, held_accuracy), held = scores, prepared.n_held
    split = "test" if args.dataset == "digits" and not args.data else "validation"
    summary = {**result.to_dict(), "accuracy": accuracy, "dataset": args.data or args.dataset,
               "n_samples": int(prepared.n_samples), "layer_sizes": list(model.layer_sizes),
               "learning_rate": args.learning_rate, "l2": args.l2, "epochs_total": done + result.epochs}
    if held:
        summary.update({f"{split}_accuracy": held_accuracy, f"{split}_samples": held})
    if args.distributed:
        summary["processes"] = distributed.active().size
    if args.json:
        print(json.dumps(summary))
        return
    print(f"backend   {model.backend.describe()}  ({model.backend.reason})")
    print(f"model     {list(model.layer_sizes)} {','.join(a.name for a in model.spec.hidden)} -> softmax, "
          f"{model.dtype_name}")
    print(f"epochs    {done + result.epochs}" + (f" ({result.epochs} in this run)" if done else "")
          + f"   time {result.seconds:.3f} s")
    print(f"loss      {result.final_loss:.6f}")
    print(f"accuracy  {accuracy:.4f} (training)")
    if held:
        print(f"accuracy  {held_accuracy:.4f} ({split}, {held} samples)")
    if getattr(args, "early_stopping", False):
        print(f"early     best epoch {result.best_epoch} (weights restored), "
              f"{'stopped early' if result.stopped_early else 'ran all epochs'}")
    if args.save:
        print(f"saved     {args.save}")
    if args.plot:
        print(f"plot      {args.plot}")


# Flags that belong to one invocation; every other train flag is the run's configuration,
# saved in checkpoints and restored by --resume (so flags added later are covered too).
_PER_RUN = {"command", "handler", "resume", "save", "plot", "quiet", "json", "backend", "threads", "log_every",
            "epochs", "distributed"}


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _user_flags(train) -> None:
    """The train flags of the users' side: own data, checkpoints, pictures, quiet."""
    train.add_argument("--data", default=None, metavar="FILE",
                       help="train on your own data instead of --dataset: a .csv with a header row (labels in the "
                            "--target column, words or whole numbers), or .npy / .npz (arrays X and y). With "
                            "--distributed each process reads only its block of rows (.npy and np.savez members by "
                            "offset, np.savez_compressed members as a stream, a CSV in two streaming passes: count, "
                            "then parse its rows); the labels, --validation-fraction split and --standardize "
                            "statistics are agreed over the processes and equal one process's")
    train.add_argument("--target", default=None, metavar="COLUMN",
                       help="the label column of --data: a CSV header name or a column index (default: the last column)")
    train.add_argument("--standardize", action="store_true",
                       help="rescale every feature to mean 0, standard deviation 1 (fitted on the training part; "
                            "saved with --save and applied by predict/evaluate)")
    train.add_argument("--validation-fraction", type=float, default=None, metavar="F",
                       help="hold out this fraction of the rows (shuffled with --seed) and report accuracy on it; "
                            "with --early-stopping its loss decides when to stop (default: 0; 0.25 for --dataset "
                            "digits; 0.1 with --early-stopping)")
    train.add_argument("--save", default=None, metavar="FILE",
                       help="write the trained model to FILE (.npz + JSON metadata, written atomically); "
                            "on Ctrl-C the last logged epoch is saved")
    train.add_argument("--resume", default=None, metavar="FILE",
                       help="continue the run saved in FILE up to --epochs in total, with its data and settings; "
                            "gives the same weights as an uninterrupted run")
    train.add_argument("--plot", default=None, metavar="FILE",
                       help="draw the decision boundary (2-D data) and the loss curve to FILE (.png, .svg or .pdf; "
                            "needs matplotlib: pip install 'xpnet[plot]')")
    train.add_argument("--quiet", action="store_true",
                       help="no progress output (neither the live bar on a terminal nor the periodic lines)")


def _resume(args):
    """Load the checkpoint and put its configuration into ``args`` (refusing conflicting flags)."""
    from . import checkpoint

    if args.resume is None:
        return None
    ckpt = checkpoint.load(args.resume, backend=args.backend)
    defaults = vars(build_parser().parse_args(["train"]))
    for key, saved in ckpt.config.items():
        given = getattr(args, key, None)
        if key in _PER_RUN or key not in defaults:
            continue
        if given != defaults[key] and given != saved:
            flag = "--" + key.replace("_", "-")
            raise XpnetValueError(f"{flag} {given!r} differs from the {saved!r} saved in {args.resume!r}; "
                                  f"--resume continues the saved run with its settings, so drop {flag}")
        setattr(args, key, saved)
    if args.epochs is None:
        args.epochs = ckpt.config.get("epochs_requested", ckpt.epochs_done)
    return ckpt


def _check_resumable(path, model, prepared) -> None:
    if model.layer_sizes[0] != prepared.X.shape[1] or model.layer_sizes[-1] != prepared.n_classes:
        raise XpnetValueError(f"the model in {path!r} has layer sizes {list(model.layer_sizes)}, which do not fit "
                              f"its data now ({prepared.X.shape[1]} features, {prepared.n_classes} classes); "
                              f"did the data file change?")


def _merged(history, progress, done, epochs_done) -> dict:
    """The saved run's logged (epoch, loss) points followed by this run's, without repeats."""
    merged = {"epochs": list(history.get("epochs", [])), "losses": list(history.get("losses", []))}
    for epoch, loss in zip(progress.epochs, progress.losses):
        if done + epoch <= epochs_done and not (merged["epochs"] and done + epoch <= merged["epochs"][-1]):
            merged["epochs"].append(done + epoch)
            merged["losses"].append(loss)
    return merged


def _save(path, model, config, history, epochs_done, prepared, state) -> None:
    from . import checkpoint

    config = dict(config, target=prepared.target or config.get("target"))
    checkpoint.save(path, model, config=config, history=history, epochs_done=epochs_done, optimizer_state=state,
                    labels=prepared.labels, scaler=prepared.scaler, feature_names=prepared.feature_names)


class _Progress:
    """The training callback: a live tqdm bar when stderr is a terminal, periodic lines otherwise.

    Also records the logged epochs and losses of this run (for checkpoints and plots).
    With --distributed every process computes the accuracies (they sum over all processes'
    rows) unless --quiet; rank 0 alone shows them.
    """

    def __init__(self, args, model, prepared, done, comm=None):
        self.model, self.prepared, self.done, self.total, self.comm = model, prepared, done, args.epochs, comm
        self.measure = not args.quiet
        self.show = self.measure and (comm is None or comm.is_root)
        self.epochs, self.losses = [], []
        self.last = None  # (epoch, W, b) of the last logging point
        self.bar = None
        if self.show and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=done, file=sys.stderr, unit="epoch", dynamic_ncols=True,
                            desc="training")
        # a live bar wants frequent updates; plain lines about 20 per run; every process logs where rank 0 does
        log_every = max(1, (self.total - done) // (200 if self.bar else 20))
        self.log_every = log_every if comm is None else int(comm.from_root(log_every))
        self.start = time.perf_counter()

    def __call__(self, event) -> None:
        # one assignment, so a Ctrl-C never leaves a half-updated snapshot (arrays are never modified in place)
        self.last = (event.epoch, list(self.model.W), None if self.model.b is None else list(self.model.b))
        self.epochs.append(event.epoch)
        self.losses.append(event.loss)
        if not self.measure:
            return
        prepared = self.prepared
        stats = {"loss": f"{event.loss:.5f}", "acc": f"{_accuracy(self.comm, self.model, prepared.X, prepared.y):.4f}"}
        if prepared.n_held:
            stats["val_acc"] = f"{_accuracy(self.comm, self.model, prepared.X_held, prepared.y_held):.4f}"
        if not self.show:
            return
        epoch = self.done + event.epoch
        if self.bar is not None:
            self.bar.update(epoch - self.bar.n)
            self.bar.set_postfix(stats, refresh=False)
            return
        elapsed = time.perf_counter() - self.start
        left = f"{elapsed / event.epoch * (event.epochs - event.epoch):.1f}s" if event.epoch else "?"
        _progress(f"epoch {epoch:>{len(str(self.total))}}/{self.total}  "
                  + "  ".join(f"{k} {v}" for k, v in stats.items()) + f"  elapsed {elapsed:.1f}s  left {left}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_tutorial(args) -> int:
    if args.name == "list":
        if args.json:
            print(json.dumps({name: t.summary for name, t in tutorials.TUTORIALS.items()}))
        else:
            width = max(map(len, tutorials.TUTORIALS))
            for name, t in tutorials.TUTORIALS.items():
                print(f"{name:<{width}}  {t.summary}")
        return 0
    if args.plot:
        from . import plot

        plot.check_path(args.plot)
        if args.name not in plot.TUTORIAL_FIGURES:
            raise XpnetValueError(f"tutorial {args.name!r} has no picture; --plot works with "
                                  f"{', '.join(plot.TUTORIAL_FIGURES)}")
    result = tutorials.run(args.name, backend=args.backend, hidden=args.hidden, iterations=args.iterations,
                           activation=args.activation)
    if args.plot:
        plot.tutorial_figure(args.plot, result)
    print(json.dumps(result.data) if args.json else "\n".join(result.lines))
    if args.plot and not args.json:
        _progress(f"xpnet: wrote {args.plot}")
    return 0


def _model_commands(commands) -> None:
    """`xpnet predict` and `xpnet evaluate`: use a model saved with `xpnet train --save`."""
    predict = commands.add_parser("predict", help="predict labels for a data file with a saved model",
                                  description="Load a model saved by `xpnet train --save` (on any backend) and print "
                                              "one predicted label per line, in the original label names.")
    _model_flags(predict)
    predict.add_argument("--data", required=True, metavar="FILE",
                         help="rows to predict: .csv with a header (the training columns are picked by name; "
                              "a label column is ignored), .npy (n_samples, n_features) or .npz with X")
    predict.add_argument("--proba", action="store_true", help="also give the probability of each class")
    predict.add_argument("--output", default=None, metavar="FILE",
                         help="write a CSV (column prediction, then one per class with --proba) instead of stdout")
    predict.set_defaults(handler=cmd_predict)

    evaluate = commands.add_parser("evaluate", help="accuracy and loss of a saved model",
                                   description="Accuracy and loss of a model saved by `xpnet train --save`: on "
                                               "--data, else on the held-out split of the data it was trained on "
                                               "(its training data when nothing was held out).")
    _model_flags(evaluate)
    evaluate.add_argument("--data", default=None, metavar="FILE",
                          help="labelled data (.csv with the label in --target, .npy, .npz with X and y); "
                               "default: the saved run's own held-out data")
    evaluate.add_argument("--target", default=None, metavar="COLUMN",
                          help="the label column of --data (default: the training run's label column, else the last)")
    evaluate.set_defaults(handler=cmd_evaluate)


def _model_flags(parser) -> None:
    _common(parser)
    parser.add_argument("--model", required=True, metavar="FILE", help="a model written by `xpnet train --save FILE`")


def _features(ckpt, table, path):
    """The columns of ``table`` the model was trained on (by name when the file names them)."""
    names = ckpt.feature_names
    n_in = ckpt.model.layer_sizes[0]
    if names and all(name in table.feature_names for name in names):
        X = table.X[:, [table.feature_names.index(name) for name in names]]
    elif table.X.shape[1] == n_in:
        X = table.X
    else:
        raise XpnetValueError(f"--data {path!r} has {table.X.shape[1]} feature columns "
                              f"({', '.join(table.feature_names)}); the model expects {n_in}"
                              + (f": {', '.join(names)}" if names else ""))
    return ckpt.scaler.transform(X) if ckpt.scaler is not None else X


def cmd_predict(args) -> int:
    from . import checkpoint, data
    from .backend import to_numpy

    ckpt = checkpoint.load(args.model, backend=args.backend)
    table = data.load_file(args.data, ckpt.config.get("target"), has_target=False)
    X = _features(ckpt, table, args.data)
    indices = to_numpy(ckpt.model.predict(X))
    labels = ckpt.labels.decode(indices) if ckpt.labels is not None else indices
    values = [v.item() for v in labels]
    proba = to_numpy(ckpt.model.predict_proba(X)).tolist() if args.proba else None
    classes = ckpt.labels.classes if ckpt.labels is not None else list(range(ckpt.model.layer_sizes[-1]))
    if args.output:
        _write_predictions(args.output, values, proba, classes)
    if args.json:
        print(json.dumps({"predictions": values, "classes": classes, **({"probabilities": proba} if proba else {}),
                          **({"output": args.output} if args.output else {})}))
    elif args.output:
        _progress(f"xpnet: wrote {len(values)} predictions to {args.output}")
    else:
        for k, value in enumerate(values):
            print(value if proba is None else ",".join([str(value)] + [f"{p:.6g}" for p in proba[k]]))
    return 0


def _write_predictions(path, values, proba, classes) -> None:
    import csv
    import io

    from .checkpoint import atomic_write

    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["prediction"] + ([f"p_{c}" for c in classes] if proba else []))
    for k, value in enumerate(values):
        writer.writerow([value] + (list(proba[k]) if proba else []))
    atomic_write(path, lambda handle: handle.write(text.getvalue().encode("utf-8")))


def cmd_evaluate(args) -> int:
    from . import checkpoint, data

    ckpt = checkpoint.load(args.model, backend=args.backend)
    if args.data:
        table = data.load_file(args.data, args.target or ckpt.config.get("target"))
        X = _features(ckpt, table, args.data)
        y = ckpt.labels.encode(table.y) if ckpt.labels is not None else table.y
        split, source = "given", args.data
    else:
        prepared = data.prepare(ckpt.config)
        held = prepared.X_held.shape[0] > 0
        X, y = (prepared.X_held, prepared.y_held) if held else (prepared.X, prepared.y)
        split, source = ("test" if ckpt.config.get("dataset") == "digits" and not ckpt.config.get("data")
                         else "validation") if held else "training", prepared.source
    model = ckpt.model
    summary = {"model": args.model, "data": source, "split": split, "n_samples": int(X.shape[0]),
               "accuracy": model.accuracy(X, y), "loss": model.loss(X, y), "epochs": ckpt.epochs_done}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"data      {source} ({split}, {X.shape[0]} samples)")
        print(f"accuracy  {summary['accuracy']:.4f}")
        print(f"loss      {summary['loss']:.6f}")
    return 0


# -- xpnet bench ---------------------------------------------------------------------------
def _count_list(text: str) -> list[int]:
    """Comma-separated counts; 1e6 style is accepted when it is a whole number."""
    values = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        try:
            value = float(item) if any(c in item for c in ".eE") else int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 1000,1e5, got {text!r}") from None
        if value != int(value) or value < 1:
            raise argparse.ArgumentTypeError(f"every value must be a whole number >= 1, got {item!r}")
        values.append(int(value))
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one whole number, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated names, got {text!r}")
    return names


def _dtype_list(text: str) -> list[str]:
    names = _name_list(text)
    for name in names:
        if name not in ("float32", "float64"):
            raise argparse.ArgumentTypeError(f"dtype {name!r} is not supported; choose float32 and/or float64")
    return names


def _compare_list(text: str) -> list[str]:
    from .bench import COMPARE

    names = _name_list(text)
    for name in names:
        if name not in COMPARE:
            raise argparse.ArgumentTypeError(f"unknown baseline {name!r}; choose from {', '.join(COMPARE)}")
    return names


def _add_bench(commands) -> None:
    bench = commands.add_parser(
        "bench", help="time full-batch training epochs against the machine's limits (and PyTorch)",
        description="Time one full-batch training epoch (forward, backward, update, synced) of the "
                    "tutorials' network (input -> hidden tanh -> softmax cross-entropy, L2 0.01, mean "
                    "gradient) for every n-samples x hidden case, on synthetic data. Also measures the "
                    "machine's ceilings (large matmul GFLOP/s, copy GB/s, tanh elements/s) in the same "
                    "run and reports each case against them. A progress line per case goes to stderr; "
                    "cases that would not fit in memory are skipped with the estimate.")
    bench.add_argument("--backend", type=_name_list, default=None, metavar="NAME[,NAME...]",
                       help=f"array backend(s), comma separated: numpy, cupy, auto, torch, array_api_strict... "
                            f"(default: ${ENV_VAR}, else auto)")
    bench.add_argument("--dtype", type=_dtype_list, default=["float32"], metavar="DTYPE[,DTYPE]",
                       help="float32 and/or float64, comma separated (default: float32)")
    bench.add_argument("--n-samples", type=_count_list, default=[1000, 10000, 100000], metavar="N[,N...]",
                       help="batch sizes (rows of the full batch), comma separated; 1e5 style is fine "
                            "(default: 1000,10000,100000)")
    bench.add_argument("--hidden", type=_count_list, default=[64, 256, 1024], metavar="W[,W...]",
                       help="hidden layer widths, comma separated: one case per width, one hidden layer each "
                            "(default: 64,256,1024)")
    bench.add_argument("--input-dim", type=_positive_int, default=2, metavar="D",
                       help="input features (default: 2, the tutorials'; 784 for an MNIST-sized net)")
    bench.add_argument("--classes", type=_positive_int, default=2, metavar="C",
                       help="softmax outputs, at least 2 (default: 2; 10 for an MNIST-sized net)")
    bench.add_argument("--epochs", type=_positive_int, default=1,
                       help="epochs per timed sample; seconds_per_epoch = sample time / epochs (default: 1)")
    bench.add_argument("--repeat", type=_positive_int, default=7,
                       help="timed samples per case, after one untimed warm-up sample; the median is "
                            "reported (default: 7)")
    bench.add_argument("--compare", type=_compare_list, default=None, metavar="BASELINE[,BASELINE]",
                       help="also time baselines, interleaved with xpnet's samples, and report the time ratios: "
                            "torch (the same step in PyTorch eager: nn.Linear + autograd + optim.SGD, same data, "
                            "weights, dtype and device), tutorial (WildML's own NumPy step in float64, the whole "
                            "batch at once); e.g. --compare torch,tutorial")
    bench.add_argument("--memory", action="store_true",
                       help="also measure each case's peak resident memory over one more epoch (Linux)")
    bench.add_argument("--plot", default=None, metavar="FILE",
                       help="draw samples/s against hidden size per backend and n-samples into FILE "
                            "(.png, .svg, .pdf; needs matplotlib)")
    bench.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="bound the CPU threads of the BLAS (and torch) to N (default: all cores)")
    bench.add_argument("--json", action="store_true",
                       help="print exactly one line on stdout: {machine, ceilings, results, skipped}")
    bench.set_defaults(handler=cmd_bench)


def _bench_progress(kind: str, item: dict) -> None:
    where = f"{item['backend']} {item['dtype']}"
    if kind == "ceilings":
        _progress(f"{where} ceilings: matmul {item['matmul_size']}^3 {item['matmul_gflops']:.1f} GFLOP/s, "
                  f"copy {item['copy_gbytes_per_second']:.1f} GB/s, {item['activation']} "
                  f"{item['activation_elements_per_second']:.3g} elements/s")
        return
    case = f"{where} n_samples={item['n_samples']} hidden={item['hidden']}"
    if kind == "skipped":
        _progress(f"{case}: skipped, {item['reason']}")
        return
    line = (f"{case}: {item['seconds_per_epoch'] * 1e3:.3f} ms/epoch, {item['samples_per_second']:.3g} samples/s, "
            f"{item['gflops']:.2f} GFLOP/s ({item['percent_of_matmul_peak']:.1f}% of matmul peak)")
    for name in BASELINE_NAMES:
        if f"{name}_seconds_per_epoch" in item:
            line += (f"; {name} {item[f'{name}_seconds_per_epoch'] * 1e3:.3f} ms/epoch "
                     f"({1 / item[f'xpnet_over_{name}']:.1f}x faster)")
        elif f"{name}_skipped" in item:
            line += f"; {name} not run: {item[f'{name}_skipped']}"
    _progress(line)


BASELINE_NAMES = ("torch", "tutorial")  # the order of the bench table's baseline columns


def cmd_bench(args) -> int:
    from . import bench

    if args.plot:  # the same checks as train/tutorial --plot, before minutes of measuring
        from . import plot

        plot.check_path(args.plot)
    if args.compare and "torch" in args.compare:  # load torch first so --threads bounds its pool too
        bench.get_backend("torch")
    with limit_threads(args.threads):
        report = bench.run(args.backend, args.dtype, args.n_samples, args.hidden, input_dim=args.input_dim,
                           classes=args.classes, epochs=args.epochs, repeat=args.repeat, compare=args.compare,
                           memory=args.memory, progress=_bench_progress)
    if args.plot:
        bench.plot(report, args.plot)
    if args.json:
        print(json.dumps(report))
        return 0
    _print_bench_table(report)
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _print_bench_table(report: dict) -> None:
    rows = report["results"]
    names = [n for n in BASELINE_NAMES if any(f"{n}_seconds_per_epoch" in r or f"{n}_skipped" in r for r in rows)]
    memory = any("peak_rss_bytes" in r for r in rows)
    head = f"{'backend':<8} {'dtype':<7} {'n_samples':>9} {'hidden':>6} {'ms/epoch':>10} {'samples/s':>10} " \
           f"{'GFLOP/s':>8} {'%peak':>6} {'GB/s':>6} {'/bw floor':>9}"
    head += "".join(f" {name + ' ms':>11} {'x faster':>8}" for name in names)
    print(head + (f" {'peak RSS MiB':>12}" if memory else ""))
    for r in rows:
        line = (f"{r['backend']:<8} {r['dtype']:<7} {r['n_samples']:>9} {r['hidden']:>6} "
                f"{r['seconds_per_epoch'] * 1e3:>10.3f} {r['samples_per_second']:>10.3g} {r['gflops']:>8.2f} "
                f"{r['percent_of_matmul_peak']:>6.1f} {r['gbytes_per_second']:>6.2f} {r['time_over_bandwidth_floor']:>9.2f}")
        for name in names:
            if f"{name}_seconds_per_epoch" in r:
                line += f" {r[f'{name}_seconds_per_epoch'] * 1e3:>11.3f} {1 / r[f'xpnet_over_{name}']:>8.1f}"
            else:
                line += f" {'not run':>11} {'':>8}"
        if memory:
            line += f" {r['peak_rss_bytes'] / 2**20:>12.0f}" if "peak_rss_bytes" in r else f" {'-':>12}"
        print(line)
    for r in rows:
        for name in names:
            if f"{name}_skipped" in r:
                print(f"{name} not run beside n_samples={r['n_samples']} hidden={r['hidden']}: {r[f'{name}_skipped']}")
    for s in report["skipped"]:
        print(f"skipped  {s['backend']} {s['dtype']} n_samples={s['n_samples']} hidden={s['hidden']}: {s['reason']}")


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        comm = distributed.launch() if getattr(args, "distributed", False) else None
        with limit_threads(args.threads if comm is None or args.threads else comm.threads_per_rank()):
            return args.handler(args)
    except (UsageError, XpnetError) as exc:
        comm = distributed.active()
        print(f"xpnet: error: {comm.where() if comm else ''}{_one_line(exc)}", file=sys.stderr, flush=True)
        if comm is not None:
            comm.abort(2)  # the other processes would wait forever in their next Allreduce
        return 2
    except BrokenPipeError:  # e.g. `xpnet train --json | head -c 100`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
