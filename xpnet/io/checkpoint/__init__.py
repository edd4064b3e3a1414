"""Checkpoints: a model, its training state and its data mapping in one ``.npz`` file.

    >>> from xpnet import checkpoint
    >>> checkpoint.save("model.npz", model, train_config=xpnet.TrainConfig(), epochs_done=100)  # doctest: +SKIP
    >>> ckpt = checkpoint.load("model.npz", backend="torch")    # any backend   # doctest: +SKIP
    >>> ckpt.model.predict(X)                                                   # doctest: +SKIP

A NumPy ``.npz`` archive (a zip of ``.npy`` files, stored or deflated; no pickle) holding a
JSON ``meta`` (architecture, dtype, the :class:`~xpnet.TrainConfig` under ``train_config``,
the run's other settings under ``config``, history, classes, feature names, versions), the
weights ``W<i>``, ``b<i>``, batch norm's ``bn_{gamma,beta,mean,var}<i>``, the optimizer's
arrays ``optimizer/<name>`` and the standardization ``scaler_mean``, ``scaler_scale``.
docs/reliability.md ("The checkpoint format") lists every key and the compatibility promise.

The jobs are split: :mod:`.writer` (:func:`save`, rescue on failure), :mod:`.loader`
(:func:`load`, which trusts nothing) with :mod:`.meta` (the meta checked) and
:mod:`.members` (the arrays checked before they are inflated), :mod:`.schema` (names and
limits). The atomic writer is :mod:`xpnet.io.atomic`'s (re-exported here, as before).
"""

from ..atomic import atomic_write, check_destination, rescue_directories
from .loader import Checkpoint, load
from .schema import FORMAT, FORMAT_VERSION, META_MAX_BYTES, META_MAX_DEPTH
from .writer import SaveError, save

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_MAX_BYTES",
    "META_MAX_DEPTH",
    "Checkpoint",
    "SaveError",
    "atomic_write",
    "check_destination",
    "load",
    "rescue_directories",
    "save",
]
