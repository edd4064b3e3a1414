"""Progress of `xpnet train`: a live bar on a terminal, about 20 plain lines otherwise.

The progress callback also records what the run logged (for checkpoints and plots) and
writes the --save-every checkpoints (:mod:`~xpnet.cli.saving`).
"""

from __future__ import annotations

import math
import sys
import time

from .args import _progress
from .scores import accuracy, measure, regression_scores

_SHORT = {"accuracy": "acc", "val_accuracy": "val_acc"}  # names in the progress lines

class Progress:
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
            stats = {"accuracy": accuracy(comm, model, prepared.X, prepared.y)}
        else:
            stats = {"r2": regression_scores(comm, model, prepared.X, prepared.y, self.scaling)["r2"]}
        if prepared.n_val:
            held = measure(comm, model, prepared.X_val, prepared.y_val, self.task, self.scaling)
            metric = "accuracy" if self.task == "classification" else "r2"
            stats.update({"val_loss": held["loss"], "val_" + metric: held[metric]})
        return stats

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
