"""Per-row derivatives of a family's log-likelihood in all its linear predictors.

When ``ziformula`` or ``dispformula`` has random effects, the Laplace approximation
runs over the random effects of several linear predictors at once (glmmTMB's model):
the conditional eta and the family's aux predictors ("disp", "zi", ...). Newton on
the joint u needs, per row, the gradient G (n, K) and the Hessian H (n, K, K) of
l_i in the K predictors, and the exact gradient of the Laplace deviance needs the
third derivatives T (n, K, K, K).

:func:`family_jet` gives them. A family may supply its own ``jet`` method (the
zero-inflation wrapper composes them exactly from the base distribution's
derivatives, :func:`zi_jet`); otherwise they are assembled from the family's
``derivs`` (exact in eta and mixed eta-aux), with the derivatives in two aux
predictors that ``derivs`` does not give taken by central differences of exact
lower-order ones (:func:`jet_from_derivs`; step 1e-4, error about 1e-8 relative).

Example
-------
>>> import numpy as np
>>> from interlace.families.zinb import ZeroInflatedNB2Family
>>> fam = ZeroInflatedNB2Family()
>>> y = np.array([0.0, 3.0])
>>> aux = {"disp": np.zeros(2), "zi": np.full(2, -1.0)}
>>> l, G, H, T = family_jet(fam, y, np.ones(2), np.full(2, 0.5), aux, ["cond", "disp", "zi"])
>>> G.shape, H.shape, T.shape
((2, 3), (2, 3, 3), (2, 3, 3, 3))
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
from scipy import special

from interlace.families.likelihood import Parts

__all__ = ["family_jet", "jet_from_derivs", "zi_jet", "base_full_parts"]

_H = 1e-4  # central-difference step in a log-scale / logit-scale predictor


def _sym3(T: np.ndarray, a: int, b: int, c: int, val: np.ndarray) -> None:
    for i, j, k in set(permutations((a, b, c))):
        T[:, i, j, k] = val


def family_jet(fam, y, wt, eta, aux: dict[str, np.ndarray], names: list[str], order: int = 3,
               aux_re: set[str] | None = None):
    """(l, G, H, T) per row in the predictors ``names`` ("cond" first, then aux blocks);
    ``order`` 2 skips T (returned as None). ``aux_re``: the aux predictors with random
    effects (None: all); a family may leave the second and third derivatives within the
    others at zero, as the Laplace approximation never uses them."""
    own = getattr(fam, "jet", None)
    if callable(own):
        return own(y, wt, eta, aux, names, order, aux_re=aux_re)
    return jet_from_derivs(fam, y, wt, eta, aux, names, order)


def jet_from_derivs(fam, y, wt, eta, aux, names, order: int = 3):
    """The jet from ``fam.derivs``: exact where derivs gives it, central differences of
    exact first (aux-aux Hessian, eta-aux-aux) and second differences (aux-aux-aux) else."""
    n, K = len(y), len(names)
    d = fam.derivs(y, wt, eta, aux, order=2)
    G = np.zeros((n, K))
    H = np.zeros((n, K, K))
    T = np.zeros((n, K, K, K)) if order >= 3 else None
    G[:, 0], H[:, 0, 0] = d.e, d.ee
    if T is not None:
        T[:, 0, 0, 0] = d.eee
    ax = list(range(1, K))
    for a in ax:
        ga, gea, geea = d.aux[names[a]]
        G[:, a] = ga
        H[:, 0, a] = H[:, a, 0] = gea
        if T is not None:
            _sym3(T, 0, 0, a, geea)
    if not ax:
        return d.l, G, H, T

    def at(shifts: dict[int, float]):
        aa = dict(aux)
        for b, h in shifts.items():
            aa[names[b]] = aux[names[b]] + h
        return fam.derivs(y, wt, eta, aa, order=2)

    plus = {b: at({b: _H}) for b in ax}
    minus = {b: at({b: -_H}) for b in ax}
    for b in ax:
        for a in ax:
            H[:, a, b] = (plus[b].aux[names[a]][0] - minus[b].aux[names[a]][0]) / (2 * _H)
    H = 0.5 * (H + np.swapaxes(H, 1, 2))
    if T is None:
        return d.l, G, H, None
    for b in ax:
        for a in ax:
            # d/db of d2l/deta da
            v = (plus[b].aux[names[a]][1] - minus[b].aux[names[a]][1]) / (2 * _H)
            if a <= b:
                _sym3(T, 0, a, b, v if a == b else 0.5 * (v + (plus[a].aux[names[b]][1]
                                                               - minus[a].aux[names[b]][1]) / (2 * _H)))
    for a in ax:
        for b in ax:
            for c in ax:
                if not (a <= b <= c):
                    continue
                if b == c:
                    # d2/db2 of dl/da
                    v = (plus[b].aux[names[a]][0] - 2.0 * G[:, a] + minus[b].aux[names[a]][0]) / _H ** 2
                else:
                    pp, pm = at({b: _H, c: _H}), at({b: _H, c: -_H})
                    mp, mm = at({b: -_H, c: _H}), at({b: -_H, c: -_H})
                    v = (pp.aux[names[a]][0] - pm.aux[names[a]][0] - mp.aux[names[a]][0]
                         + mm.aux[names[a]][0]) / (4 * _H ** 2)
                _sym3(T, a, b, c, v)
    return d.l, G, H, T


def base_full_parts(fam, y, wt, eta, lphi, order: int):
    """The base distribution's :class:`Parts` with the derivatives in the log-dispersion
    p up to third order (``pp``, ``epp``, ``ppp``): the family's own when it gives them
    (attributes on the Parts), else central differences of its exact ``p`` and ``ep``.
    Returns (Parts, likelihood weights)."""
    P, lw = fam.parts_w(y, wt, eta, lphi, max(order, 2) if lphi is not None else order)
    if lphi is None or order < 2 or P.pp is not None:
        return P, lw
    Pp, _ = fam.parts_w(y, wt, eta, lphi + _H, 2)
    Pm, _ = fam.parts_w(y, wt, eta, lphi - _H, 2)
    P.pp = (Pp.p - Pm.p) / (2 * _H)
    P.epp = (Pp.ep - Pm.ep) / (2 * _H)
    P.ppp = (Pp.p - 2.0 * P.p + Pm.p) / _H ** 2
    return P, lw


def zi_jet(P: Parts, lw, y, z, names: list[str], order: int = 3):
    """Exact jet of the zero-inflated log-likelihood

        l = log(p + (1 - p) f(0))  (y = 0),   log(1 - p) + g  (y > 0),   p = plogis(z),

    from the base log density g(eta, p) (``P``: g and its derivatives up to third order in
    eta and the log-dispersion). With F(g, z) = logaddexp(z, g) at zeros and r = plogis(g - z)
    (r = 1 at positive counts), w = grad g - e_z:
    grad l = r grad g + (1 - r - s1) e_z, Hess l = r(1-r) w w' + r Hess g - s2 e_z e_z',
    third = r(1-r)(1-2r) w^3 + r(1-r) sym(Hess g x w) + r g''' - s3 e_z^3,
    s1, s2, s3 the derivatives of softplus(z)."""
    from interlace.kernels.zi_jet import zi_mix, zi_tensors

    n, K = len(y), len(names)
    iz = names.index("zi")
    ip = names.index("disp") if "disp" in names else -1
    zero = np.asarray(y) == 0
    lw = np.ascontiguousarray(np.broadcast_to(np.asarray(lw, dtype=float), (n,)))
    l, r, s1 = np.empty(n), np.empty(n), np.empty(n)
    zi_mix(np.ascontiguousarray(P.g, dtype=float), np.ascontiguousarray(z, dtype=float), zero, lw, l, r, s1)
    nil = np.zeros(n)

    def arr(v):
        return nil if v is None else np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=float), (n,)))

    G = np.empty((n, K))
    H = np.empty((n, K, K))
    T = np.empty((n, K, K, K)) if order >= 3 else np.empty((1, 1, 1, 1))
    zi_tensors(K, ip, iz, r, s1, lw, arr(P.e), arr(P.ee), arr(P.eee), arr(P.p), arr(P.ep), arr(P.eep),
               arr(P.pp), arr(P.epp), arr(P.ppp), G, H, T, int(order))
    return l, G, H, (T if order >= 3 else None)
