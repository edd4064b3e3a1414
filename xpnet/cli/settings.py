"""The settings of an `xpnet train` run as checkpoints record them, and --resume reading them back.

A checkpoint holds two records (:mod:`~xpnet.cli.saving`):

* ``config``: the command line's own settings: the data (``dataset``, ``data`` as an absolute
  path, ``target``, ``header``, ``standardize``, ``validation_fraction`` as used, ``task`` as
  found, ``seed``...), the network (``hidden``, ``activation``, ``init``, ``dtype``, ``dropout``,
  ``batch_norm``), ``epochs_requested`` and a regression's ``target_scaling``;
* ``train_config`` (in the meta): :meth:`xpnet.TrainConfig.to_dict`, every training option.

Checkpoints written before the training options were recorded on their own hold every flag
in ``config`` (the parsed flags' dictionary, by flag destination); they still resume, their
options read from there (missing ones take the defaults they had then).
"""

from __future__ import annotations

import os

from ..errors import XpnetValueError
from ..training.config import TrainConfig
from .options import config_from_flags, flag_values, from_record, training_options
from .prepare import DATA_KEYS, EARLY_STOPPING_FRACTION
from .processes import jsonable

# Flags that belong to one invocation, never saved nor restored.
PER_RUN = {"command", "handler", "resume", "save", "save_every", "plot", "quiet", "json", "backend", "threads",
           "log_every", "epochs", "distributed", "given", "config", "print_config", "debug", "effective"}
TRAINING = {opt.public_name for _, _, opt in training_options()}  # the flags of TrainConfig's options
NOT_RESTORED_FROM_RECORD = {"epochs", "log_every", "validation_fraction"}  # the command line sets these itself


def run_config(args) -> dict:
    """The command line's own settings of a run, as checkpoints save them (JSON values; the data
    file's absolute path): every flag that is neither per-invocation nor a training option,
    and the training options that also decide the data (``seed``, ``validation_fraction``...)."""
    config = {key: value for key, value in vars(args).items()
              if key not in PER_RUN and (key not in TRAINING or key in DATA_KEYS) and jsonable(value)}
    config["epochs_requested"] = args.epochs
    if config.get("data"):  # so that --resume and `xpnet evaluate` find it from any directory
        config["data"] = os.path.abspath(config["data"])
    return config


def saved_settings(ckpt, path) -> tuple[dict, TrainConfig]:
    """``(config, train_config)`` of a checkpoint: its command-line settings, and the
    :class:`~xpnet.TrainConfig` of its record (rebuilt from the flags an older checkpoint saved)."""
    config = dict(ckpt.config)
    if ckpt.train_config is not None:  # (checked by the checkpoint loader)
        return config, ckpt.train_config
    config = legacy_config(config)  # an older checkpoint: its config is the parsed flags' dictionary
    return config, from_record(config_from_flags(config, skip=NOT_RESTORED_FROM_RECORD), f"{os.fspath(path)!r}")


def data_settings(ckpt) -> dict:
    """The settings that say which data a checkpoint's run trained on (for :func:`~xpnet.cli.prepare.prepare`),
    an older checkpoint's with the defaults of its time."""
    return dict(ckpt.config) if ckpt.train_config is not None else legacy_config(ckpt.config)


def legacy_config(config: dict) -> dict:
    """An older checkpoint's settings with the defaults of its time made explicit: no
    validation rows unless asked (0.1 with early stopping), raw features unless standardized."""
    config = dict(config)
    if config.get("validation_fraction") is None:
        config["validation_fraction"] = EARLY_STOPPING_FRACTION if config.get("early_stopping") else 0.0
    config["standardize"] = bool(config.get("standardize"))
    return config


def resume(args):
    """Load the --resume checkpoint and put its settings into ``args``; ``(checkpoint, TrainConfig)``.

    A flag given on the command line (or in --config) that contradicts the saved value is an
    error, whatever its value: "given" is read from the command line, not by comparing with
    the defaults, so ``--learning-rate 0.5`` against a saved 0.1 is refused too.
    """
    from ..io import checkpoint

    ckpt = checkpoint.load(args.resume, backend=args.backend)
    config, train_config = saved_settings(ckpt, args.resume)
    options = {key: value for key, value in flag_values(train_config).items() if key not in NOT_RESTORED_FROM_RECORD}
    given = getattr(args, "given", set())
    for key, saved in {**options, **config}.items():
        if key in PER_RUN or not hasattr(args, key):
            continue
        value = getattr(args, key)
        if key in given and not _same_setting(key, value, saved):
            flag = "--" + key.replace("_", "-")
            raise XpnetValueError(f"{flag} {value!r} differs from the {saved!r} saved in {args.resume!r}; --resume "
                                  f"continues the saved run with its settings, so drop {flag}")
        setattr(args, key, saved)
    if args.epochs is None:
        args.epochs = config.get("epochs_requested", ckpt.epochs_done)
    return ckpt, train_config


def _same_setting(key: str, given, saved) -> bool:
    if key == "data" and given and saved:
        return os.path.abspath(given) == os.path.abspath(saved)
    if key == "task" and given == "auto":  # saved resolved: auto found it then
        return True
    return given == saved
