"""Checkpoints: a model, its training state and its data mapping in one ``.npz`` file.

    >>> from xpnet import checkpoint
    >>> checkpoint.save("model.npz", model, config={"learning_rate": 0.5}, epochs_done=100)  # doctest: +SKIP
    >>> ckpt = checkpoint.load("model.npz", backend="torch")    # any backend   # doctest: +SKIP
    >>> ckpt.model.predict(X)                                                   # doctest: +SKIP

Format (backend-neutral, no pickle)
-----------------------------------
A NumPy ``.npz`` archive (a zip of ``.npy`` files, stored or deflated) holding

``meta``
    UTF-8 JSON as a uint8 array: ``format`` (``"xpnet-checkpoint"``), ``format_version``,
    ``xpnet_version``, ``architecture`` (layer sizes, activations, ``user_activations``
    -- the names of the hidden activations defined in the user's code --, output, loss,
    bias, init, seed, numerics, dropout, batch_norm), ``dtype``, ``saved_from``
    (backend), ``config`` (the training configuration), ``history`` (logged epochs and
    losses), ``epochs_done``, ``classes`` (the original class labels, strings or
    integers), ``feature_names``, ``optimizer_state`` (names of the optimizer arrays),
    ``standardize``.
``W0, W1, ...``, ``b0, b1, ...``
    Weights (n_in, n_out) and biases (n_out,) as NumPy arrays in the model's dtype.
``bn_gamma0, bn_beta0, bn_mean0, bn_var0, ...``
    Batch-norm scales, shifts and running statistics per hidden layer (with batch norm).
``optimizer/<name>``
    Optimizer state arrays (e.g. momentum velocities ``velocity_<i>``, shaped like the
    i-th parameter); plain SGD has none.
``scaler_mean``, ``scaler_scale``
    The standardization fitted on the training data, when ``--standardize`` was used.

Compatibility promise: ``format_version`` is an integer, bumped only when a file could be
misread; every xpnet release reads every earlier format version, and refuses newer ones with
a message to upgrade. New optional keys may appear without a bump (readers ignore unknown keys).
A file written by another major version of xpnet loads with a ``UserWarning``.

Loading trusts nothing (the guarantees of safetensors): no code runs (no pickle); only the
members listed above are read, never all of them; the meta is bounded (:data:`META_MAX_BYTES`,
:data:`META_MAX_DEPTH`) and checked (types, ranges, architecture) first; the memory the model
needs is checked (:func:`xpnet.memory.require`) before anything of its size is allocated;
each array's ``.npy`` header is checked against the architecture and against the zip entry's
sizes before its data is inflated, then its values must be finite. Any malformed file is
one :class:`~xpnet.XpnetValueError` naming the file and what is wrong.

Writes are atomic and safe (:func:`atomic_write`): the destination is checked first
(:func:`check_destination`: a regular file or a new name in a writable directory; a symbolic
link is written through), the archive goes to a temporary file in the same directory, is
flushed to disk, renamed over the destination with :func:`os.replace`, and the directory is
flushed too, so a crash or kill mid-write leaves the previous file intact. When a save
fails anyway (disk full, read-only, permission), :func:`save` writes the same checkpoint to
a rescue file and raises :class:`SaveError` naming it. docs/reliability.md has the details.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import math
import os
import re
import secrets
import stat
import struct
import tempfile
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .. import __version__, memory
from ..backend import get_backend, itemsize, to_numpy
from ..core import activations
from ..core.layers import BatchNorm
from ..data.labels import LabelMap
from ..data.preprocess import Scaler
from ..errors import XpnetError, XpnetTypeError, XpnetValueError, check_number
from ..mlp import MLP

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1
META_MAX_BYTES = 64 << 20  # a meta entry larger than this is refused (and never written)
META_MAX_DEPTH = 64  # JSON nesting deeper than this is refused (xpnet's own meta nests 4 deep)
NPY_HEADER_MAX = 10_000  # bytes of an .npy header (NumPy's own default bound)
MAX_EPOCHS = 2**63 - 1
MAX_LAYER_SIZE = 2**62  # beyond any memory; keeps the arithmetic on sizes in range
_DTYPES = ("float32", "float64")


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


# -- saving ------------------------------------------------------------------------------------

def save(path, model: MLP, *, config=None, history=None, epochs_done: int = 0, optimizer_state=None,
         labels: LabelMap | None = None, scaler: Scaler | None = None, feature_names=None,
         train_config=None) -> None:
    """Write ``model`` and its training state to ``path`` atomically (see the module docstring).

    Parameters
    ----------
    path : str or PathLike
        Destination; written exactly as named (no ``.npz`` is appended). A symbolic link is
        written through (the file it points to is replaced, the link kept).
    model : MLP
        On any backend; arrays are copied to the host. Hidden activations defined in the
        user's code are recorded by name (``architecture.user_activations``); pass them
        again to :func:`load`.
    config : dict, optional
        JSON-serialisable training configuration (learning rate, epochs, data source...).
    history : dict, optional
        ``{"epochs": [int...], "losses": [float...]}``.
    epochs_done : int
        Updates applied so far (>= 0).
    optimizer_state : dict of str -> array, optional
        Optimizer buffers (any backend), restored by :func:`load` as NumPy arrays.
    labels, scaler, feature_names
        The data mapping needed to predict on new files.
    train_config : TrainConfig or dict, optional
        The run's training configuration, recorded as :meth:`TrainConfig.to_dict` (meta key
        ``train_config``; read it back with ``TrainConfig.from_dict(ckpt.meta["train_config"])``).

    Raises
    ------
    SaveError
        When the file cannot be written (the destination is refused, the disk is full,
        read-only, or permission is denied). The same checkpoint is first written to a
        rescue file (see :func:`rescue_directories`), named by the error's message and its
        ``rescue_path`` attribute.
    """
    check_number("epochs_done", epochs_done, low=0, high=MAX_EPOCHS, integer=True)
    arrays = _arrays(model, config, history, int(epochs_done), optimizer_state, labels, scaler, feature_names,
                     train_config)
    try:
        atomic_write(path, lambda handle: np.savez(handle, **arrays))
    except (OSError, XpnetValueError) as exc:
        raise _rescue(os.fspath(path), arrays, exc) from exc


def _arrays(model, config, history, epochs_done, optimizer_state, labels, scaler, feature_names,
            train_config=None) -> dict:
    """The archive's arrays by name, the JSON meta first."""
    state = {name: to_numpy(a) for name, a in (optimizer_state or {}).items()}
    spec = model.spec
    meta = {
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
        "history": dict(history or {"epochs": [], "losses": []}),
        "epochs_done": epochs_done,
        "optimizer_state": sorted(state),
        "classes": None if labels is None else list(labels.classes),
        "feature_names": None if feature_names is None else list(feature_names),
        "standardize": scaler is not None,
    }
    if train_config is not None:
        meta["train_config"] = train_config.to_dict() if hasattr(train_config, "to_dict") else dict(train_config)
    try:
        text = json.dumps(meta, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise XpnetValueError(f"checkpoint metadata is not JSON-serialisable: {exc}") from None
    if len(text) > META_MAX_BYTES or _json_depth(text) > META_MAX_DEPTH:  # a file load() would refuse
        raise XpnetValueError(f"checkpoint metadata is {memory.format_bytes(len(text))} nested {_json_depth(text)} "
                              f"deep, beyond the {memory.format_bytes(META_MAX_BYTES)} and {META_MAX_DEPTH} levels "
                              "a checkpoint may hold; keep config and history smaller")
    arrays = {"meta": np.frombuffer(text, dtype=np.uint8)}
    arrays.update({f"W{i}": to_numpy(W) for i, W in enumerate(model.W)})
    if model.b is not None:
        arrays.update({f"b{i}": to_numpy(b) for i, b in enumerate(model.b)})
    if model.bn is not None:
        for field_name in ("gamma", "beta", "mean", "var"):
            arrays.update({f"bn_{field_name}{i}": to_numpy(a) for i, a in enumerate(getattr(model.bn, field_name))})
    arrays.update({f"optimizer/{name}": a for name, a in state.items()})
    if scaler is not None:
        arrays["scaler_mean"], arrays["scaler_scale"] = scaler.mean, scaler.scale
    return arrays


def _user_defined(hidden) -> list:
    """Names of the user-defined activations among ``hidden``; one object per name."""
    by_name: dict = {}
    for act in hidden:
        if by_name.setdefault(act.name, act) != act:
            raise XpnetValueError(f"two different activations are called {act.name!r} in this model; give them "
                                  "distinct names so that the checkpoint can tell them apart")
    return sorted(name for name, act in by_name.items() if not activations.is_builtin(act))


def rescue_directories(failed: str) -> list:
    """Where :func:`save` puts a checkpoint it could not write to ``failed`` (a directory):
    the current directory, then the system's temporary directory, never ``failed`` itself."""
    found = []
    for directory in (os.getcwd, tempfile.gettempdir):
        try:
            real = os.path.realpath(directory())
        except OSError:  # the current directory was removed
            continue
        if real != os.path.realpath(failed) and real not in found:
            found.append(real)
    return found


def _rescue(path: str, arrays: dict, exc: BaseException) -> SaveError:
    """Write ``arrays`` to a rescue file; the :class:`SaveError` to raise, naming it."""
    reason = _reason(exc)
    name = f"xpnet-rescue-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{os.path.basename(path) or 'model.npz'}"
    failures = []
    for directory in rescue_directories(os.path.dirname(os.path.abspath(path))):
        target = os.path.join(directory, name)
        try:
            atomic_write(target, lambda handle: np.savez(handle, **arrays))
        except (OSError, XpnetValueError) as again:
            failures.append(f"{directory}: {_reason(again)}")
            continue
        return SaveError(f"could not save the checkpoint to {path!r} ({reason}); the weights were saved to "
                         f"{target!r} instead: move that file where you want it, or resume from it", target)
    tried = "; ".join(failures) or "no other directory to try"
    return SaveError(f"could not save the checkpoint to {path!r} ({reason}) and no rescue file could be written "
                     f"({tried}); the trained weights are lost when this process ends")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())


# -- safe writes -------------------------------------------------------------------------------

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_destination(path) -> str:
    """Check that ``path`` can be written safely; return the file that will really be replaced.

    Refused, with one clear :class:`~xpnet.XpnetValueError` and before any work: a
    destination that exists and is not a regular file (a directory, FIFO, device or socket);
    a symbolic link that dangles or points to such a file; an existing file that is not
    writable; a directory that does not exist or is not writable (including a read-only
    filesystem). A symbolic link to a regular file is accepted: the file it points to is
    replaced and the link is kept (the returned path is that file's).

    Call it before a long computation whose result goes to ``path`` (``xpnet train --save``
    does, before training); :func:`atomic_write` calls it again.
    """
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise XpnetValueError(f"cannot write {path!r}: name a file")
    shown = repr(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise XpnetValueError(f"cannot write {shown}: {_path_problem(path, exc)}") from None
    target = path
    if info is not None and stat.S_ISLNK(info.st_mode):
        target = os.path.realpath(path)
        shown = f"{path!r} (a link to {target!r})"
        try:
            info = os.stat(path)
        except FileNotFoundError:
            raise XpnetValueError(f"cannot write {path!r}: it is a symbolic link to {os.readlink(path)!r}, which "
                                  "does not exist; remove the link or name another file") from None
        except OSError as exc:
            raise XpnetValueError(f"cannot write {shown}: {_path_problem(path, exc)}") from None
    if info is not None:
        for test, kind in _KINDS:
            if test(info.st_mode):
                raise XpnetValueError(f"cannot write {shown}: it is {kind}, not a regular file; name a file")
        if not stat.S_ISREG(info.st_mode):
            raise XpnetValueError(f"cannot write {shown}: it is not a regular file; name a file")
        if not os.access(target, os.W_OK):
            raise XpnetValueError(f"cannot write {shown}: the file is not writable ({_why_not_writable(target)}); "
                                  "make it writable or name another file")
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.exists(directory):
        raise XpnetValueError(f"cannot save to {path!r}: the directory {directory!r} does not exist; create it first")
    if not os.path.isdir(directory):
        raise XpnetValueError(f"cannot write {path!r}: {directory!r} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise XpnetValueError(f"cannot write {path!r}: the directory {directory!r} is not writable "
                              f"({_why_not_writable(directory)}); choose another directory")
    return os.path.abspath(target)


def _path_problem(path: str, exc: OSError) -> str:
    if isinstance(exc, NotADirectoryError):
        return f"{os.path.dirname(os.path.abspath(path))!r} is not a directory"
    return exc.strerror or str(exc)


def _why_not_writable(path: str) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "a read-only filesystem"
    except (OSError, AttributeError):
        pass
    return "permission denied"


def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it to ``path``.

    The destination is checked first (:func:`check_destination`). The temporary file is
    ``.<name>.<pid>.<random>.tmp`` in the destination's directory, locked while it is
    written; temporary files of writers that died (killed mid-write) are removed by the
    next write of the same name. A new file gets the permissions the umask gives
    (``0o666 & ~umask``); an existing one keeps its mode (and owner, where permitted).
    After the rename the directory is flushed to disk too. On any failure (including
    KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    """
    target = check_destination(path)
    directory, name = os.path.split(target)
    _remove_stale_temps(directory, name)
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    temp, fd = _create_temp(directory, name)
    try:
        if existing is not None:
            _keep_mode_and_owner(fd, existing)
        with os.fdopen(fd, "wb") as handle:  # closing it releases the lock, after the rename
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _temp_key(name: str) -> str:
    # a file name holds at most 255 bytes: leave room for ".<pid>.<8 hex>.tmp"
    return name if len(name.encode()) <= 200 else name.encode()[:200].decode(errors="ignore")


def _create_temp(directory: str, name: str) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        temp = os.path.join(directory, f".{_temp_key(name)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, flags, 0o666)  # the kernel applies the umask
        except FileExistsError:
            continue
        _lock(fd, blocking=True)
        return temp, fd


def _lock(fd: int, blocking: bool) -> bool:
    """Take an exclusive flock on ``fd``; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the pid alone decides
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # a filesystem without locks: the pid alone decides
        return True
    return True


def _remove_stale_temps(directory: str, name: str) -> None:
    """Remove ``.<name>.<pid>.<random>.tmp`` files left by writers that died mid-write.

    A temporary file is stale when its pid is not a running process here and nobody holds
    its lock (a writer on another machine sharing the directory holds it).
    """
    pattern = re.compile(re.escape(f".{_temp_key(name)}.") + r"(\d{1,10})\.[0-9a-f]{8}\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for entry in names:
        match = pattern.fullmatch(entry)
        if match is None or _alive(int(match[1])):
            continue
        temp = os.path.join(directory, entry)
        try:
            fd = os.open(temp, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd, blocking=False):
                os.unlink(temp)
        except OSError:
            pass
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a writer's pid: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process, or not a pid at all: leave it
    return True


def _keep_mode_and_owner(fd: int, existing: os.stat_result) -> None:
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    current = os.fstat(fd)
    if (current.st_uid, current.st_gid) != (existing.st_uid, existing.st_gid):
        try:
            os.fchown(fd, existing.st_uid, existing.st_gid)
        except OSError:  # only root may give a file away: the new file is then ours
            pass


def _fsync_directory(directory: str) -> None:
    """Flush the rename to disk (the new directory entry), where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass
    finally:
        os.close(fd)


# -- loading -----------------------------------------------------------------------------------

def load(path, *, backend=None, dtype: str | None = None, activations=None) -> Checkpoint:
    """Read a checkpoint written by :func:`save` (on any backend) onto ``backend``.

    Nothing in the file is trusted: see the module docstring for what is checked, and in
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
    handle, size = _open_regular(path)
    with handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
                struct.error) as exc:
            raise XpnetValueError(f"{path!r} is not an xpnet checkpoint (.npz): {_reason(exc)}") from None
        with archive:
            reader = _Reader(path, archive, size)
            meta = reader.meta()
            layout = _Layout.check(path, meta)
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
    model = _build(path, layout, hidden, arrays, target, dtype_name)
    scaler = Scaler(arrays["scaler_mean"], arrays["scaler_scale"]) if layout.standardize else None
    return Checkpoint(
        model=model,
        config=layout.config,
        history=layout.history,
        epochs_done=layout.epochs_done,
        optimizer_state={name: arrays[f"optimizer/{name}"] for name in layout.optimizer_names},
        labels=None if layout.classes is None else LabelMap(layout.classes),
        scaler=scaler,
        feature_names=layout.feature_names,
        meta=meta,
    )


def _bad(path: str, what: str) -> XpnetValueError:
    return XpnetValueError(f"{path!r} is not a valid xpnet checkpoint: {what}")


def _open_regular(path: str):
    """``(binary file, size)`` of ``path``, refused unless it is an existing regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise XpnetValueError(f"--model {path!r}: no such file; write one with `xpnet train --save {path}`") from None
    except OSError as exc:
        raise XpnetValueError(f"cannot read {path!r}: {_path_problem(path, exc)}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((k for test, k in _KINDS if test(info.st_mode)), None)
        raise XpnetValueError(f"{path!r} is not a regular file (it is {kind or 'special'}); a checkpoint is an "
                              ".npz file")
    try:  # O_NONBLOCK: were it swapped for a FIFO since, opening it does not hang
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise XpnetValueError(f"cannot read {path!r}: {_path_problem(path, exc)}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise XpnetValueError(f"{path!r} is not a regular file; a checkpoint is an .npz file")
    return os.fdopen(fd, "rb"), info.st_size


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


def _hidden_activations(path: str, layout: _Layout, given: dict) -> list:
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


def _require_memory(path: str, layout: _Layout, target, dtype_name: str) -> None:
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


def _build(path: str, layout: _Layout, hidden: list, arrays: dict, target, dtype_name: str) -> MLP:
    """The model on ``target`` with the checked arrays as its weights."""
    n = len(layout.sizes) - 1
    weights = ([arrays[f"W{i}"] for i in range(n)], [arrays[f"b{i}"] for i in range(n)] if layout.bias else None)
    try:  # built from the checked arrays: no random weights drawn first
        model = MLP(list(layout.sizes), activation=hidden, output=layout.output, loss=layout.loss, bias=layout.bias,
                    init=layout.init, dtype=dtype_name, backend=target, seed=layout.seed, numerics=layout.numerics,
                    dropout=layout.dropout, batch_norm=layout.batch_norm, weights=weights)
    except (XpnetError, ValueError, TypeError, OverflowError) as exc:  # e.g. a loss that does not fit the output
        raise _bad(path, _reason(exc)) from None
    if layout.batch_norm:
        model.bn = BatchNorm(*(tuple(target.asarray(arrays[f"bn_{f}{i}"], model.dtype) for i in range(n - 1))
                               for f in ("gamma", "beta", "mean", "var")))
    return model


def _dtype_for(saved: str, requested: str | None, target) -> str:
    if requested is not None:
        return requested
    return saved if saved in target.dtype_names() else "float32"


# -- the meta, checked -------------------------------------------------------------------------

def _json_depth(text: bytes) -> int:
    """How deeply ``text`` (JSON) nests arrays and objects, strings left out."""
    bare = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", text, flags=re.DOTALL)
    codes = np.frombuffer(bare, dtype=np.uint8)
    if codes.size == 0:
        return 0
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.max(np.cumsum(step), initial=0))


_NAME = re.compile(r"[^\x00/\\]{1,200}(/[^\x00/\\]{1,200})*")


@dataclass(frozen=True)
class _Layout:
    """The meta of a checkpoint, every field checked (see :meth:`check`)."""

    sizes: tuple
    activation: tuple
    user_activations: frozenset
    output: str
    loss: str
    bias: bool
    init: str
    seed: int
    numerics: str
    dropout: float
    batch_norm: bool
    dtype: str
    major: str
    epochs_done: int
    optimizer_names: tuple
    standardize: bool
    classes: list | None
    feature_names: list | None
    config: dict
    history: dict

    @classmethod
    def check(cls, path: str, meta) -> _Layout:
        """Every field of ``meta`` checked; the first problem is one error naming ``path``."""
        from ..core import init as init_module
        from ..core import losses
        from ..core.network import NUMERICS

        bad = _Checker(path)
        if not isinstance(meta, dict):
            raise bad.fail(f"its meta is not a JSON object (it is a JSON {type(meta).__name__})")
        if meta.get("format") != FORMAT:
            raise XpnetValueError(f"{path!r} is not an xpnet checkpoint (format {meta.get('format')!r})")
        version = meta.get("format_version")
        if not isinstance(version, int) or not bad.whole(version, 1, None):
            raise bad.fail(f"format_version {version!r} is not a whole number >= 1")
        if version > FORMAT_VERSION:
            raise XpnetValueError(
                f"{path!r} has checkpoint format version {version!r}, newer than this xpnet {__version__} reads "
                f"(<= {FORMAT_VERSION}); upgrade xpnet (git pull in your clone, then pip install .)")
        written_by = meta.get("xpnet_version")
        if not isinstance(written_by, str) or not 0 < len(written_by) <= 64:
            raise bad.fail(f"xpnet_version {_short(written_by)} is not a version string")
        arch = meta.get("architecture")
        if not isinstance(arch, dict):
            raise bad.fail(f"architecture {_short(arch)} is not a JSON object")
        sizes = arch.get("layer_sizes")
        if (not isinstance(sizes, list) or not 2 <= len(sizes) <= 10_000
                or not all(bad.whole(s, 1, MAX_LAYER_SIZE) for s in sizes)):
            raise bad.fail(f"architecture.layer_sizes {_short(sizes)} is not a list of at least two whole numbers "
                           ">= 1")
        acts = arch.get("activation")
        if not isinstance(acts, list) or len(acts) != len(sizes) - 2 or not all(bad.name(a) for a in acts):
            raise bad.fail(f"architecture.activation {_short(acts)} is not a list of {len(sizes) - 2} names (one per "
                           "hidden layer)")
        user = arch.get("user_activations", [])
        if not isinstance(user, list) or not all(bad.name(a) for a in user):
            raise bad.fail(f"architecture.user_activations {_short(user)} is not a list of names")
        choices = {"output": activations.OUTPUTS, "loss": tuple(losses.LOSSES), "init": init_module.SCHEMES,
                   "numerics": NUMERICS}
        for key, allowed in choices.items():
            if arch.get(key) not in allowed or not isinstance(arch.get(key), str):
                raise bad.fail(f"architecture.{key} {_short(arch.get(key))} is not one of {', '.join(allowed)}")
        for key in ("bias", "batch_norm"):
            if not isinstance(arch.get(key, False), bool):
                raise bad.fail(f"architecture.{key} {_short(arch.get(key))} is not true or false")
        if not bad.whole(arch.get("seed"), 0, 2**64 - 1):
            raise bad.fail(f"architecture.seed {_short(arch.get('seed'))} is not a whole number >= 0")
        dropout = arch.get("dropout", 0.0)
        if not bad.number(dropout) or not 0 <= dropout < 1:
            raise bad.fail(f"architecture.dropout {_short(dropout)} is not a rate in [0, 1)")
        if meta.get("dtype") not in _DTYPES:
            raise bad.fail(f"dtype {_short(meta.get('dtype'))} is not one of {', '.join(_DTYPES)}")
        epochs_done = meta.get("epochs_done", 0)
        if not bad.whole(epochs_done, 0, MAX_EPOCHS):
            raise bad.fail(f"epochs_done {_short(epochs_done)} is not a whole number between 0 and 2**63 - 1")
        layout = cls(sizes=tuple(sizes), activation=tuple(acts), user_activations=frozenset(user),
                     output=arch["output"], loss=arch["loss"], bias=arch.get("bias", True), init=arch["init"],
                     seed=arch["seed"], numerics=arch["numerics"], dropout=float(dropout),
                     batch_norm=arch.get("batch_norm", False), dtype=meta["dtype"],
                     major=written_by.split(".")[0], epochs_done=epochs_done,
                     optimizer_names=tuple(_check_optimizer_names(bad, meta.get("optimizer_state", []))),
                     standardize=_check_bool(bad, meta, "standardize"),
                     classes=None, feature_names=None,
                     config=_check_config(bad, meta.get("config", {})),
                     history=_check_history(bad, meta.get("history", {"epochs": [], "losses": []})))
        return dataclasses.replace(layout, classes=_check_classes(bad, layout, meta.get("classes")),
                                   feature_names=_check_feature_names(bad, layout, meta.get("feature_names")))

    def shapes(self) -> dict:
        """Name -> shape of every model array the file must hold (not the optimizer's)."""
        shapes: dict[str, tuple] = {}
        pairs = list(zip(self.sizes[:-1], self.sizes[1:]))
        for i, (a, b) in enumerate(pairs):
            shapes[f"W{i}"] = (a, b)
        if self.bias:
            shapes.update({f"b{i}": (b,) for i, (a, b) in enumerate(pairs)})
        if self.batch_norm:
            for f in ("gamma", "beta", "mean", "var"):
                shapes.update({f"bn_{f}{i}": (w,) for i, w in enumerate(self.sizes[1:-1])})
        return shapes

    def parameter_shapes(self) -> list:
        """Shapes of :meth:`xpnet.MLP.parameters`, in its order."""
        shapes = self.shapes()
        names = [f"W{i}" for i in range(len(self.sizes) - 1)] + [f"b{i}" for i in range(len(self.sizes) - 1)] * \
            self.bias
        if self.batch_norm:
            names += [f"bn_gamma{i}" for i in range(len(self.sizes) - 2)] + \
                [f"bn_beta{i}" for i in range(len(self.sizes) - 2)]
        return [shapes[name] for name in names]

    def optimizer_shape(self, name: str) -> tuple | None:
        """The shape ``optimizer/<name>_<i>`` must have (the i-th parameter's); None when the
        name has no index (then it must be a scalar or shaped like some parameter)."""
        match = re.fullmatch(r".*_(\d{1,6})", name)
        shapes = self.parameter_shapes()
        if match is None or int(match[1]) >= len(shapes):
            return None
        return shapes[int(match[1])]

    def largest(self) -> tuple:
        return max(self.parameter_shapes(), key=math.prod)


class _Checker:
    """Type tests that never raise on hostile values, and the error naming the file."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, what: str) -> XpnetValueError:
        return _bad(self.path, what)

    @staticmethod
    def whole(value, low, high) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool) and value >= low
                and (high is None or value <= high))

    @staticmethod
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    @staticmethod
    def name(value) -> bool:
        return isinstance(value, str) and 0 < len(value) <= 200


def _short(value) -> str:
    """A hostile value shown in at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_bool(bad: _Checker, meta: dict, key: str) -> bool:
    value = meta.get(key, False)
    if not isinstance(value, bool):
        raise bad.fail(f"{key} {_short(value)} is not true or false")
    return value


def _check_config(bad: _Checker, config) -> dict:
    if not isinstance(config, dict):
        raise bad.fail(f"config {_short(config)} is not a JSON object")
    return config


def _check_history(bad: _Checker, history) -> dict:
    if not isinstance(history, dict):
        raise bad.fail(f"history {_short(history)} is not a JSON object")
    epochs, losses = history.get("epochs", []), history.get("losses", [])
    if not isinstance(epochs, list) or not all(bad.whole(e, 0, MAX_EPOCHS) for e in epochs):
        raise bad.fail("history.epochs is not a list of whole numbers >= 0")
    if not isinstance(losses, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in losses):
        raise bad.fail("history.losses is not a list of numbers")
    if len(epochs) != len(losses):
        raise bad.fail(f"history has {len(epochs)} epochs but {len(losses)} losses")
    return history


def _check_optimizer_names(bad: _Checker, names) -> list:
    if (not isinstance(names, list) or not all(isinstance(n, str) and _NAME.fullmatch(n) for n in names)
            or len(set(names)) != len(names)):
        raise bad.fail(f"optimizer_state {_short(names)} is not a list of distinct array names")
    return names


def _check_classes(bad: _Checker, layout: _Layout, classes):
    if classes is None:
        return None
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)
            or len(set(classes)) != len(classes)):
        raise bad.fail(f"classes {_short(classes)} is not a list of distinct labels (strings or whole numbers)")
    if layout.output == "softmax" and len(classes) != layout.sizes[-1]:
        raise bad.fail(f"classes has {len(classes)} labels for {layout.sizes[-1]} outputs")
    return classes


def _check_feature_names(bad: _Checker, layout: _Layout, names):
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad.fail(f"feature_names {_short(names)} is not a list of strings")
    if len(names) != layout.sizes[0]:
        raise bad.fail(f"feature_names has {len(names)} names for {layout.sizes[0]} inputs")
    return names


# -- the arrays, each checked before it is inflated ---------------------------------------------

class _Reader:
    """Reads the expected members of an open ``.npz``, checking each before its data."""

    def __init__(self, path: str, archive: zipfile.ZipFile, size: int):
        self.path, self.archive, self.size = path, archive, size
        self.counts = collections.Counter(archive.namelist())

    def meta(self):
        """The JSON meta: bounded in size and nesting, UTF-8, parsed."""
        if "meta.npy" not in self.counts:
            raise XpnetValueError(f"{self.path!r} is an .npz but not an xpnet checkpoint (no 'meta' entry)")
        info = self._entry("meta")
        if info.file_size > META_MAX_BYTES + NPY_HEADER_MAX:
            raise _bad(self.path, f"its meta entry holds {memory.format_bytes(info.file_size)}, larger than the "
                                  f"{memory.format_bytes(META_MAX_BYTES)} a checkpoint's meta may be")
        raw = self.read("meta", None, ("uint8",)).tobytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(self.path, f"its meta is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        depth = _json_depth(raw)
        if depth > META_MAX_DEPTH:
            raise _bad(self.path, f"its meta is JSON nested more than {META_MAX_DEPTH} levels deep ({depth})")
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise _bad(self.path, f"its meta is not valid JSON ({' '.join(str(exc).split())[:200]})") from None

    def arrays(self, layout: _Layout) -> dict:
        """Every array ``layout`` calls for, read and checked (shape, dtype, finite values)."""
        out = {name: self.read(name, shape, (layout.dtype,)) for name, shape in layout.shapes().items()}
        for i in range(len(layout.sizes) - 2 if layout.batch_norm else 0):
            if np.any(out[f"bn_var{i}"] < 0):
                raise _bad(self.path, f"the array 'bn_var{i}' holds negative variances")
        for name in layout.optimizer_names:
            member = f"optimizer/{name}"
            out[member] = self.read(member, layout.optimizer_shape(name), _DTYPES,
                                    any_of=[()] + layout.parameter_shapes())
        if layout.standardize:
            for name in ("scaler_mean", "scaler_scale"):
                out[name] = self.read(name, (layout.sizes[0],), _DTYPES).astype(np.float64, copy=False)
            if np.any(out["scaler_scale"] == 0):
                raise _bad(self.path, "the array 'scaler_scale' holds zeros (a scale divides the inputs)")
        return out

    def _entry(self, name: str) -> zipfile.ZipInfo:
        entry = f"{name}.npy"
        count = self.counts.get(entry, 0)
        if count == 0:
            raise _bad(self.path, f"it has no array {name!r}")
        if count > 1:
            raise _bad(self.path, f"the array {name!r} appears more than once")
        info = self.archive.getinfo(entry)
        if info.flag_bits & 0x1:
            raise _bad(self.path, f"the array {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(self.path, f"the array {name!r} uses zip compression method {info.compress_type} (an .npz "
                                  "is stored or deflated)")
        if info.header_offset + info.compress_size > self.size:
            raise _bad(self.path, f"the array {name!r} claims more bytes than the file has (is it truncated?)")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise _bad(self.path, f"the array {name!r} has inconsistent zip sizes")
        return info

    def read(self, name: str, shape: tuple | None, dtypes: tuple, any_of=None) -> np.ndarray:
        """Member ``name`` as a NumPy array, refused unless its header declares one of
        ``dtypes`` and ``shape`` (None: 1-D for the meta, or one of ``any_of``) and its
        zip entry is exactly that size; its data is read only then."""
        info = self._entry(name)
        try:
            with self.archive.open(info) as stream:
                declared, fortran, dtype, start = self._header(name, stream)
                self._check_header(name, declared, dtype, shape, dtypes, any_of)
                nbytes = math.prod(declared) * dtype.itemsize
                if info.file_size < start + nbytes:
                    raise _bad(self.path, f"the array {name!r} is truncated ({info.file_size - start} bytes of data "
                                          f"for shape {declared} {dtype.name}, which needs {nbytes})")
                if info.file_size > start + nbytes:
                    raise _bad(self.path, f"the array {name!r} has {info.file_size - start - nbytes} bytes after its "
                                          "data")
                data = self._data(name, stream, dtype, math.prod(declared))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError,
                ValueError) as exc:
            if isinstance(exc, XpnetValueError):
                raise
            raise _bad(self.path, f"the array {name!r} cannot be read ({_reason(exc)})") from None
        array = data.reshape(declared, order="F" if fortran else "C")
        if dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise _bad(self.path, f"the array {name!r} holds NaN or Inf (its values must be finite)")
        return array

    def _header(self, name: str, stream) -> tuple:
        """``(shape, fortran_order, dtype, data offset)`` from an ``.npy`` header of bounded size."""
        magic = stream.read(8)
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
            raise _bad(self.path, f"the array {name!r} is not an .npy array")
        width = 2 if magic[6] == 1 else 4
        length_bytes = stream.read(width)
        if len(length_bytes) < width:
            raise _bad(self.path, f"the array {name!r} is truncated")
        length = int.from_bytes(length_bytes, "little")
        if length > NPY_HEADER_MAX:
            raise _bad(self.path, f"the array {name!r} has a {length}-byte header (at most {NPY_HEADER_MAX})")
        header = stream.read(length)
        if len(header) < length:
            raise _bad(self.path, f"the array {name!r} is truncated")
        parse = np.lib.format.read_array_header_1_0 if magic[6] == 1 else np.lib.format.read_array_header_2_0
        try:
            shape, fortran, dtype = parse(io.BytesIO(length_bytes + header), max_header_size=NPY_HEADER_MAX)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
            raise _bad(self.path, f"the array {name!r} has a malformed header ({_reason(exc)[:200]})") from None
        return tuple(shape), bool(fortran), dtype, 8 + width + length

    def _check_header(self, name, declared, dtype, shape, dtypes, any_of) -> None:
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            kind = "objects (a pickle)" if dtype.hasobject else f"records {dtype.descr}"
            raise _bad(self.path, f"the array {name!r} holds {_short(kind)}; it must hold {' or '.join(dtypes)}")
        if dtype.newbyteorder("=").name not in dtypes:
            raise _bad(self.path, f"the array {name!r} holds {dtype.name} numbers; it must hold {' or '.join(dtypes)}")
        if shape is not None:
            if declared != shape:
                raise _bad(self.path, f"the array {name!r} has shape {declared}; the architecture needs {shape}")
        elif any_of is not None:
            if declared not in any_of:
                raise _bad(self.path, f"the array {name!r} has shape {declared}, which is no parameter's shape")
        elif len(declared) != 1:
            raise _bad(self.path, f"the array {name!r} has shape {declared}; it must be 1-D (UTF-8 bytes)")
        elif declared[0] > META_MAX_BYTES:
            raise _bad(self.path, f"its meta entry holds {memory.format_bytes(declared[0])}, larger than the "
                                  f"{memory.format_bytes(META_MAX_BYTES)} a checkpoint's meta may be")

    def _data(self, name: str, stream, dtype, count: int) -> np.ndarray:
        out = np.empty(count, dtype=dtype)
        view = out.data.cast("B")
        done = 0
        while done < len(view):
            got = stream.readinto(view[done:])
            if not got:
                raise _bad(self.path, f"the array {name!r} is truncated")
            done += got
        stream.read(1)  # reaching the end makes zipfile check the CRC
        if not dtype.isnative:
            out = out.byteswap().view(dtype.newbyteorder("="))
        return out
