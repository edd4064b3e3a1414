"""The estimators' parameters: declared once with the training options, checked by name, mapped to TrainConfig."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from xpnet.sklearn.params import DECLARED, check_params, train_config  # noqa: E402
from xpnet.training.config import TrainConfig  # noqa: E402
from xpnet.training.options import declared  # noqa: E402
from xpnet.training.schedules import Schedule  # noqa: E402

# a valid value, unlike the default, for every declared scikit-learn parameter
DISTINCT = dict(max_iter=7, learning_rate_init=0.03, alpha=0.02, batch_size=16, shuffle=False, solver="sgd",
                momentum=0.7, nesterovs_momentum=False, beta_1=0.8, beta_2=0.99, epsilon=1e-7, early_stopping=True,
                validation_fraction=0.2, tol=0.003, n_iter_no_change=4, random_state=5, learning_rate="invscaling",
                power_t=0.3)
# where the estimator sets the field itself (see xpnet.sklearn.params.train_config), with the value it sets here
EXPLICIT = dict(l2=0.5, early_stopping=False, seed=9, validation_fraction=TrainConfig.validation_fraction)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_every_declared_scikit_learn_name_is_a_parameter(Estimator):
    names = {d.name for d in DECLARED}
    assert names == {opt.sklearn for cls in (TrainConfig, Schedule) for _, opt in declared(cls) if opt.sklearn}
    assert names <= set(Estimator().get_params()), names - set(Estimator().get_params())
    assert names == set(DISTINCT)  # a new declaration needs its line in DISTINCT


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_the_train_config_takes_each_declared_parameter(Estimator):
    est = Estimator(**DISTINCT)
    est.t_ = 0
    config, initial = train_config(est, rows=100, incremental=False, alpha=0.5, seed=9)
    for d in DECLARED:
        owner = config.schedule if d.owner is Schedule else config
        want = EXPLICIT.get(d.field.name, DISTINCT[d.name])
        assert getattr(owner, d.field.name) == want, (d.name, d.field.name)
    assert (config.reduction, config.l2_scaling, config.divergence_factor, initial) == ("mean", "batch", None, 0)


def test_where_scikit_learn_means_something_else():
    est = MLPClassifier(**dict(DISTINCT, solver="adam", batch_size="auto"))
    est.t_ = 0
    config, _ = train_config(est, rows=120, incremental=False, alpha=0.0, seed=1)
    assert config.momentum == 0 and not config.nesterov  # momentum is sgd's
    assert config.schedule.name == "constant"  # so is learning_rate
    assert config.batch_size == 120  # "auto": min(200, n_samples)
    est = MLPClassifier(**dict(DISTINCT, nesterovs_momentum=True))
    est.t_ = 300
    config, initial = train_config(est, rows=100, incremental=False, alpha=0.0, seed=1)
    assert config.nesterov and initial == 3  # a warm invscaling run continues from t_, in epochs
    config, initial = train_config(est, rows=100, incremental=True, alpha=0.0, seed=1)
    assert config.epochs == 1 and initial == 0 and config.schedule.name == "constant"  # partial_fit: one epoch
    assert config.learning_rate == pytest.approx(0.03 / 301 ** 0.3)  # at scikit-learn's rate for t_


@pytest.mark.parametrize("params, match", [
    (dict(beta_1=1.0), "beta_1=1.0"), (dict(epsilon=0.0), "epsilon=0.0"), (dict(max_iter=0), "max_iter=0"),
    (dict(shuffle="yes"), "shuffle='yes'"), (dict(tol=None), "tol=None"), (dict(validation_fraction=1.0),
                                                                           "validation_fraction=1.0"),
    (dict(learning_rate="cosine"), "learning_rate='cosine'"), (dict(solver="lbfgs", alpha=-1), "alpha=-1"),
    (dict(power_t=np.float32(-0.5)), "power_t"),
])
def test_checks_name_scikit_learns_parameter(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        check_params(MLPRegressor(**params))
    check_params(MLPRegressor(validation_fraction=0.0, n_iter_no_change=np.inf, max_iter=np.int64(3)))  # valid
