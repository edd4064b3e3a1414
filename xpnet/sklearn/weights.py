"""Sample weights: checked on the host, rescaled to average 1 (with ``alpha`` alike).

Weights are ``n_samples`` numbers: they cross to the host once per fit (also from a
device), are checked there, and go to the backend with the training data.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_array

from ..errors import XpnetValueError
from .arrays import is_device_array, to_host


def checked(sample_weight, n: int):
    """Validated weights (n,) as float64, or None when absent or all equal (equal weights change nothing)."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real):
        sw = np.full(n, float(sample_weight))
    else:
        host = to_host(sample_weight) if is_device_array(sample_weight) else sample_weight
        sw = check_array(host, ensure_2d=False, dtype=np.float64, input_name="sample_weight")
        if sw.ndim != 1 or sw.shape[0] != n:
            raise XpnetValueError(f"sample_weight.shape == {sw.shape}, expected ({n},): one weight per sample")
    if np.any(sw < 0):
        raise XpnetValueError("sample_weight holds negative values; weights must be >= 0")
    if not np.any(sw > 0):
        raise XpnetValueError("Sample weights must contain at least one non-zero number.")
    return None if np.all(sw == sw[0]) else sw


def normalized(sw, alpha: float):
    """Weights rescaled to average 1, and ``alpha`` rescaled alike: then a full batch's objective is
    scikit-learn's ``(sum w loss + alpha/2 ||W||^2) / sum w`` exactly. None when unweighted."""
    if sw is None:
        return None, alpha
    total = float(np.sum(sw, dtype=np.float64))
    if total <= 0:
        raise XpnetValueError("the training rows' sample weights are all zero; give some rows a weight > 0")
    factor = sw.shape[0] / total
    return sw * factor, alpha * factor
