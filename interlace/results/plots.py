"""The plots people look at after a fit (optional extra ``interlace[plot]``).

- :func:`caterpillar`: conditional modes of the random effects with
  intervals from their conditional SDs, levels sorted, one panel per term
  column (lme4's ``dotplot(ranef(m, condVar = TRUE))``).
- :func:`residual_figure`: DHARMa's diagnostic pair, a uniform QQ plot of the
  scaled residuals with the KS, dispersion and zero-inflation tests, and
  the scaled residuals against the (rank-transformed) predictions.

Both return a ``matplotlib.figure.Figure`` built without pyplot, so they
work headless and never open a window.

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> fig = m.plot_caterpillar()
>>> fig.savefig("caterpillar.png")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

__all__ = ["caterpillar", "residual_figure"]


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("plots need matplotlib: pip install 'interlace[plot]'") from exc
    return Figure(**kwargs)


def caterpillar(result, group: str | list[str] | None = None, level: float = 0.95,
                sort: bool = True, figsize: tuple[float, float] | None = None, color: str = "C0"):
    """Caterpillar plot of the conditional modes with ``level`` intervals
    (mode +- z * conditional SD), one panel per grouping factor and column.

    ``group`` selects grouping factors (default: all). Returns a Figure.

    Example
    -------
    >>> import interlace
    >>> df = interlace.datasets.load("sleepstudy")
    >>> m = interlace.glmer("Reaction ~ Days + (Days | Subject)", df, family="gaussian")
    >>> len(m.plot_caterpillar().axes)
    2
    """
    groups = list(result.random_effects) if group is None else ([group] if isinstance(group, str) else list(group))
    unknown = [g for g in groups if g not in result.random_effects]
    if unknown:
        raise ValueError(f"unknown grouping factor(s) {unknown}; have {list(result.random_effects)}")
    zq = stats.norm.ppf(0.5 + level / 2.0)
    panels = [(g, c) for g in groups for c in result.random_effects[g].columns]
    nlev = max(len(result.random_effects[g]) for g in groups)
    if figsize is None:
        figsize = (3.2 * len(panels) + 1.0, max(3.0, min(0.18 * nlev + 1.2, 40.0)))
    fig = _figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (g, c) in zip(axes, panels):
        modes = result.random_effects[g][c].to_numpy(dtype=float)
        sds = result.random_effects_sd[g][c].to_numpy(dtype=float) if g in result.random_effects_sd else None
        labels = np.asarray([str(v) for v in result.random_effects[g].index])
        # lme4's dotplot sorts every panel by the first column's modes
        order = np.argsort(result.random_effects[g].iloc[:, 0].to_numpy(dtype=float)) if sort \
            else np.arange(len(modes))
        ypos = np.arange(len(modes))
        if sds is not None:
            ax.errorbar(modes[order], ypos, xerr=zq * sds[order], fmt="o", ms=3, color=color,
                        ecolor=color, elinewidth=1, capsize=0)
        else:
            ax.plot(modes[order], ypos, "o", ms=3, color=color)
        ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
        ax.set_yticks(ypos)
        ax.set_yticklabels(labels[order], fontsize=max(4, min(9, 300 // max(len(modes), 1))))
        ax.set_title(f"{g}: {'(Intercept)' if c == 'Intercept' else c}", fontsize=10)
        ax.set_xlabel("conditional mode")
    fig.suptitle(f"Random effects with {int(round(level * 100))}% intervals (conditional SDs)", fontsize=10)
    return fig


def residual_figure(result, nsim: int = 250, seed: Any = None, scaled: Any = None,
                    figsize: tuple[float, float] = (10.0, 4.5)):
    """DHARMa's residual plot: left, a QQ plot of the scaled residuals against
    U(0, 1) with the uniformity (KS), dispersion and zero-inflation p-values;
    right, scaled residuals against the rank-transformed predictions with
    the 0.25 / 0.5 / 0.75 reference lines. Pass ``scaled`` (a
    ``ScaledResiduals``) to reuse simulations. Returns a Figure.

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> [ax.get_xlabel() for ax in m.plot_residuals(nsim=50, seed=1).axes]
    ['expected (uniform)', 'model predictions (rank transformed)']
    """
    if scaled is None:
        from interlace.results.residuals import scaled_residuals

        scaled = scaled_residuals(result, nsim=nsim, seed=seed)
    r = np.asarray(scaled.residuals, dtype=float)
    n = r.size
    fig = _figure(figsize=figsize, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    expected = (np.arange(1, n + 1) - 0.5) / n
    ax1.plot(expected, np.sort(r), ".", ms=3, color="C0")
    ax1.plot([0, 1], [0, 1], color="C3", lw=1)
    ax1.set_xlabel("expected (uniform)")
    ax1.set_ylabel("observed (scaled residual)")
    ax1.set_title("QQ plot of scaled residuals", fontsize=10)
    t = scaled.tests()
    text = "\n".join([f"KS test: p = {t['uniformity'].pvalue:.3g}",
                      f"dispersion: p = {t['dispersion'].pvalue:.3g}",
                      f"zero-inflation: p = {t['zero_inflation'].pvalue:.3g}"])
    ax1.text(0.03, 0.97, text, transform=ax1.transAxes, va="top", fontsize=8,
             bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    ax1.set_xlim(0, 1)
    ax1.set_ylim(0, 1)
    pred = np.asarray(scaled.fitted, dtype=float)
    rank = stats.rankdata(pred) / n
    ax2.plot(rank, r, ".", ms=3, color="C0", alpha=0.7)
    for q in (0.25, 0.5, 0.75):
        ax2.axhline(q, color="0.5", lw=0.8, ls="--")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("model predictions (rank transformed)")
    ax2.set_ylabel("scaled residual")
    ax2.set_title("Residuals vs. predicted", fontsize=10)
    fig.suptitle("Simulation-based (DHARMa) residual diagnostics", fontsize=10)
    return fig
