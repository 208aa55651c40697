"""One test per validation rule: each error names the column or argument at fault."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interlace.model_frame import ReTerm, build_model_frame
from interlace.validation import known_families, validate_fit_args


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 60
    return pd.DataFrame(
        {
            "y": rng.poisson(2.0, n),
            "p": rng.uniform(0.05, 0.95, n),
            "pos": rng.gamma(2.0, 1.0, n),
            "s": rng.binomial(5, 0.4, n),
            "n": np.full(n, 5),
            "x": rng.normal(size=n),
            "g": np.repeat(np.arange(10), 6),
            "h": np.tile(np.arange(6), 10),
            "one": np.zeros(n, dtype=int),
            "id": np.arange(n),
        }
    )


def mf(df, formula="y ~ x + (1 | g)", family="poisson", **kw):
    return build_model_frame(formula, df, family=family, **kw)


# ------------------------------------------------------------ unknown columns


def test_unknown_response_column(df):
    with pytest.raises(ValueError, match="response.*yy"):
        mf(df, "yy ~ x + (1 | g)")


def test_unknown_fixed_column(df):
    with pytest.raises(ValueError, match="fixed-effects.*xx"):
        mf(df, "y ~ xx + (1 | g)")


def test_unknown_grouping_column(df):
    with pytest.raises(ValueError, match="grouping factor gg"):
        mf(df, "y ~ x + (1 | gg)")
    with pytest.raises(ValueError, match="grouping factor gg"):
        mf(df, "y ~ x", groups="gg")


def test_unknown_weights_and_offset_columns(df):
    with pytest.raises(ValueError, match="weights.*ww"):
        mf(df, weights="ww")
    with pytest.raises(ValueError, match="offset.*oo"):
        mf(df, offset="log(oo)")


# ------------------------------------------------------------ random terms


@pytest.mark.parametrize("term", ["(1 | )", "(|g)", "(1 | g", "(1 | g | h)", "(1 | a + b)"])
def test_malformed_random_terms(df, term):
    with pytest.raises(ValueError, match="random-effect|parenthes"):
        mf(df, f"y ~ x + {term}")
    with pytest.raises(ValueError, match="random-effect|parenthes"):
        mf(df, "y ~ x", random=[term])


def test_no_random_term_is_a_glm_frame(df):
    """A formula without a random-effect term is a GLM (issue 22 item 3), not an error."""
    assert mf(df, "y ~ x").terms == []


def test_single_level_grouping_factor(df):
    with pytest.raises(ValueError, match="'one'.*> 1 sampled level"):
        mf(df, "y ~ x + (1 | one)")


def test_more_random_effects_than_observations(df):
    d = df.assign(z=np.random.default_rng(0).normal(size=len(df)))
    # id has n levels; 2 columns -> q = 2n > n
    with pytest.raises(ValueError, match=r"number of observations \(=60\) < number of random effects \(=120\)"):
        mf(d, "y ~ x + (1 + z | id)")


def test_observation_level_random_effect_allowed_for_glmm(df):
    frame = mf(df, "y ~ x + (1 | id)")
    assert frame.terms[0].nlevels == frame.n


def test_observation_level_random_effect_rejected_for_gaussian(df):
    with pytest.raises(ValueError, match="unidentifiable"):
        mf(df, "x ~ 1 + (1 | id)", family="gaussian")


def test_duplicate_term_between_formula_and_groups(df):
    with pytest.raises(ValueError, match="given twice"):
        mf(df, "y ~ x + (1 | g)", groups="g")


def test_groups_wrong_type(df):
    with pytest.raises(TypeError, match="groups"):
        mf(df, "y ~ x", groups=3)
    with pytest.raises(TypeError, match="random"):
        mf(df, "y ~ x", random=[1])


# ------------------------------------------------------------ responses


def test_binomial_outside_unit_interval(df):
    with pytest.raises(ValueError, match="binomial response 'y'"):
        mf(df, "y ~ x + (1 | g)", family="binomial")


def test_binomial_cbind_negative_failures(df):
    with pytest.raises(ValueError, match="negative numbers of failures"):
        mf(df, "cbind(s, s - n) ~ x + (1 | g)", family="binomial")


@pytest.mark.parametrize("family", ["poisson", "negativebinomial", "nbinom1", "zip", "zinb", "hurdle_poisson", "genpois"])
def test_negative_counts(df, family):
    with pytest.raises(ValueError, match="negative counts"):
        mf(df.assign(y=df["y"] - 3), family=family)


def test_noninteger_counts_warn_for_poisson(df):
    with pytest.warns(UserWarning, match="non-integer counts"):
        mf(df.assign(y=df["y"] + 0.5))


def test_gamma_nonpositive(df):
    with pytest.raises(ValueError, match="gamma response 'x'"):
        mf(df, "x ~ 1 + (1 | g)", family="gamma")


def test_beta_outside_open_interval(df):
    d = df.assign(p=df["p"].where(df.index != 0, 1.0))
    with pytest.raises(ValueError, match="beta response 'p'"):
        mf(d, "p ~ x + (1 | g)", family="beta")
    mf(df, "p ~ x + (1 | g)", family="beta")  # inside (0, 1) is fine


def test_zoib_outside_closed_interval(df):
    d = df.assign(p=df["p"].where(df.index != 0, 1.5))
    with pytest.raises(ValueError, match="zoib response 'p'"):
        mf(d, "p ~ x + (1 | g)", family="zoib")
    mf(df.assign(p=df["p"].where(df.index != 0, 1.0)), "p ~ x + (1 | g)", family="zoib")


def test_constant_response(df):
    with pytest.raises(ValueError, match="response 'y' is constant"):
        mf(df.assign(y=3))


def test_family_object_validate_response_is_used(df):
    class Picky:
        name = "picky"
        calls: list = []

        def validate_response(self, y, weights, column_name):
            self.calls.append(column_name)
            raise ValueError(f"picky family rejects {column_name!r}")

    with pytest.raises(ValueError, match="picky family rejects 'y'"):
        mf(df, family=Picky())


def test_unknown_family_lists_known(df):
    with pytest.raises(ValueError, match="unknown family 'binomal'; known families: .*binomial.*poisson"):
        mf(df, family="binomal")
    assert "binomial" in known_families()


# ------------------------------------------------------------ weights and offset


def test_weights_nonfinite_negative_wrong_length(df):
    w = np.ones(len(df))
    with pytest.raises(ValueError, match="weights has non-finite"):
        mf(df, weights=np.where(np.arange(len(df)) == 0, np.inf, w))
    with pytest.raises(ValueError, match="weights has negative"):
        mf(df, weights=-w)
    with pytest.raises(ValueError, match="weights has length 3"):
        mf(df, weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="weights must be numeric, got dtype object holding strings"):
        mf(df, weights=["a"] * len(df))
    with pytest.raises(ValueError, match="numeric strings are refused"):
        mf(df, weights=["1"] * len(df))


def test_offset_nonfinite_and_wrong_length(df):
    with pytest.raises(ValueError, match="offset has non-finite"):
        mf(df, offset=np.full(len(df), np.inf))
    with pytest.raises(ValueError, match="offset has length 2"):
        mf(df, offset=[0.0, 1.0])
    with pytest.raises(ValueError, match="offset.*non-finite"):
        mf(df, "y ~ x + offset(log(x)) + (1 | g)")  # log of negatives


# ------------------------------------------------------------ data


def test_empty_frame(df):
    with pytest.raises(ValueError, match="data is empty"):
        mf(df.iloc[:0])


def test_not_a_frame(df):
    with pytest.raises(TypeError, match="data must be a data frame"):
        mf({"y": [1, 2]})
    with pytest.raises(TypeError, match="data must be a data frame"):
        mf(np.zeros((3, 2)))


def test_missing_raise(df):
    d = df.astype({"x": float})
    d.loc[0, "x"] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) have missing values in: x"):
        mf(d, missing="raise")
    with pytest.raises(ValueError, match="missing must be"):
        mf(df, missing="ignore")


def test_rank_deficient_warning(df):
    with pytest.warns(UserWarning, match="rank deficient so dropping 1 column / coefficient: x2"):
        frame = mf(df.assign(x2=-df["x"]), "y ~ x + x2 + (1 | g)")
    assert frame.dropped_columns == ["x2"]


def test_scale_warning(df):
    with pytest.warns(UserWarning, match="Some predictor variables are on very different scales"):
        mf(df.assign(big=df["p"] * 1e4), "y ~ x + big + (1 | g)")


# ------------------------------------------------------------ fit arguments


def _terms(*groups_k):
    out = []
    for g, k in groups_k:
        out.append(ReTerm(group=g, vc_name=g, codes=np.zeros(4, dtype=np.int64), levels=["a", "b"],
                          z=np.ones((4, k)), cnames=["Intercept"] * k))
    return out


def _fit(**kw):
    args = dict(optimizer="lbfgsb", theta0_len_expected=1, theta0=None, nAGQ=1, terms=_terms(("g", 1)),
                dispformula=None)
    args.update(kw)
    validate_fit_args(**args)


def test_valid_fit_args_pass():
    _fit()
    _fit(optimizer="bobyqa", theta0=[0.5], nAGQ=25)
    _fit(optimizer="nelder-mead", nAGQ=0)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'bfgs'; known optimizers: lbfgsb, bobyqa, nelder-mead"):
        _fit(optimizer="bfgs")
    with pytest.raises(TypeError, match="optimizer"):
        _fit(optimizer=None)


def test_theta0_wrong_length():
    with pytest.raises(ValueError, match="theta0 has length 2"):
        _fit(theta0=[1.0, 1.0])


def test_nagq_negative_or_not_integer():
    with pytest.raises(ValueError, match="nAGQ must be >= 0"):
        _fit(nAGQ=-1)
    with pytest.raises(ValueError, match="nAGQ must be a whole number"):
        _fit(nAGQ=2.5)
    with pytest.raises(TypeError, match="nAGQ"):
        _fit(nAGQ="5")


def test_nagq_above_one_needs_one_grouping_factor():
    with pytest.raises(ValueError, match="nAGQ > 1 needs exactly one grouping factor.*2"):
        _fit(nAGQ=5, terms=_terms(("g", 1), ("h", 1)), theta0_len_expected=2)
    # vector terms on one factor are allowed (vector AGQ is planned)
    _fit(nAGQ=5, terms=_terms(("g", 2)), theta0_len_expected=3)


def test_dispformula_with_nagq():
    with pytest.raises(ValueError, match="dispformula cannot be combined with nAGQ > 1"):
        _fit(nAGQ=3, dispformula="~ z")
