"""``xpnet doctor``: the environment report (:mod:`.environment`) and the GPU proof (:mod:`.gpu_check`).

    >>> from xpnet import doctor
    >>> sorted(doctor.environment(backends=("numpy",))["backends"])
    ['numpy']
"""

from .environment import environment, format_environment
from .gpu_check import TOLERANCES, format_gpu_check, gpu_check, verdict

__all__ = ["TOLERANCES", "environment", "format_environment", "format_gpu_check", "gpu_check", "verdict"]
