"""TrainConfig: options declared once, records that round-trip."""

import dataclasses

import pytest

import xpnet
from xpnet.training.options import declared
from xpnet.training.schedules import Schedule


def test_every_field_is_declared_with_help_and_a_check():
    for cls in (xpnet.TrainConfig, Schedule):
        names = [f.name for f in dataclasses.fields(cls)]
        assert [f.name for f, _ in declared(cls)] == names
        for f, opt in declared(cls):
            assert opt.help.strip(), f.name
            assert opt.check is not None or f.name == "schedule", f.name


def test_a_record_round_trips_and_older_records_take_defaults():
    config = xpnet.TrainConfig(epochs=7, learning_rate=0.5, schedule=Schedule("step", step=3), tol=1e-3,
                               batch_size=16, optimizer="adam")
    assert xpnet.TrainConfig.from_dict(config.to_dict()) == config
    older = config.to_dict()
    del older["divergence_factor"]  # a record written before the field existed
    assert xpnet.TrainConfig.from_dict(older).divergence_factor == xpnet.TrainConfig().divergence_factor
    with pytest.raises(xpnet.XpnetValueError, match="unknown training options"):
        xpnet.TrainConfig.from_dict({**config.to_dict(), "alpha": 1})


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs=0 must be a whole number > 0"),
    ("momentum", 1.0, "momentum=1.0 must be a finite number >= 0 and < 1; e.g. 0.9"),
    ("reduction", "avg", "reduction='avg' is not known"),
    ("shuffle", "yes", "shuffle='yes' must be True or False"),
    ("kernels", "cuda", "kernels='cuda' is not known"),
])
def test_checks_come_from_the_declarations(field, value, message):
    with pytest.raises((xpnet.XpnetValueError, xpnet.XpnetTypeError), match=message.replace("(", r"\(")):
        xpnet.TrainConfig(**{field: value})


def test_schedule_options_are_checked_by_their_public_names():
    with pytest.raises(xpnet.XpnetValueError, match="lr_step=0"):
        Schedule("step", step=0)
