"""Parametric bootstrap (lme4's bootMer): reproducibility across processes, failure
accounting (lme4 issue #231), percentile intervals (R boot's norm.inter), simulation."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import load_case
from oracle_utils import fit_case

import interlace
from interlace.inference.bootstrap import BootResult, BootstrapWarning, percentile_interval


@pytest.fixture(scope="module")
def cbpp():
    return fit_case(load_case("cbpp_laplace"))


def test_default_statistic_and_shape(cbpp):
    b = cbpp.bootstrap(12, seed=1)
    assert isinstance(b, BootResult)
    assert list(b.replicates.columns) == list(cbpp.fe_params.index) + list(cbpp.theta.index)
    assert b.replicates.shape == (12, 5)
    assert b.n_failed == 0 and b.n_nonconverged == 0 and b.failures == []
    assert (b.status == "ok").all()
    np.testing.assert_allclose(b.t0.to_numpy(), np.r_[cbpp.fe_params, cbpp.theta])
    assert np.isfinite(b.replicates.to_numpy()).all()


def test_same_seed_same_replicates_whatever_n_jobs(cbpp):
    a = cbpp.bootstrap(16, seed=123, n_jobs=1)
    b = cbpp.bootstrap(16, seed=123, n_jobs=2)
    c = cbpp.bootstrap(16, seed=123, n_jobs=3)
    np.testing.assert_array_equal(a.replicates.to_numpy(), b.replicates.to_numpy())
    np.testing.assert_array_equal(a.replicates.to_numpy(), c.replicates.to_numpy())
    d = cbpp.bootstrap(16, seed=124)
    assert not np.array_equal(a.replicates.to_numpy(), d.replicates.to_numpy())


def test_user_statistic_gets_a_full_result(cbpp):
    """fn sees a GLMMResult of the refit; a lambda works with worker processes too."""
    fn = lambda r: pd.Series({"se_int": r.fe_bse["Intercept"], "llf": r.llf})  # noqa: E731
    a = cbpp.bootstrap(6, fn=fn, seed=9)
    b = cbpp.bootstrap(6, fn=fn, seed=9, n_jobs=2)
    assert list(a.replicates.columns) == ["se_int", "llf"]
    np.testing.assert_array_equal(a.replicates.to_numpy(), b.replicates.to_numpy())
    assert a.t0["llf"] == cbpp.llf


def test_warm_stage2_refit_equals_full_two_stage_refit(cbpp):
    """result.refit skips optimizeGlmer's stage 1 (warm start at the fit); the optimum is the
    one the full two-stage glmer path finds on the same simulated response."""
    import dataclasses

    from interlace.engines import fit_frame
    from interlace.inference.bootstrap import _Refitter

    rf = _Refitter(cbpp, None, None)
    for s in range(3):
        y = rf.simulate(np.random.default_rng(s))
        warm = cbpp.refit(y)
        assert warm.optinfo["stage1"]["message"] == "skipped: warm start"
        full = fit_frame(dataclasses.replace(cbpp.model_frame, y=y), cbpp.family, engine="laplace")
        assert warm.llf == pytest.approx(full.llf, abs=1e-7)
        np.testing.assert_allclose(warm.fe_params.to_numpy(), full.fe_params.to_numpy(), atol=1e-4)
        np.testing.assert_allclose(warm.theta.to_numpy(), full.theta.to_numpy(), atol=1e-4)


def test_failed_refits_are_counted_not_dropped(cbpp):
    """A statistic (or refit) that raises is a failed replicate: NaN row, counted, warned."""
    calls = {"n": 0}

    def fragile(r):
        calls["n"] += 1
        if r.fe_params["Intercept"] < cbpp.fe_params["Intercept"]:
            raise RuntimeError("boom")
        return r.fe_params

    with pytest.warns(BootstrapWarning, match=r"refits failed"):
        b = cbpp.bootstrap(20, fn=fragile, seed=4)
    failed = b.status == "failed"
    assert b.n_failed == int(failed.sum()) > 0
    assert len(b.replicates) == 20  # nothing dropped
    assert b.replicates[failed.to_numpy()].isna().all().all()
    assert all("boom" in msg for _i, msg in b.failures)
    assert sorted(i for i, _ in b.failures) == list(np.flatnonzero(failed))
    ci = b.confint()  # failed rows never enter the intervals
    assert np.isfinite(ci.to_numpy()).all()


def test_nonconverged_refits_are_flagged(cbpp, monkeypatch):
    """lme4's convergence check failing on a refit: values kept, flagged, counted, warned."""
    import interlace.optimize.checks as checks

    real = checks.check_convergence
    state = {"n": 0}

    def flaky(g, h, at_bound, *a, **k):
        state["n"] += 1
        msgs = real(g, h, at_bound, *a, **k)
        return msgs + (["Model failed to converge with max|grad| = 1 (tol = 0.002, component 1)"]
                       if state["n"] % 3 == 0 else [])

    monkeypatch.setattr(checks, "check_convergence", flaky)
    with pytest.warns(BootstrapWarning, match=r"3 did not converge"):
        b = cbpp.bootstrap(9, seed=2)
    assert b.n_nonconverged == 3 and b.n_failed == 0
    nc = (b.status == "nonconverged").to_numpy()
    assert np.isfinite(b.replicates[nc].to_numpy()).all()
    assert all("failed to converge" in m for _i, m in b.failures)
    with_nc = b.confint(include_nonconverged=True)
    without = b.confint(include_nonconverged=False)
    assert not with_nc.equals(without)


def test_percentile_interval_is_boots_norm_inter():
    t = np.arange(1.0, 100.0)  # R = 99: (R + 1) * 0.025 = 2.5 is not an integer
    lo, hi = percentile_interval(t, np.array([0.025, 0.975]))
    # interpolated on the normal scale between order statistics 2 and 3 (97 and 98)
    q = stats.norm.ppf
    exp_lo = 2 + (q(0.025) - q(2 / 100)) / (q(3 / 100) - q(2 / 100))
    exp_hi = 97 + (q(0.975) - q(97 / 100)) / (q(98 / 100) - q(97 / 100))
    assert lo == pytest.approx(exp_lo, rel=1e-12) and hi == pytest.approx(exp_hi, rel=1e-12)
    # (R + 1) alpha integral: exactly an order statistic
    t = np.random.default_rng(0).normal(size=199)
    lo, hi = percentile_interval(t, np.array([0.025, 0.975]))
    s = np.sort(t)
    assert lo == s[4] and hi == s[194]
    assert np.isnan(percentile_interval(np.array([np.nan]), np.array([0.5]))).all()


@pytest.mark.r
def test_percentile_interval_live_r():
    if shutil.which("Rscript") is None:
        pytest.skip("no Rscript")
    t = np.random.default_rng(1).gamma(2.0, size=137)
    vec = ",".join(repr(float(v)) for v in t)
    code = (f"t <- c({vec}); cat(sprintf('%.15g', boot:::norm.inter(t, c(0.025, 0.975))[, 2]))")
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True)
    r = np.array([float(v) for v in out.stdout.split()])
    np.testing.assert_allclose(percentile_interval(t, np.array([0.025, 0.975])), r, rtol=1e-12)


def test_bootstrap_distribution_is_sensible(cbpp):
    """Parametric bootstrap of a well-identified model: the replicates centre on the estimates
    and their spread is close to the standard errors."""
    b = cbpp.bootstrap(150, seed=11)
    reps = b.replicates
    for nm in cbpp.fe_params.index:
        sd = reps[nm].std()
        assert abs(reps[nm].mean() - cbpp.fe_params[nm]) < 4 * cbpp.fe_bse[nm] / np.sqrt(150) + 0.05
        assert 0.7 < sd / cbpp.fe_bse[nm] < 1.4


def test_progress_bar(cbpp, capsys):
    cbpp.bootstrap(3, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "3/3" in err  # tqdm's bar (inference/progress.py)
    cbpp.bootstrap(3, seed=0, progress=False)
    assert capsys.readouterr().err == ""


def test_poisson_and_lmm():
    gt = fit_case(load_case("grouseticks_poisson"))
    b = gt.bootstrap(8, seed=3)
    assert b.n_failed == 0 and np.isfinite(b.replicates.to_numpy()).all()
    sl = fit_case(load_case("sleepstudy_ml"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = sl.bootstrap(8, seed=3)
    assert b.n_failed == 0 and np.isfinite(b.replicates.to_numpy()).all()
    # gaussian simulation: residual SD of the refits near sigma
    sig = sl.bootstrap(8, fn=lambda r: np.sqrt(r.scale), seed=3).replicates.iloc[:, 0]
    assert abs(sig.mean() / np.sqrt(sl.scale) - 1) < 0.1


def test_bad_arguments(cbpp):
    with pytest.raises(ValueError, match="nsim"):
        cbpp.bootstrap(0)
    # a statistic with a varying length is a failure, not a silent reshape
    est = cbpp.fe_params["Intercept"]
    with pytest.warns(BootstrapWarning):
        b = cbpp.bootstrap(10, fn=lambda r: np.zeros(4 + int(r.fe_params["Intercept"] < est)), seed=0)
    assert b.n_failed > 0 and all("expected 4" in m for _i, m in b.failures)


def test_exported_api():
    assert interlace.anova is not None
    from interlace.inference.bootstrap import bootstrap  # noqa: F401
