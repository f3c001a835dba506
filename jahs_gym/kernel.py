"""The optional C forest kernel ``jahs_gym/_forest.c``: loading it (with an ABI check) and the node layout it reads.

``KERNEL`` is the loaded library (ctypes signatures set; ``KERNEL.predict_row`` is the module's own one-row Python
function), or None when the extension was not built: the predictors then use numpy.
"""

from __future__ import annotations

import ctypes
import warnings

import numpy as np

KERNEL_ABI = 4  # jg_abi() of the _forest.c these ctypes signatures match


def load_kernel() -> ctypes.CDLL | None:
    """The built kernel with its ctypes signatures set, or None (not built, or built from other sources).

    Returns:
        The library, or None (a RuntimeWarning says why when the build is stale).
    """
    try:
        from jahs_gym import _forest  # built by setup.py; optional
    except ImportError:
        return None
    lib = ctypes.CDLL(_forest.__file__)
    abi = lib.jg_abi() if hasattr(lib, "jg_abi") else 1
    if abi != KERNEL_ABI:  # a stale build (editable install, _forest.c changed since): its signatures differ
        warnings.warn(f"the built C forest kernel {_forest.__file__} has ABI {abi}, these sources expect "
                      f"{KERNEL_ABI}; using the numpy backend (slower; the same numbers up to float rounding). "
                      "Rebuild it: "
                      "pip install --no-deps --no-build-isolation -e .", RuntimeWarning, stacklevel=2)
        return None
    fn = lib.jg_predict
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    fn.argtypes = [p, i64, i64, p, p, p, p, p, i64, i64, p]
    fn.restype = None
    lib.jg_finish.argtypes = [p, i64, i64, p, p, p]
    lib.jg_finish.restype = None
    lib.jg_predict_one.argtypes = [p, i64, p, p, p, p, p, i64, i64, p, p, p, i64, p, p, p, p, p]
    lib.jg_predict_mt.argtypes = [p, i64, i64, p, p, p, p, p, i64, i64, p, i64]
    lib.jg_predict_mt.restype = None
    lib.jg_predict_one.restype = None
    lib.jg_scale.argtypes = [p, i64, i64, p, p, p, i64, p]
    lib.jg_scale.restype = None
    lib.predict_row = _forest.predict_row  # the one-row hot path (RowPredictor), a Python function: no ctypes
    return lib


KERNEL = load_kernel()


NODE_DTYPE = np.dtype([("thr", "<f4"), ("feat", "<i4"), ("left", "<i4")])  # matches node_t in _forest.c
GROUP = 8  # trees walked together by the C kernel
