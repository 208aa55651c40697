"""Feedback on long work (issue 23 item 7): verbose= fits, tqdm progress bars for
bootstrap / profile / simulate, profile confint in parallel with n_jobs."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import interlace
from interlace.inference.progress import progress_bar, wants_progress


@functools.lru_cache(maxsize=None)
def cbpp():
    return interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                           interlace.datasets.load("cbpp"), family="binomial")


def test_silent_bar_counts_and_forced_modes():
    with progress_bar(5, "x", enabled=False) as bar:
        bar.update(2)
        bar.update(3)
    assert bar.n == 5
    assert wants_progress(True) and not wants_progress(False)


def test_profile_confint_parallel_equals_serial_and_shows_progress(capsys):
    m = cbpp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = m.confint(parm=[".sig01", "period[T.2]"], method="profile", progress=False)
        parallel = m.confint(parm=[".sig01", "period[T.2]"], method="profile", n_jobs=2, progress=True)
    np.testing.assert_allclose(parallel.to_numpy(), serial.to_numpy(), rtol=1e-8)
    assert "profile" in capsys.readouterr().err


def test_bootstrap_progress_bar_on_stderr(capsys):
    b = cbpp().bootstrap(4, seed=1, progress=True)
    assert b.replicates.shape[0] == 4
    err = capsys.readouterr().err
    assert "bootstrap" in err and "4/4" in err


def test_simulate_blocks_do_not_change_draws(capsys):
    from interlace.results.simulate import simulate

    m = cbpp()
    small = m.simulate(300, seed=5)
    np.testing.assert_array_equal(small, simulate(m, 300, seed=np.random.default_rng(5)))
    a = m.simulate(2100, seed=7, progress=True)
    b = m.simulate(2100, seed=7, progress=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2100, m.nobs)
    assert "simulate" in capsys.readouterr().err


def test_verbose_fit_reports_stages(capsys):
    interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    interlace.datasets.load("cbpp"), family="binomial", verbose=True)
    err = capsys.readouterr().err
    assert "56 rows" in err and "logLik -92.0" in err and "converged" in err
