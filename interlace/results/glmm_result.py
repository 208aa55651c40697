"""GLMMResult: plain attributes holding labelled pandas objects (statsmodels
style) and a summary() that reads like lme4's summary(glmer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class GLMMResult:
    """A fitted generalized linear mixed model.

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> round(m.llf, 2)
    -92.03
    """

    formula: str
    family: Any
    fe_params: pd.Series
    fe_bse: pd.Series
    vcov: pd.DataFrame
    random_effects: dict[str, pd.DataFrame]
    random_effects_sd: dict[str, pd.DataFrame]
    variance_components: pd.Series
    varcorr: pd.DataFrame
    theta: pd.Series
    llf: float
    aic: float
    bic: float
    deviance: float
    df_model: int
    df_resid: int
    nobs: int
    ngroups: dict[str, int]
    scale: float
    fittedvalues: pd.Series
    linear_predictor: pd.Series
    converged: bool
    singular: bool
    optinfo: dict
    nAGQ: int = 1
    disp_params: pd.Series | None = None
    dispersion: np.ndarray | None = None
    zi_params: pd.Series | None = None
    family_params: dict = field(default_factory=dict)
    model_frame: Any = None
    objective: Any = None
    warnings: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ access
    @property
    def params(self) -> pd.Series:
        return self.fe_params

    @property
    def bse(self) -> pd.Series:
        return self.fe_bse

    @property
    def fe_table(self) -> pd.DataFrame:
        """Fixed-effects table: Estimate, Std. Error, z value, Pr(>|z|) (t value for LMMs)."""
        from scipy import stats

        est, se = self.fe_params, self.fe_bse
        z = est / se
        if self._is_lmm:
            return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": z})
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))})

    @property
    def _is_lmm(self) -> bool:
        return getattr(self.family, "name", "") == "gaussian" and getattr(
            getattr(self.family, "link", None), "name", "identity") == "identity" and self.disp_params is None \
            or (getattr(self.family, "name", "") == "gaussian" and self.optinfo.get("engine") == "lmm")

    # ------------------------------------------------------------------ predict
    def predict(self, newdata=None, type: str = "response", include_re: bool = True,
                allow_new_levels: bool = False, offset=None) -> np.ndarray:
        """Predictions on the response scale (``type="response"``) or the link
        scale (``type="link"``); ``include_re=False`` drops the random effects.
        Without ``newdata`` the fitted model's own rows are used."""
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', got {type!r}")
        mf = self.model_frame
        if newdata is None:
            X = mf.X
            blocks = [(t.codes, t.z) for t in mf.terms]
            off = mf.offset
        else:
            X, blocks, off = mf.spec.transform(newdata, allow_new_levels=allow_new_levels, offset=offset)
        eta = np.asarray(X, dtype=float) @ self.fe_params.to_numpy() + np.asarray(off, dtype=float)
        if include_re:
            for term, (codes, z) in zip(mf.terms, blocks):
                b = self.random_effects[term.group][list(term.cnames)].to_numpy() \
                    if self._term_unique(term) else self._term_b(term)
                codes = np.asarray(codes)
                ok = codes >= 0
                contrib = np.zeros(len(codes))
                contrib[ok] = np.einsum("ik,ik->i", np.asarray(z)[ok], b[codes[ok]])
                eta = eta + contrib
        if type == "link":
            return eta
        return np.asarray(self.family.linkinv(eta), dtype=float)

    def _term_unique(self, term) -> bool:
        return sum(t.group == term.group for t in self.model_frame.terms) == 1

    def _term_b(self, term) -> np.ndarray:
        idx = [i for i, t in enumerate(self.model_frame.terms) if t.group == term.group]
        df = self.random_effects[term.group]
        col = 0
        for i in idx:
            t = self.model_frame.terms[i]
            if t is term:
                return df.iloc[:, col:col + t.k].to_numpy()
            col += t.k
        raise KeyError(term.group)

    # ------------------------------------------------------------------ post-fit (delegating)
    def resid(self, type: str = "deviance") -> np.ndarray:
        """Residuals as R's residuals(m, type=...): deviance, pearson, response, working."""
        from interlace.results.residuals import resid

        return resid(self, type=type)

    def simulate(self, nsim: int = 1, seed=None, re: str = "conditional") -> np.ndarray:
        """(nsim, n) responses simulated from the fitted model (lme4's simulate)."""
        from interlace.results.simulate import simulate

        return simulate(self, nsim=nsim, seed=seed, re=re)

    def scaled_residuals(self, nsim: int = 250, seed=None):
        """DHARMa-style randomized quantile residuals."""
        from interlace.results.residuals import scaled_residuals

        return scaled_residuals(self, nsim=nsim, seed=seed)

    def confint(self, parm=None, level: float = 0.95, method: str = "Wald", **kwargs) -> pd.DataFrame:
        """Confidence intervals like lme4's confint.merMod (Wald, profile, boot)."""
        from interlace.inference.confint import confint

        return confint(self, parm=parm, level=level, method=method, **kwargs)

    def bootstrap(self, nsim: int, fn=None, seed=None, n_jobs: int = 1, **kwargs):
        """Parametric bootstrap (lme4's bootMer)."""
        from interlace.inference.bootstrap import bootstrap

        return bootstrap(self, nsim=nsim, fn=fn, seed=seed, n_jobs=n_jobs, **kwargs)

    def plot_caterpillar(self, **kwargs):
        """Caterpillar plot of the conditional modes (needs interlace[plot])."""
        from interlace.results.plots import caterpillar

        return caterpillar(self, **kwargs)

    def plot_residuals(self, **kwargs):
        """Residual diagnostic figure (needs interlace[plot])."""
        from interlace.results.plots import residual_figure

        return residual_figure(self, **kwargs)

    # ------------------------------------------------------------------ summary
    def summary(self) -> "Summary":
        return Summary(self)

    def __repr__(self) -> str:
        return f"<GLMMResult {self.formula!r} family={getattr(self.family, 'name', '?')} llf={self.llf:.4f}>"


class Summary:
    """Text like lme4's summary(glmer); str() is the text, HTML in notebooks."""

    def __init__(self, result: GLMMResult):
        self.result = result
        self.text = _summary_text(result)

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.text)}</pre>"


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.6g}"


def _summary_text(r: GLMMResult) -> str:
    fam = r.family
    link = getattr(getattr(fam, "link", None), "name", "?")
    lines = []
    method = ("Laplace Approximation" if r.nAGQ == 1 else
              f"Adaptive Gauss-Hermite Quadrature (nAGQ = {r.nAGQ})" if r.nAGQ > 1 else "nAGQ = 0 (PIRLS)")
    if r._is_lmm:
        lines.append("Linear mixed model fit by maximum likelihood")
    else:
        lines.append(f"Generalized linear mixed model fit by maximum likelihood ({method}) ['glmerMod']")
        lines.append(f" Family: {getattr(fam, 'name', '?')}  ( {link} )")
    lines.append(f"Formula: {r.formula}")
    lines.append("")
    hdr = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    dev = -2 * r.llf
    vals = [f"{r.aic:.1f}", f"{r.bic:.1f}", f"{r.llf:.1f}", f"{dev:.1f}", f"{r.df_resid}"]
    w = [max(len(h), len(v)) + 1 for h, v in zip(hdr, vals)]
    lines.append(" ".join(h.rjust(k) for h, k in zip(hdr, w)))
    lines.append(" ".join(v.rjust(k) for v, k in zip(vals, w)))
    lines.append("")
    try:
        mf = r.model_frame
        resp = np.asarray(mf.y)
        mu = r.fittedvalues.to_numpy()
        var = np.asarray(fam.variance(mu), dtype=float) * (r.scale if r._is_lmm else 1.0)
        pres = (resp - mu) * np.sqrt(np.asarray(mf.weights) / np.maximum(var, 1e-300))
        q = np.quantile(pres, [0, 0.25, 0.5, 0.75, 1.0])
        lines.append("Scaled residuals: ")
        names = ["Min", "1Q", "Median", "3Q", "Max"]
        vs = [f"{v:.4f}" for v in q]
        ww = [max(len(a), len(b)) + 1 for a, b in zip(names, vs)]
        lines.append(" ".join(a.rjust(k) for a, k in zip(names, ww)))
        lines.append(" ".join(b.rjust(k) for b, k in zip(vs, ww)))
        lines.append("")
    except Exception:  # summary must never fail on the residual block
        pass
    lines.append("Random effects:")
    vc = r.varcorr
    rows = [("Groups", "Name", "Variance", "Std.Dev.", "Corr")]
    last_grp = None
    for grp, sub in vc.groupby("grp", sort=False):
        var_rows = sub[sub["var2"].isna()]
        cor_rows = sub[sub["var2"].notna()]
        names = list(var_rows["var1"].fillna(""))
        for i, (_, row) in enumerate(var_rows.iterrows()):
            corr = ""
            if i > 0:
                cs = []
                for prev in names[:i]:
                    m = cor_rows[(cor_rows["var1"] == prev) & (cor_rows["var2"] == names[i])]
                    cs.append(f"{m['sdcor'].iloc[0]:.2f}" if len(m) else "")
                corr = " ".join(cs)
            rows.append((grp if grp != last_grp else "", "" if row["var1"] is None else str(row["var1"]),
                         _fmt(row["vcov"]), _fmt(row["sdcor"]), corr))
            last_grp = grp
    widths = [max(len(x[c]) for x in rows) for c in range(5)]
    for x in rows:
        lines.append(" " + " ".join(s.ljust(wd) for s, wd in zip(x, widths)).rstrip())
    ng = "; ".join(f"{g}, {n}" for g, n in r.ngroups.items())
    lines.append(f"Number of obs: {r.nobs}, groups:  {ng}")
    lines.append("")
    lines.append("Fixed effects:")
    lines.append(r.fe_table.to_string(float_format=lambda v: f"{v:.5g}"))
    if len(r.fe_params) > 1:
        se = r.fe_bse.to_numpy()
        corr = r.vcov.to_numpy() / np.outer(se, se)
        lines.append("")
        lines.append("Correlation of Fixed Effects:")
        names = list(r.fe_params.index)
        short = [n[:6] for n in names]
        lines.append(" " * 12 + " ".join(s.rjust(6) for s in short[:-1]))
        for i in range(1, len(names)):
            lines.append(names[i][:11].ljust(12) + " ".join(f"{corr[i, j]:6.3f}" for j in range(i)))
    msgs = r.optinfo.get("messages", [])
    if r.singular:
        lines.append("optimizer: boundary (singular) fit: see help('isSingular')")
    for mmsg in msgs:
        if "singular" not in mmsg:
            lines.append(mmsg)
    return "\n".join(lines)
