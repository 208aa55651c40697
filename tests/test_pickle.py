"""A GLMMResult holds data, not machinery (issue 18 item 5): it pickles, deep-copies and
unpickles in a fresh process, where predict / summary / confint / simulate give the numbers
of the original fit; refit(new_response) is lme4's refit."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import interlace

FITS = {
    "laplace": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", {}),
    "agq": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", {"nAGQ": 5}),
    "lmm": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian", {}),
    "general": ("TICKS ~ YEAR + (1 | LOCATION)", "grouseticks", "negativebinomial", {}),
}


def _fit(key):
    formula, data, family, kw = FITS[key]
    df = interlace.datasets.load(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(formula, df, family=family, **kw), df


def _post(m, df) -> dict:
    """The post-fit numbers compared across the pickle boundary."""
    head = df.head(5)
    out = {
        "predict": np.asarray(m.predict(head)).tolist(),
        "predict_link": np.asarray(m.predict(head, type="link")).tolist(),
        "summary": str(m.summary()),
        "confint": m.confint().to_numpy().tolist(),
        "simulate": m.simulate(2, seed=7).tolist(),
        "llf": m.llf,
    }
    if m.optinfo["engine"] in ("laplace", "lmm"):
        out["se_fit"] = np.asarray(m.predict(head, se_fit=True).se_fit).tolist()
    return out


@pytest.mark.parametrize("key", list(FITS))
def test_pickle_deepcopy_and_fresh_process(key, tmp_path):
    m, df = _fit(key)
    want = _post(m, df)
    blob = pickle.dumps(m)
    assert b"numba" not in blob  # no engine state travels
    m2 = pickle.loads(blob)
    assert m2.__dict__.get("_objective") is None  # rebuilt on first use
    got_same = _post(m2, df)
    got_copy = _post(copy.deepcopy(m), df)
    for got in (got_same, got_copy):
        assert got["summary"] == want["summary"]
        for k in want:
            if k != "summary":
                np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-12)
    path = tmp_path / "fit.pkl"
    path.write_bytes(blob)
    script = (
        "import json, pickle, sys, warnings\n"
        "import interlace\n"
        f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "from test_pickle import _post\n"
        f"m = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"df = interlace.datasets.load({FITS[key][1]!r})\n"
        "warnings.simplefilter('ignore')\n"
        "print(json.dumps(_post(m, df)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh["summary"] == want["summary"]
    for k in want:
        if k != "summary":
            np.testing.assert_allclose(fresh[k], want[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("key", ["laplace", "lmm", "general"])
def test_refit_same_response_reproduces_the_fit(key):
    """refit(y) on the fitted response returns the fit (lme4's refit(m) == m)."""
    m, _df = _fit(key)
    r = m.refit(m.model_frame.y)
    assert r.llf == pytest.approx(m.llf, abs=1e-6)
    np.testing.assert_allclose(r.fe_params.to_numpy(), m.fe_params.to_numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r.theta.to_numpy(), m.theta.to_numpy(), rtol=1e-3, atol=1e-5)


def test_refit_checks_the_response_length():
    m, _df = _fit("laplace")
    with pytest.raises(ValueError, match="new response has 3 values"):
        m.refit(np.zeros(3))
