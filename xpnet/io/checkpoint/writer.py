"""Writing a checkpoint: the model's arrays and its JSON meta, written atomically, rescued when that fails."""

from __future__ import annotations

import json
import os

import numpy as np

from ... import __version__, memory
from ...backend import to_numpy
from ...core import activations
from ...data.labels import LabelMap
from ...data.preprocess import Scaler
from ...errors import XpnetError, XpnetTypeError, XpnetValueError, check_number
from ...mlp import MLP
from ...training.config import TrainConfig
from ..atomic import atomic_write, reason, write_rescue
from .schema import BN_FIELDS, FORMAT, FORMAT_VERSION, MAX_EPOCHS, META_MAX_BYTES, META_MAX_DEPTH, json_depth


class SaveError(XpnetError, OSError):
    """A checkpoint could not be written where asked; the weights went to :attr:`rescue_path`.

    ``rescue_path`` is None when no rescue file could be written either (the message says
    so). The message is one line naming the destination, the cause and the rescue file.
    """

    def __init__(self, message: str, rescue_path: str | None = None):
        super().__init__(message)
        self.rescue_path = rescue_path

    def __str__(self) -> str:
        return str(self.args[0])


def save(path, model: MLP, *, config=None, history=None, epochs_done: int = 0, optimizer_state=None,
         labels: LabelMap | None = None, scaler: Scaler | None = None, feature_names=None,
         train_config: TrainConfig | None = None) -> None:
    """Write ``model`` and its training state to ``path`` atomically (see :mod:`xpnet.checkpoint`).

    Parameters
    ----------
    path : str or PathLike
        Destination; written exactly as named (no ``.npz`` is appended). A symbolic link is
        written through (the file it points to is replaced, the link kept).
    model : MLP
        On any backend; arrays are copied to the host. Hidden activations defined in the
        user's code are recorded by name (``architecture.user_activations``); pass them
        again to :func:`~xpnet.checkpoint.load`.
    config : dict, optional
        The run's other settings, JSON-serialisable (``xpnet train`` records its data
        source, task and flags here); returned as :attr:`Checkpoint.config`.
    history : dict, optional
        ``{"epochs": [int...], "losses": [float...]}``.
    epochs_done : int
        Updates applied so far (>= 0).
    optimizer_state : dict of str -> array, optional
        Optimizer buffers (any backend), restored by ``load`` as NumPy arrays.
    labels, scaler, feature_names
        The data mapping needed to predict on new files.
    train_config : TrainConfig, optional
        How the model was trained; recorded as ``TrainConfig.to_dict()`` under the meta's
        ``train_config`` and returned by ``load`` as a :class:`~xpnet.TrainConfig`.

    Raises
    ------
    SaveError
        When the file cannot be written (the destination is refused, the disk is full,
        read-only, or permission is denied). The same checkpoint is first written to a
        rescue file (:func:`xpnet.io.atomic.write_rescue`), named by the error's message
        and its ``rescue_path`` attribute.
    """
    check_number("epochs_done", epochs_done, low=0, high=MAX_EPOCHS, integer=True)
    if train_config is not None and not isinstance(train_config, TrainConfig):
        raise XpnetTypeError(f"train_config={train_config!r} must be an xpnet.TrainConfig (or None)")
    meta = _meta(model, config, history, int(epochs_done), sorted(optimizer_state or {}), labels, scaler,
                 feature_names, train_config)
    arrays = {"meta": _encoded(meta), **_model_arrays(model)}
    arrays.update({f"optimizer/{name}": to_numpy(a) for name, a in (optimizer_state or {}).items()})
    if scaler is not None:
        arrays["scaler_mean"], arrays["scaler_scale"] = scaler.mean, scaler.scale
    try:
        atomic_write(path, lambda handle: np.savez(handle, **arrays))
    except (OSError, XpnetValueError) as exc:
        raise _rescued(os.fspath(path), arrays, exc) from exc


def _meta(model, config, history, epochs_done, optimizer_names, labels, scaler, feature_names, train_config) -> dict:
    """The JSON meta (docs/reliability.md, "The checkpoint format", lists every key)."""
    spec = model.spec
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xpnet_version": __version__,
        "architecture": {
            "layer_sizes": list(spec.layer_sizes),
            "activation": [a.name for a in spec.hidden],
            "user_activations": _user_defined(spec.hidden),
            "output": spec.output,
            "loss": spec.loss.name,
            "bias": spec.bias,
            "init": model.init,
            "seed": model.seed,
            "numerics": model.numerics,
            "dropout": spec.dropout,
            "batch_norm": model.bn is not None,
        },
        "dtype": model.dtype_name,
        "saved_from": model.backend.describe(),
        "config": dict(config or {}),
        "train_config": None if train_config is None else train_config.to_dict(),
        "history": dict(history or {"epochs": [], "losses": []}),
        "epochs_done": epochs_done,
        "optimizer_state": optimizer_names,
        "classes": None if labels is None else list(labels.classes),
        "feature_names": None if feature_names is None else list(feature_names),
        "standardize": scaler is not None,
    }


def _encoded(meta: dict) -> np.ndarray:
    """``meta`` as UTF-8 JSON bytes in a uint8 array; refused when :func:`load` would refuse it."""
    try:
        text = json.dumps(meta, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise XpnetValueError(f"checkpoint metadata is not JSON-serialisable: {exc}") from None
    if len(text) > META_MAX_BYTES or json_depth(text) > META_MAX_DEPTH:
        raise XpnetValueError(f"checkpoint metadata is {memory.format_bytes(len(text))} nested {json_depth(text)} "
                              f"deep, beyond the {memory.format_bytes(META_MAX_BYTES)} and {META_MAX_DEPTH} levels "
                              "a checkpoint may hold; keep config and history smaller")
    return np.frombuffer(text, dtype=np.uint8)


def _model_arrays(model: MLP) -> dict:
    """The model's arrays on the host by member name: ``W<i>``, ``b<i>``, ``bn_<field><i>``."""
    arrays = {f"W{i}": to_numpy(W) for i, W in enumerate(model.W)}
    if model.b is not None:
        arrays.update({f"b{i}": to_numpy(b) for i, b in enumerate(model.b)})
    if model.bn is not None:
        for field in BN_FIELDS:
            arrays.update({f"bn_{field}{i}": to_numpy(a) for i, a in enumerate(getattr(model.bn, field))})
    return arrays


def _user_defined(hidden) -> list:
    """Names of the user-defined activations among ``hidden``; one object per name."""
    by_name: dict = {}
    for act in hidden:
        if by_name.setdefault(act.name, act) != act:
            raise XpnetValueError(f"two different activations are called {act.name!r} in this model; give them "
                                  "distinct names so that the checkpoint can tell them apart")
    return sorted(name for name, act in by_name.items() if not activations.is_builtin(act))


def _rescued(path: str, arrays: dict, exc: BaseException) -> SaveError:
    """Write ``arrays`` to a rescue file; the :class:`SaveError` to raise, naming it."""
    target, failures = write_rescue(path, lambda handle: np.savez(handle, **arrays))
    if target is not None:
        return SaveError(f"could not save the checkpoint to {path!r} ({reason(exc)}); the weights were saved to "
                         f"{target!r} instead: move that file where you want it, or resume from it", target)
    return SaveError(f"could not save the checkpoint to {path!r} ({reason(exc)}) and no rescue file could be "
                     f"written ({failures}); the trained weights are lost when this process ends")
