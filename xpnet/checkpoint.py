"""Checkpoints: a model, its training state and its data mapping in one ``.npz`` file.

    >>> from xpnet import checkpoint
    >>> checkpoint.save("model.npz", model, config={"learning_rate": 0.5}, epochs_done=100)  # doctest: +SKIP
    >>> ckpt = checkpoint.load("model.npz", backend="torch")    # any backend   # doctest: +SKIP
    >>> ckpt.model.predict(X)                                                   # doctest: +SKIP

Format (backend-neutral, no pickle)
-----------------------------------
A NumPy ``.npz`` archive, read with ``allow_pickle=False``, holding

``meta``
    UTF-8 JSON as a uint8 array: ``format`` (``"xpnet-checkpoint"``), ``format_version``,
    ``xpnet_version``, ``architecture`` (layer sizes, activations, output, loss, bias,
    init, seed, numerics), ``dtype``, ``saved_from`` (backend), ``config`` (the training
    configuration), ``history`` (logged epochs and losses), ``epochs_done``, ``classes``
    (the original class labels, strings or integers), ``feature_names``,
    ``optimizer_state`` (names of the optimizer arrays), ``standardize``.
``W0, W1, ...``, ``b0, b1, ...``
    Weights (n_in, n_out) and biases (n_out,) as NumPy arrays in the model's dtype.
``optimizer/<name>``
    Optimizer state arrays (e.g. momentum velocities); plain SGD has none.
``scaler_mean``, ``scaler_scale``
    The standardization fitted on the training data, when ``--standardize`` was used.

Compatibility promise: ``format_version`` is an integer, bumped only when a file could be
misread; every xpnet release reads every earlier format version, and refuses newer ones with
a message to upgrade. New optional keys may appear without a bump (readers ignore unknown keys).

Writes are atomic: the archive is written to a temporary file in the same directory,
flushed to disk, then renamed over the destination with :func:`os.replace`, so a crash or
kill mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .backend import to_numpy
from .data import LabelMap, Scaler
from .errors import XpnetValueError
from .layers import BatchNorm
from .mlp import MLP

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What :func:`load` returns."""

    model: MLP  # rebuilt on the requested backend, weights restored
    config: dict = field(default_factory=dict)  # training configuration as saved
    history: dict = field(default_factory=dict)  # {"epochs": [...], "losses": [...]}
    epochs_done: int = 0  # updates applied so far (resume continues from here)
    optimizer_state: dict = field(default_factory=dict)  # name -> NumPy array
    labels: LabelMap | None = None  # class labels of a classifier trained on file data
    scaler: Scaler | None = None  # standardization of the inputs, if any
    feature_names: list | None = None
    meta: dict = field(default_factory=dict)  # the whole JSON metadata


def save(path, model: MLP, *, config=None, history=None, epochs_done: int = 0, optimizer_state=None,
         labels: LabelMap | None = None, scaler: Scaler | None = None, feature_names=None) -> None:
    """Write ``model`` and its training state to ``path`` atomically (see the module docstring).

    Parameters
    ----------
    path : str or PathLike
        Destination; written exactly as named (no ``.npz`` is appended).
    model : MLP
        On any backend; arrays are copied to the host.
    config : dict, optional
        JSON-serialisable training configuration (learning rate, epochs, data source...).
    history : dict, optional
        ``{"epochs": [int...], "losses": [float...]}``.
    epochs_done : int
        Updates applied so far.
    optimizer_state : dict of str -> array, optional
        Optimizer buffers (any backend), restored by :func:`load` as NumPy arrays.
    labels, scaler, feature_names
        The data mapping needed to predict on new files.
    """
    state = {name: to_numpy(a) for name, a in (optimizer_state or {}).items()}
    spec = model.spec
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xpnet_version": __version__,
        "architecture": {
            "layer_sizes": list(spec.layer_sizes),
            "activation": [a.name for a in spec.hidden],
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
        "history": dict(history or {"epochs": [], "losses": []}),
        "epochs_done": int(epochs_done),
        "optimizer_state": sorted(state),
        "classes": None if labels is None else list(labels.classes),
        "feature_names": None if feature_names is None else list(feature_names),
        "standardize": scaler is not None,
    }
    try:
        text = json.dumps(meta, allow_nan=True)
    except TypeError as exc:
        raise XpnetValueError(f"checkpoint metadata is not JSON-serialisable: {exc}") from None
    arrays = {"meta": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    arrays.update({f"W{i}": to_numpy(W) for i, W in enumerate(model.W)})
    if model.b is not None:
        arrays.update({f"b{i}": to_numpy(b) for i, b in enumerate(model.b)})
    if model.bn is not None:
        for field_name in ("gamma", "beta", "mean", "var"):
            arrays.update({f"bn_{field_name}{i}": to_numpy(a) for i, a in enumerate(getattr(model.bn, field_name))})
    arrays.update({f"optimizer/{name}": a for name, a in state.items()})
    if scaler is not None:
        arrays["scaler_mean"], arrays["scaler_scale"] = scaler.mean, scaler.scale
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it to ``path``.

    On any failure (including KeyboardInterrupt) the temporary file is removed and ``path`` is
    untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise XpnetValueError(f"cannot save to {path!r}: the directory {directory!r} does not exist")
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def load(path, *, backend=None, dtype: str | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save` (on any backend) onto ``backend``.

    Parameters
    ----------
    path : str or PathLike
    backend : str or Backend, optional
        Where to put the model (default as for :class:`~xpnet.MLP`); need not be the one
        it was saved from.
    dtype : {"float32", "float64"}, optional
        Default: the saved dtype, or float32 if the backend's device has no float64.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise XpnetValueError(f"--model {path!r}: no such file; write one with `xpnet train --save {path}`")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise XpnetValueError(f"{path!r} is not an xpnet checkpoint (.npz): {exc}") from None
    with archive:
        if "meta" not in archive.files:
            raise XpnetValueError(f"{path!r} is an .npz but not an xpnet checkpoint (no 'meta' entry)")
        try:
            meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
            _check_format(path, meta)
            arrays = {name: archive[name] for name in archive.files if name != "meta"}
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, zipfile.BadZipFile) as exc:  # pickles refused
            if isinstance(exc, XpnetValueError):
                raise
            raise XpnetValueError(f"{path!r} is not a valid xpnet checkpoint: {exc}") from None
    arch = meta["architecture"]
    n = len(arch["layer_sizes"]) - 1
    model = MLP(arch["layer_sizes"], activation=arch["activation"], output=arch["output"], loss=arch["loss"],
                bias=arch["bias"], init=arch["init"], dtype=_dtype_for(meta["dtype"], dtype, backend),
                backend=backend, seed=arch["seed"], numerics=arch["numerics"], dropout=arch.get("dropout", 0.0),
                batch_norm=arch.get("batch_norm", False))
    model.W = [model.backend.asarray(arrays[f"W{i}"], model.dtype) for i in range(n)]
    if arch["bias"]:
        model.b = [model.backend.asarray(arrays[f"b{i}"], model.dtype) for i in range(n)]
    if model.bn is not None:
        k = n - 1
        model.bn = BatchNorm(*(tuple(model.backend.asarray(arrays[f"bn_{f}{i}"], model.dtype) for i in range(k))
                               for f in ("gamma", "beta", "mean", "var")))
    scaler = Scaler(arrays["scaler_mean"], arrays["scaler_scale"]) if meta.get("standardize") else None
    return Checkpoint(
        model=model,
        config=meta.get("config", {}),
        history=meta.get("history", {}),
        epochs_done=int(meta.get("epochs_done", 0)),
        optimizer_state={name: arrays[f"optimizer/{name}"] for name in meta.get("optimizer_state", [])},
        labels=None if meta.get("classes") is None else LabelMap(meta["classes"]),
        scaler=scaler,
        feature_names=meta.get("feature_names"),
        meta=meta,
    )


def _check_format(path, meta) -> None:
    if meta.get("format") != FORMAT:
        raise XpnetValueError(f"{path!r} is not an xpnet checkpoint (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise XpnetValueError(
            f"{path!r} has checkpoint format version {version!r}, newer than this xpnet {__version__} reads "
            f"(<= {FORMAT_VERSION}); upgrade xpnet (pip install -U xpnet)")


def _dtype_for(saved: str, requested: str | None, backend) -> str:
    if requested is not None:
        return requested
    from .backend import get_backend

    names = get_backend(backend).dtype_names()
    return saved if saved in names else "float32"
