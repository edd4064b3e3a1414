"""A checkpoint's JSON meta, every field checked before anything of the sizes it names is allocated."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from ... import __version__
from ...core import activations, losses
from ...core import init as init_module
from ...core.network import NUMERICS
from ...errors import XpnetError, XpnetValueError
from ...training.config import TrainConfig
from .schema import BN_FIELDS, DTYPES, FORMAT, FORMAT_VERSION, MAX_EPOCHS, MAX_LAYER_SIZE, MEMBER_NAME, bad, short


@dataclass(frozen=True)
class Layout:
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
    major: str  # the major version of the xpnet that wrote it
    epochs_done: int
    optimizer_names: tuple
    standardize: bool
    classes: list | None
    feature_names: list | None
    config: dict
    train_config: TrainConfig | None
    history: dict

    @classmethod
    def check(cls, path: str, meta) -> Layout:
        """Every field of ``meta`` checked; the first problem is one error naming ``path``."""
        fail = _Checker(path)
        if not isinstance(meta, dict):
            raise fail(f"its meta is not a JSON object (it is a JSON {type(meta).__name__})")
        written_by = _check_version(path, fail, meta)
        arch = meta.get("architecture")
        if not isinstance(arch, dict):
            raise fail(f"architecture {short(arch)} is not a JSON object")
        if meta.get("dtype") not in DTYPES:
            raise fail(f"dtype {short(meta.get('dtype'))} is not one of {', '.join(DTYPES)}")
        epochs_done = meta.get("epochs_done", 0)
        if not fail.whole(epochs_done, 0, MAX_EPOCHS):
            raise fail(f"epochs_done {short(epochs_done)} is not a whole number between 0 and 2**63 - 1")
        layout = cls(**_check_architecture(fail, arch), dtype=meta["dtype"], major=written_by.split(".")[0],
                     epochs_done=epochs_done,
                     optimizer_names=_check_optimizer_names(fail, meta.get("optimizer_state", [])),
                     standardize=_check_bool(fail, meta, "standardize"), classes=None, feature_names=None,
                     config=_check_object(fail, "config", meta.get("config", {})),
                     train_config=_check_train_config(fail, meta.get("train_config")),
                     history=_check_history(fail, meta.get("history", {"epochs": [], "losses": []})))
        return dataclasses.replace(layout, classes=_check_classes(fail, layout, meta.get("classes")),
                                   feature_names=_check_feature_names(fail, layout, meta.get("feature_names")))

    def shapes(self) -> dict:
        """Name -> shape of every model array the file must hold (not the optimizer's)."""
        shapes: dict[str, tuple] = {}
        pairs = list(zip(self.sizes[:-1], self.sizes[1:]))
        for i, (a, b) in enumerate(pairs):
            shapes[f"W{i}"] = (a, b)
        if self.bias:
            shapes.update({f"b{i}": (b,) for i, (a, b) in enumerate(pairs)})
        if self.batch_norm:
            for f in BN_FIELDS:
                shapes.update({f"bn_{f}{i}": (w,) for i, w in enumerate(self.sizes[1:-1])})
        return shapes

    def parameter_shapes(self) -> list:
        """Shapes of :meth:`xpnet.MLP.parameters`, in its order."""
        shapes = self.shapes()
        layers = range(len(self.sizes) - 1)
        names = [f"W{i}" for i in layers] + ([f"b{i}" for i in layers] if self.bias else [])
        if self.batch_norm:
            names += [f"bn_gamma{i}" for i in layers[:-1]] + [f"bn_beta{i}" for i in layers[:-1]]
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
    """Type tests that never raise on hostile values; calling it makes the error naming the file."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, what: str) -> XpnetValueError:
        return bad(self.path, what)

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


def _check_version(path: str, fail: _Checker, meta: dict) -> str:
    """The format is ours and not newer than this xpnet reads; the writer's version string."""
    if meta.get("format") != FORMAT:
        raise XpnetValueError(f"{path!r} is not an xpnet checkpoint (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or not fail.whole(version, 1, None):
        raise fail(f"format_version {version!r} is not a whole number >= 1")
    if version > FORMAT_VERSION:
        raise XpnetValueError(
            f"{path!r} has checkpoint format version {version!r}, newer than this xpnet {__version__} reads "
            f"(<= {FORMAT_VERSION}); upgrade xpnet (git pull in your clone, then pip install .)")
    written_by = meta.get("xpnet_version")
    if not isinstance(written_by, str) or not 0 < len(written_by) <= 64:
        raise fail(f"xpnet_version {short(written_by)} is not a version string")
    return written_by


def _check_architecture(fail: _Checker, arch: dict) -> dict:
    """The :class:`Layout` fields of ``architecture``, checked."""
    sizes = arch.get("layer_sizes")
    if (not isinstance(sizes, list) or not 2 <= len(sizes) <= 10_000
            or not all(fail.whole(s, 1, MAX_LAYER_SIZE) for s in sizes)):
        raise fail(f"architecture.layer_sizes {short(sizes)} is not a list of at least two whole numbers >= 1")
    acts = arch.get("activation")
    if not isinstance(acts, list) or len(acts) != len(sizes) - 2 or not all(fail.name(a) for a in acts):
        raise fail(f"architecture.activation {short(acts)} is not a list of {len(sizes) - 2} names (one per hidden "
                   "layer)")
    user = arch.get("user_activations", [])
    if not isinstance(user, list) or not all(fail.name(a) for a in user):
        raise fail(f"architecture.user_activations {short(user)} is not a list of names")
    choices = {"output": activations.OUTPUTS, "loss": tuple(losses.LOSSES), "init": init_module.SCHEMES,
               "numerics": NUMERICS}
    for key, allowed in choices.items():
        if not isinstance(arch.get(key), str) or arch.get(key) not in allowed:
            raise fail(f"architecture.{key} {short(arch.get(key))} is not one of {', '.join(allowed)}")
    for key in ("bias", "batch_norm"):
        if not isinstance(arch.get(key, False), bool):
            raise fail(f"architecture.{key} {short(arch.get(key))} is not true or false")
    if not fail.whole(arch.get("seed"), 0, 2**64 - 1):
        raise fail(f"architecture.seed {short(arch.get('seed'))} is not a whole number >= 0")
    dropout = arch.get("dropout", 0.0)
    if not fail.number(dropout) or not 0 <= dropout < 1:
        raise fail(f"architecture.dropout {short(dropout)} is not a rate in [0, 1)")
    return dict(sizes=tuple(sizes), activation=tuple(acts), user_activations=frozenset(user), output=arch["output"],
                loss=arch["loss"], bias=arch.get("bias", True), init=arch["init"], seed=arch["seed"],
                numerics=arch["numerics"], dropout=float(dropout), batch_norm=arch.get("batch_norm", False))


def _check_bool(fail: _Checker, meta: dict, key: str) -> bool:
    value = meta.get(key, False)
    if not isinstance(value, bool):
        raise fail(f"{key} {short(value)} is not true or false")
    return value


def _check_object(fail: _Checker, key: str, value) -> dict:
    if not isinstance(value, dict):
        raise fail(f"{key} {short(value)} is not a JSON object")
    return value


def _check_train_config(fail: _Checker, record) -> TrainConfig | None:
    """The recorded :class:`~xpnet.TrainConfig` (absent before it was recorded: None), checked
    as ``TrainConfig.from_dict`` checks any config: types, ranges, combinations."""
    if record is None:
        return None
    _check_object(fail, "train_config", record)
    try:
        return TrainConfig.from_dict(record)
    except (XpnetError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        problem = " ".join(str(exc).split())
        raise fail(f"train_config is not a valid training configuration: {problem[:200]}") from None


def _check_history(fail: _Checker, history) -> dict:
    _check_object(fail, "history", history)
    epochs, losses_ = history.get("epochs", []), history.get("losses", [])
    if not isinstance(epochs, list) or not all(fail.whole(e, 0, MAX_EPOCHS) for e in epochs):
        raise fail("history.epochs is not a list of whole numbers >= 0")
    if not isinstance(losses_, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in losses_):
        raise fail("history.losses is not a list of numbers")
    if len(epochs) != len(losses_):
        raise fail(f"history has {len(epochs)} epochs but {len(losses_)} losses")
    return history


def _check_optimizer_names(fail: _Checker, names) -> tuple:
    if (not isinstance(names, list) or not all(isinstance(n, str) and MEMBER_NAME.fullmatch(n) for n in names)
            or len(set(names)) != len(names)):
        raise fail(f"optimizer_state {short(names)} is not a list of distinct array names")
    return tuple(names)


def _check_classes(fail: _Checker, layout: Layout, classes):
    if classes is None:
        return None
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)
            or len(set(classes)) != len(classes)):
        raise fail(f"classes {short(classes)} is not a list of distinct labels (strings or whole numbers)")
    if layout.output == "softmax" and len(classes) != layout.sizes[-1]:
        raise fail(f"classes has {len(classes)} labels for {layout.sizes[-1]} outputs")
    return classes


def _check_feature_names(fail: _Checker, layout: Layout, names):
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise fail(f"feature_names {short(names)} is not a list of strings")
    if len(names) != layout.sizes[0]:
        raise fail(f"feature_names has {len(names)} names for {layout.sizes[0]} inputs")
    return names
