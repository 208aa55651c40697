"""The one interface every engine's objective implements, and the parameter layout they share.

Every engine -- the profiled LMM (ML and REML), Laplace (nAGQ = 1), adaptive
Gauss-Hermite quadrature (nAGQ > 1), the general-likelihood engine (glmmTMB's
families) and the Dask copies of Laplace and general -- hands the optimizer an
:class:`Objective`: a deviance and its exact gradient at one parameter vector
``x``, laid out as its :class:`ParamLayout` says, and the conditional modes at
the last evaluation. The engine-specific signatures (``deviance(theta)``,
``deviance(theta, beta)``, ``deviance(x)``) remain as the engines' own
methods; this interface is what code that must work with any engine uses
(tests/test_architecture.py checks every engine against it).

Example
-------
>>> import numpy as np
>>> lay = ParamLayout.build(ntheta=2, fe_names=["Intercept", "x"], theta_lower=np.zeros(2),
...                         aux=[("disp", ["Intercept"])])
>>> lay.size, lay.names
(5, ['theta.0', 'theta.1', 'Intercept', 'x', 'disp.Intercept'])
>>> {k: v.tolist() for k, v in lay.split(np.arange(5.0)).items()}
{'theta': [0.0, 1.0], 'beta': [2.0, 3.0], 'disp': [4.0]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

__all__ = ["ParamLayout", "Objective", "RowBackend", "ThetaBetaObjective", "same_point"]


@dataclass(frozen=True)
class ParamLayout:
    """The parameter vector ``x`` of an objective: named blocks in order
    (``theta``, then ``beta`` unless it is profiled out or moved into the inner
    loop, then one block per family sub-model: ``disp``, ``zi``, ...), one
    name and one lower bound per entry (``theta``'s bounds from the covariance
    structures; everything else unbounded).

    Attributes
    ----------
    blocks: (block name, size) in the order of ``x``.
    names: one name per entry of ``x`` (``theta.<structure's name>``, the
        fixed-effect names, ``<block>.<coefficient>``).
    lower: lower bounds, ``-inf`` where unbounded.
    """

    blocks: tuple[tuple[str, int], ...]
    names: tuple[str, ...]
    lower: np.ndarray

    @classmethod
    def build(cls, *, ntheta: int, fe_names: Sequence[str] | None, theta_lower: np.ndarray,
              theta_names: Sequence[str] | None = None,
              aux: Sequence[tuple[str, Sequence[str]]] = ()) -> "ParamLayout":
        """The layout (theta, beta, aux...) ; ``fe_names=None`` leaves beta out
        (the LMM profiles it; nAGQ = 0 moves it into the inner loop)."""
        tnames = list(theta_names) if theta_names is not None else [str(i) for i in range(ntheta)]
        blocks: list[tuple[str, int]] = [("theta", int(ntheta))]
        names = [f"theta.{s}" for s in tnames]
        if fe_names is not None:
            blocks.append(("beta", len(fe_names)))
            names += list(fe_names)
        for name, coef in aux:
            blocks.append((name, len(coef)))
            names += [f"{name}.{c}" for c in coef]
        lower = np.concatenate([np.asarray(theta_lower, dtype=float),
                                np.full(len(names) - int(ntheta), -np.inf)])
        return cls(tuple(blocks), tuple(names), lower)

    @property
    def size(self) -> int:
        return int(sum(k for _, k in self.blocks))

    @property
    def offsets(self) -> np.ndarray:
        """Start of each block in ``x`` (and the end of the last)."""
        return np.concatenate([[0], np.cumsum([k for _, k in self.blocks])]).astype(int)

    @property
    def upper(self) -> np.ndarray:
        return np.full(self.size, np.inf)

    def slice(self, block: str) -> slice:
        off = self.offsets
        for i, (name, _) in enumerate(self.blocks):
            if name == block:
                return slice(int(off[i]), int(off[i + 1]))
        raise KeyError(f"no block {block!r} in this layout ({', '.join(n for n, _ in self.blocks)})")

    def split(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Block name -> its entries of ``x`` (views)."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.size,):
            raise ValueError(f"x has shape {x.shape}, the layout {self.size} entries")
        off = self.offsets
        return {name: x[off[i]: off[i + 1]] for i, (name, _) in enumerate(self.blocks)}

    def join(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """``x`` from its blocks (the inverse of :meth:`split`)."""
        missing = [n for n, _ in self.blocks if n not in parts]
        if missing:
            raise ValueError(f"join needs the blocks {missing}")
        return np.concatenate([np.asarray(parts[n], dtype=float).reshape(-1) for n, _ in self.blocks])

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ParamLayout) and self.blocks == other.blocks and self.names == other.names
                and np.array_equal(self.lower, other.lower))

    __hash__ = None  # type: ignore[assignment]


@runtime_checkable
class Objective(Protocol):
    """What every engine's objective offers the optimizer, the verdict and the result.

    ``layout`` describes ``x``; ``deviance_at(x)`` is the (Laplace, AGQ, profiled
    or REML) deviance at ``x`` and leaves the objective's state -- the
    conditional modes, the factor of the penalized system -- at ``x``;
    ``gradient_at(x)`` is its exact gradient (the kernels' derivatives in
    Lambda's entries, chained through the covariance structures); ``mode()``
    the spherical conditional modes u at the last evaluation (b = Lambda u).
    ``mf``, ``re`` and ``family`` are the pieces a result is built from.
    Tolerances and iteration caps come from :class:`interlace.control.Control`.
    """

    mf: Any
    re: Any

    @property
    def layout(self) -> ParamLayout: ...

    def deviance_at(self, x: np.ndarray) -> float: ...

    def gradient_at(self, x: np.ndarray) -> np.ndarray: ...

    def mode(self) -> np.ndarray: ...


@runtime_checkable
class RowBackend(Protocol):
    """Where the rows are: the one thing an engine asks of them is the sums of a pass.

    A *pass* is a function ``pass_(rows, payload) -> dict`` over one chunk of
    rows (``objective.rows.PartBlock``) whose result over all rows is the
    key-by-key sum of its results over any split of the rows; the payload is
    small (q- and p-sized: Lambda's blocks, beta, u, the family parameters'
    coefficients, blocks of A^{-1}). ``run(pass_, payload)`` returns that sum.
    Two implementations: ``objective.rows.LocalRows`` (the model frame's rows
    in this process, one chunk, the chunked-parallel numba kernels) and
    ``distributed.rounds.Rounds`` (one chunk per persisted Dask partition, a
    map/reduce round; the client receives only the sums). An engine holds one
    as ``rows`` and calls nothing else over the rows, so it fits on Dask
    unchanged.

    The passes and the sums they return (U = Z Lambda with rows U_i; e and D
    the first and minus the second derivative of the log-likelihood l in eta;
    "the blocks" are ``A11, V21, A22, rhs`` of ``BlockedCholesky``):

    - PIRLS pass (``distributed.blocks.pirls_round``; Laplace, Fisher weights W):
      ``dev`` (the sum of deviance residuals) and the blocks of U'WU and U'Wz;
      mode "joint" also ``UtWX, XtWX, xrhs`` (U'WX, X'WX, X'Wz); ``m2ll`` when
      the family has no saturated constant.
    - deviance pass (``deviance_round``): ``dev`` at a trial point (step-halving).
    - GLM start (``init_round``): ``XtWX, xrhs`` at the family's mustart.
    - gradient passes (``leverage_round``, then ``gradient_round``): ``Utv``
      (v_i = dw_i/deta U_i A^{-1} U_i'), the observed information's blocks where
      the link is not canonical; then ``gb`` (d dev / d beta) and ``gt`` (d dev
      / d Lambda's entries; ``re.chain`` maps them to theta).
    - general likelihood (``objective.rows``): ``start_pass`` (``XtX, Xtz, n,
      zsum, ysum, y2sum``), ``fixed_pass`` (``l, ge, ga_<block>``: the model
      without random effects), ``newton_pass`` (``l`` = sum l, ``Ute`` = U'e and
      the blocks of U'DU: one Newton step on u, fused with its trial point),
      ``lev_pass`` (``Utv``, v_i = -(d3 l/deta3)_i U_i H^{-1} U_i') and
      ``grad_pass`` (``gb, gt, ga_<block>``: the exact gradient's row parts
      given xi = H^{-1} U'v).

    ``count`` and ``by_kind`` count the passes run (a Dask fit reports them
    as ``optinfo["dask_rounds"]``).
    """

    count: int

    def run(self, fn: Callable[[Any, dict], dict], payload: dict) -> dict: ...


class ThetaBetaObjective:
    """:class:`Objective` for engines whose own signature is ``deviance(theta, beta)``
    and ``gradient(theta, beta)`` (Laplace, AGQ, Dask Laplace): x = (theta, beta)."""

    @property
    def layout(self) -> ParamLayout:
        return ParamLayout.build(ntheta=self.re.ntheta, fe_names=list(self._fe_names()),
                                 theta_lower=self.re.theta_lower, theta_names=self.re.theta_names())

    def _fe_names(self) -> Sequence[str]:
        names = getattr(getattr(self, "mf", None), "fe_names", None)
        return names if names is not None else [f"beta.{j}" for j in range(self.p)]

    def _theta_beta(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=float)
        nt = self.re.ntheta
        return x[:nt], x[nt:]

    def deviance_at(self, x: np.ndarray) -> float:
        theta, beta = self._theta_beta(x)
        return float(self.deviance(theta, beta))

    def gradient_at(self, x: np.ndarray) -> np.ndarray:
        theta, beta = self._theta_beta(x)
        self.deviance(theta, beta)  # the gradient is taken at the state of this point
        return np.asarray(self.gradient(theta, beta), dtype=float)

    def mode(self) -> np.ndarray:
        return np.asarray(self.u, dtype=float).copy()


def same_point(a: np.ndarray | None, b: np.ndarray) -> bool:
    """``np.array_equal(a, b)`` for the small parameter vectors an optimizer passes,
    with a byte comparison first: most calls ask again for the very point
    remembered, and array_equal's own overhead is what a small refit pays for.

    >>> same_point(np.array([0.0, 1.0]), np.array([-0.0, 1.0])), same_point(None, np.zeros(1))
    (True, False)
    """
    if a is None:
        return False
    if a.shape == np.shape(b) and a.tobytes() == np.asarray(b, dtype=a.dtype).tobytes():
        return True
    return bool(np.array_equal(a, b))
