"""Triangular solves without ``scipy.linalg.solve_triangular``'s wrapper.

``solve_triangular`` validates and converts its arguments (``_asarray_validated``,
dtype checks, the array-API layer): about 40 us per call, where LAPACK's ``trtrs`` on a
4 x 4 factor takes 3. This calls the same ``trtrs`` with the same arguments scipy
would pass (a C-ordered matrix goes in as its transpose with the triangle and the
transposition flipped), so the result is scipy's to the last bit.

>>> import numpy as np, scipy.linalg as sla
>>> R = np.array([[2.0, 0.0], [1.0, 3.0]]); b = np.array([1.0, 2.0])
>>> bool(np.array_equal(solve_triangular(R, b, lower=True, trans=True),
...                     sla.solve_triangular(R, b, lower=True, trans="T", check_finite=False)))
True
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dtrtrs

__all__ = ["solve_triangular"]


def solve_triangular(a: np.ndarray, b: np.ndarray, *, lower: bool = False, trans: bool = False) -> np.ndarray:
    """``scipy.linalg.solve_triangular(a, b, lower=lower, trans="T" if trans else "N",
    check_finite=False)`` for float64 ``a`` (n x n) and ``b`` (n or n x k); LinAlgError
    for a singular ``a``. Other dtypes or shapes go to scipy."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == np.float64
            and b.dtype == np.float64 and a.ndim == 2 and a.shape[0] == a.shape[1] and b.ndim in (1, 2)
            and b.shape[0] == a.shape[0] and a.size):
        import scipy.linalg as sla

        return sla.solve_triangular(a, b, lower=lower, trans="T" if trans else "N", check_finite=False)
    if a.flags.f_contiguous:
        x, info = dtrtrs(a, b, lower=int(lower), trans=int(trans))
    else:  # scipy solves the transposed system: trtrs expects Fortran order
        x, info = dtrtrs(a.T, b, lower=int(not lower), trans=int(not trans))
    if info > 0:
        raise np.linalg.LinAlgError(f"singular matrix: resolution failed at diagonal {info - 1}")
    if info < 0:
        raise ValueError(f"illegal value in {-info}-th argument of internal trtrs")
    return x
