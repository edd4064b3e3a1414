"""Loading a checkpoint: the file opened safely, its meta and memory checked, its arrays read, the model built."""

from __future__ import annotations

import math
import os
import struct
import warnings
import zipfile
from dataclasses import dataclass, field

from ... import __version__, memory
from ...backend import get_backend, itemsize
from ...core import activations
from ...core.layers import BatchNorm
from ...data.labels import LabelMap
from ...data.preprocess import Scaler
from ...errors import XpnetError, XpnetTypeError, XpnetValueError
from ...mlp import MLP
from ...training.config import TrainConfig
from ..atomic import reason
from ..files import open_regular
from .members import Reader
from .meta import Layout
from .schema import BN_FIELDS, bad


@dataclass
class Checkpoint:
    """What :func:`load` returns."""

    model: MLP  # rebuilt on the requested backend, weights restored
    config: dict = field(default_factory=dict)  # the run's other settings, as saved (``xpnet train``'s flags)
    history: dict = field(default_factory=dict)  # {"epochs": [...], "losses": [...]}
    epochs_done: int = 0  # updates applied so far (resume continues from here)
    optimizer_state: dict = field(default_factory=dict)  # name -> NumPy array
    labels: LabelMap | None = None  # class labels of a classifier trained on file data
    scaler: Scaler | None = None  # standardization of the inputs, if any
    feature_names: list | None = None
    meta: dict = field(default_factory=dict)  # the whole JSON metadata
    train_config: TrainConfig | None = None  # how it was trained; None in files written before it was recorded


def load(path, *, backend=None, dtype: str | None = None, activations=None) -> Checkpoint:
    """Read a checkpoint written by :func:`~xpnet.checkpoint.save` (on any backend) onto ``backend``.

    Nothing in the file is trusted: see docs/reliability.md for what is checked, and in
    which order. Only ``UserWarning`` (another major version wrote it) or one error.

    Parameters
    ----------
    path : str or PathLike
    backend : str or Backend, optional
        Where to put the model (default as for :class:`~xpnet.MLP`); need not be the one
        it was saved from.
    dtype : {"float32", "float64"}, optional
        Default: the saved dtype, or float32 if the backend's device has no float64.
    activations : list of Activation, or dict of name -> Activation, optional
        The user-defined hidden activations the model uses (those of
        :class:`xpnet.activations.Activation` not built into xpnet), matched by name.

    Raises
    ------
    XpnetValueError
        The file is missing, not a checkpoint, or malformed in any way (one line naming
        the file and the problem); or it uses a user-defined activation not passed in
        ``activations``.
    xpnet.memory.XpnetMemoryError
        The model would not fit in the memory available (checked before it is built).
    """
    path = os.fspath(path)
    given = _given_activations(activations)
    with open_regular(path, f"checkpoint {path!r}", "a checkpoint (.npz file)",
                      f"; write one with `xpnet train --save {path}`") as handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
                struct.error) as exc:
            raise XpnetValueError(f"{path!r} is not an xpnet checkpoint (.npz): {reason(exc)}") from None
        with archive:
            reader = Reader(path, archive, os.fstat(handle.fileno()).st_size)
            meta = reader.meta()
            layout = Layout.check(path, meta)
            hidden = _hidden_activations(path, layout, given)
            target = get_backend(backend)
            dtype_name = _dtype_for(layout.dtype, dtype, target)
            target.dtype(dtype_name)  # a bad `dtype` argument is the caller's error, not the file's
            _require_memory(path, layout, target, dtype_name)
            arrays = reader.arrays(layout)
    if layout.major != __version__.split(".")[0]:
        warnings.warn(f"{path!r} was written by xpnet {meta['xpnet_version']}, a different major version than this "
                      f"xpnet {__version__}: it loaded, but check its results (or use xpnet {layout.major}.x)",
                      UserWarning, stacklevel=2)
    return Checkpoint(
        model=_build(path, layout, hidden, arrays, target, dtype_name),
        config=layout.config,
        history=layout.history,
        epochs_done=layout.epochs_done,
        optimizer_state={name: arrays[f"optimizer/{name}"] for name in layout.optimizer_names},
        labels=None if layout.classes is None else LabelMap(layout.classes),
        scaler=Scaler(arrays["scaler_mean"], arrays["scaler_scale"]) if layout.standardize else None,
        feature_names=layout.feature_names,
        meta=meta,
        train_config=layout.train_config,
    )


def _given_activations(given) -> dict:
    """The ``activations`` argument of :func:`load` as ``{name: Activation}``."""
    if given is None:
        return {}
    if isinstance(given, dict):
        items = list(given.items())
    elif isinstance(given, (list, tuple)) and not isinstance(given, activations.Activation):
        items = [(getattr(act, "name", None), act) for act in given]
    else:
        raise XpnetTypeError(f"activations={given!r} must be a list of xpnet.activations.Activation objects "
                             "(or a dict of them by name)")
    found: dict = {}
    for name, act in items:
        if not isinstance(act, activations.Activation):
            raise XpnetTypeError(f"activations=...: {act!r} is not an xpnet.activations.Activation")
        activations.get_hidden(act, "activations")
        if name != act.name:
            raise XpnetValueError(f"activations=...: the key {name!r} names the activation {act.name!r}; "
                                  "use its own name as the key")
        if found.setdefault(name, act) != act:
            raise XpnetValueError(f"activations=...: two different activations are called {name!r}")
    return found


def _hidden_activations(path: str, layout: Layout, given: dict) -> list:
    """Per hidden layer: a built-in activation's name, or the user's Activation object."""
    hidden = []
    for name in layout.activation:
        if name in activations.HIDDEN and name not in layout.user_activations:
            hidden.append(name)
            continue
        if name not in given:
            variable = name if name.isidentifier() else "your_activation"
            if name in layout.user_activations:
                raise XpnetValueError(f"the model in {path!r} uses the activation {name!r} defined in your code; pass "
                                      f"it again: checkpoint.load({path!r}, activations=[{variable}])")
            raise XpnetValueError(f"the model in {path!r} uses the activation {name!r}, which is not one of xpnet's "
                                  f"({', '.join(activations.HIDDEN)}); if it is yours, pass it: "
                                  f"checkpoint.load({path!r}, activations=[{variable}])")
        hidden.append(given[name])
    return hidden


def _require_memory(path: str, layout: Layout, target, dtype_name: str) -> None:
    """Refuse a model that would not fit, before anything of its size is allocated.

    The host holds the arrays read from the file (and a float64 copy of the weights on their way
    to the model); the device holds the model.
    """
    saved = itemsize(layout.dtype)
    model_numbers = sum(math.prod(shape) for shape in layout.shapes().values())
    optimizer_numbers = sum(math.prod(layout.optimizer_shape(name) or layout.largest()) for name in
                            layout.optimizer_names)
    weights = sum(a * b for a, b in zip(layout.sizes[:-1], layout.sizes[1:]))
    host = (model_numbers + optimizer_numbers + 2 * layout.sizes[0]) * saved + 8 * weights
    device = model_numbers * itemsize(dtype_name)
    what = f"the model in {path!r} ({list(layout.sizes)}, {dtype_name})"
    fix = "load it where there is more memory, or check the file: its meta may not be what it claims"
    if target.uses_host_memory():
        memory.require(host + device, what, fix=fix)
    else:
        memory.require(host, what, fix=fix)
        memory.require(device, what, target, fix=fix)


def _build(path: str, layout: Layout, hidden: list, arrays: dict, target, dtype_name: str) -> MLP:
    """The model on ``target`` with the checked arrays as its weights."""
    n = len(layout.sizes) - 1
    weights = ([arrays[f"W{i}"] for i in range(n)], [arrays[f"b{i}"] for i in range(n)] if layout.bias else None)
    try:  # built from the checked arrays: no random weights drawn first
        model = MLP(list(layout.sizes), activation=hidden, output=layout.output, loss=layout.loss, bias=layout.bias,
                    init=layout.init, dtype=dtype_name, backend=target, seed=layout.seed, numerics=layout.numerics,
                    dropout=layout.dropout, batch_norm=layout.batch_norm, weights=weights)
    except (XpnetError, ValueError, TypeError, OverflowError) as exc:  # e.g. a loss that does not fit the output
        raise bad(path, reason(exc)) from None
    if layout.batch_norm:
        model.bn = BatchNorm(*(tuple(target.asarray(arrays[f"bn_{f}{i}"], model.dtype) for i in range(n - 1))
                               for f in BN_FIELDS))
    return model


def _dtype_for(saved: str, requested: str | None, target) -> str:
    if requested is not None:
        return requested
    return saved if saved in target.dtype_names() else "float32"
