"""Options declared once: a dataclass field carries its help, flag, scikit-learn name and check.

:class:`~xpnet.training.config.TrainConfig` and :class:`~xpnet.training.schedules.Schedule`
declare every field with :func:`option`; the front ends are generated from that record:

* the command line: one flag per field (``--learning-rate``; ``--no-shuffle`` for a switch
  that is on by default), its ``help``, ``metavar`` and check;
* ``--config`` files and ``--print-config``: the TOML key is the flag without its dashes;
* the scikit-learn estimators: ``sklearn`` names the estimator's parameter, if it has one;
* checkpoints: :meth:`TrainConfig.to_dict` records every field by name.

    >>> from xpnet.training.options import declared
    >>> from xpnet import TrainConfig
    >>> [(f.name, o.flag, o.sklearn) for f, o in declared(TrainConfig)][:2]
    [('epochs', '--epochs', 'max_iter'), ('learning_rate', '--learning-rate', 'learning_rate_init')]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import Interval, XpnetTypeError, check_bool, check_choice


@dataclass(frozen=True)
class Option:
    """What the front ends need to know of one option.

    ``check`` is how a value is checked: an :class:`~xpnet.errors.Interval`, a tuple of the
    allowed choices, ``bool`` for a switch, or None when the owner checks it itself (a
    nested dataclass). ``optional`` lets None in (the option is off, or decided elsewhere).
    """

    help: str  # one line: what the option does (the flag's help and the docs say this)
    check: object = None  # Interval | tuple of choices | bool | None
    optional: bool = False  # None is allowed
    hint: str = ""  # appended to a failed check's message, e.g. "e.g. 0.1"
    metavar: str | None = None  # the command line's name for the value
    sklearn: str | None = None  # the scikit-learn MLP parameter this option is, if any
    cli: bool = True  # False: no command-line flag (Python-only)
    alias: str = ""  # the name of the flag, the TOML key and error messages, when not the field's
    name: str = ""  # the field's name, filled in by declared()

    @property
    def public_name(self) -> str:
        """The option's name outside Python: ``lr_decay`` for Schedule's ``decay``."""
        return self.alias or self.name

    @property
    def flag(self) -> str | None:
        """``--learning-rate`` for ``learning_rate``; None without a flag."""
        return "--" + self.public_name.replace("_", "-") if self.cli else None

    @property
    def toml_key(self) -> str | None:
        """The key of a ``--config`` file: the flag without its dashes."""
        return self.flag[2:] if self.flag else None

    def validate(self, value, argument: str | None = None):
        """``value`` when it passes :attr:`check`; else a clear error naming the option."""
        argument = argument or self.public_name
        if value is None and self.optional:
            return value
        if self.check is bool:
            return check_bool(argument, value)
        if isinstance(self.check, tuple):
            check_choice(argument, value, self.check)
        elif isinstance(self.check, Interval):
            self.check.check(argument, value, self.hint)
        elif value is None:
            raise XpnetTypeError(f"{argument}=None is not allowed; give a value")
        return value


def option(default, help: str, check=None, **details):
    """A dataclass field declared with its :class:`Option` (``details``: its other attributes)."""
    return dataclasses.field(default=default, metadata={"option": Option(help, check, **details)})


def declared(cls) -> list[tuple[dataclasses.Field, Option]]:
    """``[(field, option), ...]`` of a dataclass declared with :func:`option`, in field order."""
    return [(f, dataclasses.replace(f.metadata["option"], name=f.name)) for f in dataclasses.fields(cls)
            if "option" in f.metadata]


def validate_all(instance) -> None:
    """Check every declared field of ``instance`` (a dataclass declared with :func:`option`)."""
    for f, opt in declared(type(instance)):
        opt.validate(getattr(instance, f.name))
