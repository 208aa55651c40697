"""Plots render headless (Agg) to PNG; skipped without matplotlib."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from test_predict import fitted_case  # noqa: E402


def _png(fig, tmp_path, name):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path = tmp_path / f"{name}.png"
    fig.savefig(path, format="png", dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return path


def test_caterpillar_one_panel_per_term_column(tmp_path):
    _case, res = fitted_case("sleepstudy_ml")
    fig = res.plot_caterpillar()
    assert len(fig.axes) == 2  # (Intercept) and Days of Subject
    ax = fig.axes[0]
    # sorted by the conditional modes, one tick per level, intervals from the conditional SDs
    assert len(ax.get_yticks()) == res.ngroups["Subject"]
    xs = np.sort(res.random_effects["Subject"]["Intercept"].to_numpy())
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), xs)
    _png(fig, tmp_path, "caterpillar")


def test_caterpillar_group_selection_and_errors(tmp_path):
    _case, res = fitted_case("grouseticks_nested")
    groups = list(res.random_effects)
    fig = res.plot_caterpillar(group=groups[-1], level=0.9)
    assert len(fig.axes) == 1
    _png(fig, tmp_path, "caterpillar_one")
    with pytest.raises(ValueError, match="grouping factor"):
        res.plot_caterpillar(group="nope")


def test_residual_figure(tmp_path):
    _case, res = fitted_case("cbpp_laplace")
    fig = res.plot_residuals(nsim=100, seed=1)
    assert len(fig.axes) == 2
    assert "KS test" in fig.axes[0].texts[0].get_text()
    _png(fig, tmp_path, "residuals")


def test_residual_figure_reuses_scaled_residuals(tmp_path):
    _case, res = fitted_case("grouseticks_poisson")
    sr = res.scaled_residuals(nsim=60, seed=3)
    fig = res.plot_residuals(scaled=sr)
    np.testing.assert_allclose(np.sort(fig.axes[0].lines[0].get_ydata()), np.sort(sr.residuals))
    _png(fig, tmp_path, "residuals_reuse")
