"""The training flags, generated from the options' declarations (:mod:`xpnet.training.options`).

Every :class:`~xpnet.TrainConfig` field and every :class:`~xpnet.training.schedules.Schedule`
field is declared once with its :class:`~xpnet.training.options.Option`; this module turns
each into an argparse flag (its name, help with the default, metavar, and a type or choices
derived from ``Option.check``), builds the :class:`~xpnet.TrainConfig` of parsed flags, and
converts between a config and the flags' destinations (what ``--resume`` restores):

    >>> import argparse
    >>> from xpnet.cli.options import add_training_flags, train_config
    >>> parser = argparse.ArgumentParser()
    >>> add_training_flags(parser)
    >>> train_config(parser.parse_args(["--learning-rate", "0.2", "--lr-decay", "0.01"])).schedule.decay
    0.01

A flag's destination is the option's public name (``lr_decay`` for Schedule's ``decay``), its
TOML key in ``--config`` files the flag without its dashes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re

from ..errors import Interval, XpnetError, XpnetValueError
from ..training.config import TrainConfig
from ..training.options import Option, declared
from ..training.schedules import Schedule

NONE_WORDS = ("none", "off")  # what an optional option's flag reads as None (e.g. --divergence-factor none)


def training_options() -> list[tuple[type, dataclasses.Field, Option]]:
    """``[(owner, field, option)]``: TrainConfig's options, its ``schedule`` replaced by Schedule's own."""
    found: list[tuple[type, dataclasses.Field, Option]] = []
    for f, opt in declared(TrainConfig):
        if f.name == "schedule":
            found += [(Schedule, sf, sopt) for sf, sopt in declared(Schedule)]
        else:
            found.append((TrainConfig, f, opt))
    return found


def value_type(opt: Option):
    """The argparse type of an option checked by an :class:`~xpnet.errors.Interval`: reads the
    number (``inf`` where the interval allows it; ``none`` where None is allowed) and checks it,
    so that a bad value is argparse's one-line error naming the flag."""
    interval = opt.check
    assert isinstance(interval, Interval)
    hint = f"; {opt.hint}" if opt.hint else ""

    def parse(text: str):
        if opt.optional and text.strip().lower() in NONE_WORDS:
            return None
        try:
            value = math.inf if interval.inf and text.strip().lower() in ("inf", "infinity") else \
                int(text) if interval.integer else float(text)
        except ValueError:
            kind = "a whole number" if interval.integer else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value not in interval:
            raise argparse.ArgumentTypeError(f"must be {interval.describe()}{hint}, got {text!r}")
        return value

    return parse


def _help(text: str, default, shown=None) -> str:
    text = re.sub(r"; None: [^)]*\)", ")", re.sub(r"\s*\(None: [^)]*\)", "", text))  # "default: off" says it
    if shown is None:
        shown = "off" if default is None or default is False else "on" if default is True else default
    return f"{text} (default: {shown})".replace("%", "%%")


def add_training_flags(parser, cli: dict | None = None) -> None:
    """Add one flag per training option to ``parser`` (or an argument group).

    ``cli`` maps a field name (Schedule's: its public name) to what the command line does
    differently: ``default``, ``help`` (replaces the option's), ``shown`` (the default as the
    help states it), ``type``, ``metavar``, ``aliases`` (more flag names, e.g. ``("--lr",)``),
    ``skip`` (no flag: the command line has its own).
    """
    cli = cli or {}
    for owner, f, opt in training_options():
        if opt.flag is None:
            continue
        own = cli.get(opt.public_name if owner is Schedule else f.name, {})
        if own.get("skip"):
            continue
        default = own.get("default", f.default)  # every option has a plain default
        names = [opt.flag, *own.get("aliases", ())]
        help_text = _help(own.get("help", opt.help), default, own.get("shown"))
        if opt.check is bool:  # --nesterov; --no-shuffle for a switch that is on (or decided later: None)
            action = "store_true" if default is False else argparse.BooleanOptionalAction
            parser.add_argument(*names, dest=opt.public_name, action=action, default=default, help=help_text)
            continue
        kwargs: dict = {"dest": opt.public_name, "default": default, "help": help_text}
        if "type" in own:
            kwargs["type"] = own["type"]
        elif isinstance(opt.check, tuple):
            kwargs["choices"] = opt.check
        elif isinstance(opt.check, Interval):
            kwargs["type"] = value_type(opt)
        metavar = own.get("metavar", opt.metavar)
        if metavar and "choices" not in kwargs:
            kwargs["metavar"] = metavar
        parser.add_argument(*names, **kwargs)


def flag_values(config: TrainConfig) -> dict:
    """``{destination: value}`` of every training flag for ``config`` (Schedule's by their public names)."""
    values = {}
    for owner, f, opt in training_options():
        source = config.schedule if owner is Schedule else config
        values[opt.public_name] = getattr(source, f.name)
    return values


def train_config(args, **fixed) -> TrainConfig:
    """The :class:`~xpnet.TrainConfig` of the parsed flags ``args`` (``fixed``: fields the command
    line sets itself, e.g. ``epochs``); checked, so a bad combination fails before any work."""
    values: dict = {}
    schedule: dict = {}
    for owner, f, opt in training_options():
        if f.name in fixed and owner is TrainConfig:
            continue
        if hasattr(args, opt.public_name):
            (schedule if owner is Schedule else values)[f.name] = getattr(args, opt.public_name)
    return TrainConfig(**values, schedule=Schedule(**schedule), **fixed)


def config_from_flags(saved: dict, skip=()) -> dict:
    """A :meth:`TrainConfig.to_dict` record from a dictionary of flag destinations (what
    checkpoints written before the config was recorded saved): the options it holds, by field
    (but those named in ``skip``: flags whose value is the command line's, not the option's)."""
    record: dict = {}
    schedule: dict = {}
    for owner, f, opt in training_options():
        if opt.public_name in saved and opt.public_name not in skip:
            (schedule if owner is Schedule else record)[f.name] = saved[opt.public_name]
    record["schedule"] = schedule
    return record


def from_record(record: dict, where: str) -> TrainConfig:
    """:meth:`TrainConfig.from_dict` of a checkpoint's record; a bad record is a clear error naming ``where``."""
    try:
        return TrainConfig.from_dict(record)
    except (XpnetError, TypeError) as exc:
        raise XpnetValueError(f"{where}: its training configuration is not usable: {exc}") from None
