"""Whole-pass kernels: faster passes for the cases each declares in ``supports()``.

A kernel computes the same gradients as :func:`xpnet.core.network.gradients` over one lane
of row chunks, its own way (its own layout, fused loops, compiled code); the plan
(:func:`xpnet.engine.plan.choose`, which also documents the kernel interface) asks each in
turn and runs the generic pass when none supports a case:

* :mod:`.numba_fused` (``numba-fused``, jit): the tutorials' nets in one compiled sweep;
* :mod:`.numba_layers` (``numba-layers``, jit): any net of xpnet's activations, the
  elementwise work fused around BLAS;
* :mod:`.numpy_gram` (``numpy-gram``, numpy): one hidden layer, narrow input, activations
  transposed.

The ``jit`` ones need numba (``pip install '.[jit]'`` in a clone of xpnet), imported only
when one of them is about to be chosen (:mod:`.numba_support`).
"""
