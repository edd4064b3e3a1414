"""The checkpoints of `xpnet train`: every --save-every epochs, and at the end.

A checkpoint records the run's command-line settings (``config``: the data, the network,
the task and the targets' scaling) and its :class:`~xpnet.TrainConfig`
(``train_config``, :meth:`~xpnet.TrainConfig.to_dict`), which ``--resume`` reads back
(:mod:`~xpnet.cli.settings`).
"""

from __future__ import annotations

from ..errors import XpnetError
from .args import _progress


def merged_history(history, progress, done, epochs_done) -> dict:
    """The saved run's logged (epoch, loss) points followed by this run's, without repeats."""
    merged = {"epochs": list(history.get("epochs", [])), "losses": list(history.get("losses", []))}
    for epoch, loss in zip(progress.epochs, progress.losses):
        if done + epoch <= epochs_done and not (merged["epochs"] and done + epoch <= merged["epochs"][-1]):
            merged["epochs"].append(done + epoch)
            merged["losses"].append(loss)
    return merged


class Saver:
    """Writes the run's checkpoint: every --save-every epochs from the progress callback, and at the end."""

    def __init__(self, path, model, config: dict, train_config, history, prepared, done):
        self.path, self.model, self.config, self.train_config = path, model, config, train_config
        self.history, self.prepared, self.done = history, prepared, done
        self.failed = False  # a periodic save failed: no more of them

    def save(self, progress, epochs_done: int, state) -> None:
        from ..io import checkpoint

        prepared = self.prepared
        config = dict(self.config, target=prepared.target or self.config.get("target"))
        checkpoint.save(self.path, self.model, config=config, train_config=self.train_config,
                        history=merged_history(self.history, progress, self.done, epochs_done),
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
            _progress(f"xpnet: warning: epoch {epochs_done}: {one_line(exc)}; training goes on without periodic "
                      "saves (the final save tries again)")

    def final(self, progress, epochs_done: int, state) -> str | None:
        """The checkpoint at the end; None when written, else what went wrong (and where the
        checkpoint module rescued the weights, when it could)."""
        try:
            self.save(progress, epochs_done, state)
        except (OSError, XpnetError) as exc:
            from ..io.checkpoint import SaveError

            if isinstance(exc, SaveError):  # it names the destination, the cause and the rescue file
                return one_line(exc)
            return f"could not save the checkpoint to {self.path!r}: {one_line(exc)}"
        return None


def one_line(exc: BaseException) -> str:
    """An error as one line; a plain OSError by its reason ("No space left on device")."""
    if isinstance(exc, OSError) and not isinstance(exc, XpnetError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())
