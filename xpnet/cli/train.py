"""`xpnet train`: its flags, and training a model from them (progress, --resume, --save, the report)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .. import datasets, distributed, optim
from ..errors import XpnetValueError
from ..mlp import MLP
from .args import Parser, _common, _fraction, _int_list, _non_negative_float, _positive_float, _positive_int, _progress


def add_parser(commands) -> None:
    """Add the `train` subcommand to ``commands`` (the parser's subparsers)."""
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
                       help="hidden activation: tanh, sigmoid or relu; one, or one per layer comma separated "
                            "(default: tanh)")
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


def cmd_train(args) -> int:
    from .prepare import prepare

    ckpt = _resume(args) if args.resume else None  # first: it restores the saved run's flags
    fit_options = _fit_options(args)
    if args.classes is not None and (args.data or args.dataset not in ("spirals", "blobs")):
        raise XpnetValueError(f"--classes applies to --dataset spirals or blobs, not {args.data or args.dataset}; "
                              "drop it")
    args.epochs = 2000 if args.epochs is None else args.epochs
    if args.plot:
        from .. import plot

        plot.check_path(args.plot)
    if args.early_stopping and args.validation_fraction is None and not (args.dataset == "digits" and not args.data):
        args.validation_fraction = 0.1  # early stopping needs a held-out set
    config = {key: value for key, value in vars(args).items() if key not in _PER_RUN and _jsonable(value)}
    config["epochs_requested"] = args.epochs
    if config.get("data"):  # so that --resume and `xpnet evaluate` find it from any directory
        config["data"] = os.path.abspath(config["data"])
    comm = distributed.active() if args.distributed else None  # launched in main()
    root = comm is None or comm.is_root  # only rank 0 prints and writes files
    prepared = prepare(config, comm)  # with --distributed: this process's rows only
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
    from .. import plot

    points = (prepared.X, prepared.y) if comm is None else comm.sample(prepared.X, prepared.y, PLOT_POINTS)
    if points is not None:
        X, y = points
        plot.training_figure(path, model, X, y, history["epochs"], history["losses"])


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
    comm = distributed.active() if args.distributed else None  # launched in main()
    if comm is not None:
        summary["processes"] = comm.size
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
                       help="the label column of --data: a CSV header name or a column index "
                            "(default: the last column)")
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
    from .. import checkpoint

    if args.resume is None:
        return None
    ckpt = checkpoint.load(args.resume, backend=args.backend)
    defaults = _defaults()
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


def _defaults() -> dict:
    """The values of every train flag left out: what parsing `xpnet train` alone gives."""
    parser = Parser(prog="xpnet")
    add_parser(parser.add_subparsers(dest="command", parser_class=Parser))
    return vars(parser.parse_args(["train"]))


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
    from .. import checkpoint

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

