"""Formula syntax of covariance structures (issue 21 item 1): the structure's name wrapping a
bar term, in the formula and in ``random=``, and the registry behind it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.formula.bars import Bar, expand_bars, parse_bar, scan_formula
from interlace.model.covariance import (STRUCTURES, Covariance, Diagonal, Unstructured, make_structure,
                                        register_structure)
from interlace.model_frame import build_model_frame


def test_scan_structures_and_args():
    p = scan_formula("y ~ x + ar1(0 + t | s) + rr(0 + trait | site, d = 2) + exp(pos + 0 | g) + log(x)")
    assert p.fixed == "x + log(x)"
    assert [(b.structure, b.lhs, b.group, b.args) for b in p.bars] == [
        ("ar1", "0 + t", "s", ()), ("rr", "0 + trait", "site", (("d", 2),)), ("exp", "pos + 0", "g", ())]
    assert parse_bar("rr(0 + trait | site, 2L)").args == (("", 2),)
    assert parse_bar("cs(0 + f | g)").text() == "cs(0 + f | g)"
    # nesting expands with the structure kept on each term
    assert [b.text() for b in expand_bars([parse_bar("diag(1 + x | a/b)")])] == [
        "diag(1 + x | a)", "diag(1 + x | b:a)"]


@pytest.mark.parametrize("bad", ["y ~ diag(1 + x || g)", "y ~ x - cs(0 + f | g)",
                                 "y ~ rr(0 + f | g, d = h | k)", "y ~ rr(0 + f | g, d = sqrt(2))"])
def test_malformed_structure_terms(bad):
    with pytest.raises(ValueError):
        scan_formula(bad)


def _df(seed=1):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(30), 8)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(size=30)[g] + 0.4 * x * rng.normal(size=30)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g, "f": np.tile(list("abcd"), g.size // 4)})


def test_registry_builds_terms():
    mf = build_model_frame("y ~ x + diag(1 + x | g)", _df(), family="gaussian")
    assert isinstance(mf.terms[0].cov, Diagonal) and mf.terms[0].k == 2
    mf = build_model_frame("y ~ x", _df(), family="gaussian", random=["us(1 + x | g)"])
    assert isinstance(mf.terms[0].cov, Unstructured)
    assert make_structure("us", ["a", "b", "c"]) == Unstructured(3)
    assert STRUCTURES["diag"] is Diagonal


def test_unknown_structure_names_the_term():
    with pytest.raises(ValueError, match=r"foo\(1 \+ x \| g\).*unknown covariance structure 'foo'"):
        build_model_frame("y ~ x + foo(1 + x | g)", _df(), family="gaussian")
    with pytest.raises(ValueError, match=r"us\(1 \+ x \| g, d = 2\).*takes no arguments"):
        build_model_frame("y ~ x + us(1 + x | g, d = 2)", _df(), family="gaussian")


def test_register_structure_checks():
    class Mine(Covariance):
        name = "mine"

    with pytest.raises(ValueError, match="already registered"):
        register_structure("us", Mine)
    with pytest.raises(TypeError):
        register_structure("mine", int)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        register_structure("not a name", Mine)


def test_us_and_diag_syntax_fit_as_lme4():
    df = _df()
    us = interlace.lmer("y ~ x + us(1 + x | g)", df, REML=False)
    plain = interlace.lmer("y ~ x + (1 + x | g)", df, REML=False)
    assert us.llf == pytest.approx(plain.llf, abs=1e-8)
    dg = interlace.lmer("y ~ x", df, random=["diag(1 + x | g)"], REML=False)
    dbl = interlace.lmer("y ~ x + (1 + x || g)", df, REML=False)
    assert dg.llf == pytest.approx(dbl.llf, abs=1e-7)
    np.testing.assert_allclose(dg.varcorr["vcov"].to_numpy(), dbl.varcorr["vcov"].to_numpy(), rtol=1e-5)
    # the diag structure is one term (one VarCorr group), as glmmTMB prints it
    assert dg.varcorr["grp"].tolist() == ["g", "g", "Residual"]
