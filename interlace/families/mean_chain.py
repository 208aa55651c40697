"""Derivatives in eta of a density written in its mean, with any number of family-parameter blocks.

:func:`interlace.families.likelihood.chain_parts` chains one dispersion block; the families of
issue 22 (Student t, Tweedie, ordered beta) carry a second parameter (df, power, cutpoints), so
this gives the general engine's :class:`~interlace.families.likelihood.Derivs` from

    gm = (dg/dmu, d2g/dmu2, d3g/dmu3)
    ga[block] = (dg/da, d2g/dmu da, d3g/dmu2 da)   per family-parameter block a

with mu = h(eta) (h1, h2, h3 its derivatives, from the link):
g_e = g1 h1, g_ee = g2 h1^2 + g1 h2, g_eee = g3 h1^3 + 3 g2 h1 h2 + g1 h3,
g_ea = g_ma h1, g_eea = g_mma h1^2 + g_ma h2.

Example
-------
>>> import numpy as np
>>> from interlace.families.links import LogLink
>>> one = np.ones(1)
>>> d = derivs_from_mean(LogLink(), np.zeros(1), one, np.zeros(1), (one, one, one), {"disp": (one, one, one)}, 2)
>>> float(d.e[0]), float(d.ee[0]), float(d.aux["disp"][2][0])
(1.0, 2.0, 2.0)
"""

from __future__ import annotations

import numpy as np

from interlace.families.likelihood import Derivs

__all__ = ["derivs_from_mean"]


def derivs_from_mean(link, eta: np.ndarray, wt: np.ndarray, g: np.ndarray, gm, ga: dict | None,
                     order: int) -> Derivs:
    """Weighted :class:`Derivs` (``order`` 0: l; 1: + e, ee; 2: + eee and the aux blocks)."""
    wt = np.asarray(wt, dtype=float)
    out = Derivs(l=wt * g)
    if order < 1:
        return out
    if link.name == "identity":  # h1 = 1, h2 = h3 = 0: skip the link's arrays
        h1 = h2 = h3 = None
    else:
        h1, h2 = link.mu_eta(eta), link.d2mu_deta2(eta)
        h3 = link.d3mu_deta3(eta) if order >= 2 else None
    g1, g2, g3 = gm
    if h1 is None:
        out.e, out.ee = wt * g1, wt * g2
    else:
        out.e = wt * g1 * h1
        out.ee = wt * (g2 * h1 * h1 + g1 * h2)
    if order < 2:
        return out
    out.eee = wt * g3 if h1 is None else wt * (g3 * h1 ** 3 + 3.0 * g2 * h1 * h2 + g1 * h3)
    for name, (a0, a1, a2) in (ga or {}).items():
        if h1 is None:
            out.aux[name] = (wt * a0, wt * a1, wt * a2)
        else:
            out.aux[name] = (wt * a0, wt * a1 * h1, wt * (a2 * h1 * h1 + a1 * h2))
    return out
