"""summary(): the text of lme4's summary(glmer) / summary(lmer), plus the
same pieces as DataFrames for programs and HTML for notebooks.

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> s = m.summary()
>>> print(str(s).splitlines()[1])
 Family: binomial  ( logit )
>>> list(s.fe_table.columns)
['Estimate', 'Std. Error', 'z value', 'Pr(>|z|)']
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import special  # scipy.stats costs ~1 s of import time; ndtr is enough

from interlace.model.covariance import Unstructured, term_covariance
from interlace.results.rformat import (  # re-exported: the summary's formatting rules
    _pformat,
    _stars,
    abbreviate,
    abbreviate_unique,
    format_common,
    r_coef_name,
)

__all__ = ["Summary", "fe_table", "abbreviate", "format_common"]


# --------------------------------------------------------------------------- formatting helpers


def _table(rows: list[tuple[str, ...]], align: list[str]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [s.ljust(w) if a == "l" else s.rjust(w) for s, w, a in zip(r, widths, align)]
        out.append(" ".join(cells).rstrip())
    return out


# --------------------------------------------------------------------------- pieces


def is_lmm(result) -> bool:
    """True for the Gaussian identity model fitted by the LMM path (lmer)."""
    return result.optinfo.get("engine") == "lmm"


def is_lmer(result) -> bool:
    """True for a fit of interlace.lmer (lmerTest's tables apply)."""
    return is_lmm(result) and "REML" in result.optinfo


def fe_table(result, ddf: str | None = None) -> pd.DataFrame:
    """Fixed-effects table: Estimate, Std. Error, z value, Pr(>|z|) (lme4's
    coef(summary(m))); for ``glmer(family="gaussian")`` ``t value`` without
    p-values, as lme4's lmer prints it; for an ``interlace.lmer`` fit
    lmerTest's Estimate, Std. Error, df, t value, Pr(>|t|) with ``ddf``
    "Satterthwaite" (default) or "Kenward-Roger"."""
    est, se = result.fe_params, result.fe_bse
    z = est / se
    if is_lmer(result):
        from interlace.inference.lmertest import coef_table

        return coef_table(result, ddf or "Satterthwaite")
    if is_lmm(result):
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": z})
    if result.optinfo.get("dispersion_method") == "pearson":
        # a GLM with its dispersion estimated (summary.glm): t tests on the residual df
        from scipy import stats

        df = result.nobs - len(est)
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": z,
                             "Pr(>|t|)": 2 * stats.t.sf(np.abs(z), df)})
    return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z,
                         "Pr(>|z|)": 2 * special.ndtr(-np.abs(z))})


def term_structures(result) -> dict[str, tuple[Any, np.ndarray]]:
    """Per VarCorr group: the term's covariance structure and its parameters (``result.theta``'s
    slice), for the terms of the model frame (empty when the result carries none)."""
    mf = getattr(result, "model_frame", None)
    terms = getattr(mf, "terms", None) or []
    theta = np.asarray(getattr(result, "theta", []), dtype=float)
    out: dict[str, tuple[Any, np.ndarray]] = {}
    off = 0
    for t in terms:
        cov = term_covariance(t)
        out[t.vc_name] = (cov, theta[off:off + cov.nparams])
        off += cov.nparams
    if off != theta.size:
        return {}
    return out


def varcorr_matrices(result) -> dict[str, dict[str, pd.DataFrame | pd.Series]]:
    """Per group: the SDs (``"sd"``), the full correlation matrix (``"corr"``) and the
    covariance matrix (``"cov"``) of its random effects, labelled by the term's columns
    (glmmTMB's ``attr(VarCorr(m)$cond$g, "correlation")``; VarCorr's frame lists only the
    structure's own correlations, one for ar1).

    >>> import interlace
    >>> m = interlace.lmer("Reaction ~ Days + (Days | Subject)", interlace.datasets.load("sleepstudy"))
    >>> varcorr_matrices(m)["Subject"]["corr"].shape
    (2, 2)
    """
    out: dict[str, dict[str, pd.DataFrame | pd.Series]] = {}
    scale = float(result.scale) if is_lmm(result) else 1.0
    mf = result.model_frame
    structs = term_structures(result)
    for t in mf.terms:
        cov, par = structs[t.vc_name]
        lam = cov.lambda_(par)
        S = scale * (lam @ lam.T)
        sd = np.sqrt(np.diag(S))
        with np.errstate(invalid="ignore", divide="ignore"):
            R = S / np.outer(sd, sd)
        np.fill_diagonal(R, 1.0)
        names = [_r_name(c) for c in t.cnames]
        out[t.vc_name] = {"sd": pd.Series(sd, index=names), "corr": pd.DataFrame(R, index=names, columns=names),
                          "cov": pd.DataFrame(S, index=names, columns=names)}
    return out


def re_table(result) -> pd.DataFrame:
    """The random-effects table: Groups, Name, Variance, Std.Dev., Corr
    (correlations with the earlier terms of the same block, as a list) and Structure (the
    tag glmmTMB prints after a structure's correlation, ``0.67 (ar1)``; "" for none)."""
    vc = result.varcorr
    structs = term_structures(result)
    rows = []
    for grp, sub in vc.groupby("grp", sort=False):
        var_rows = sub[sub["var2"].isna()]
        cor_rows = sub[sub["var2"].notna()]
        names = [None if pd.isna(v) else str(v) for v in var_rows["var1"]]
        cov = structs.get(grp, (None, None))[0]
        label = getattr(cov, "vc_label", None) or ""
        for i, (_, row) in enumerate(var_rows.iterrows()):
            if i and getattr(cov, "vc_first_row_only", False):
                break
            corr = []
            if label:
                # one correlation for the structure, on its first row (glmmTMB's layout)
                if i == 0 and len(cor_rows):
                    corr = [float(cor_rows["sdcor"].iloc[0])]
            elif cov is not None and not isinstance(cov, Unstructured) and cov.correlated:
                R = cov.correlation(structs[grp][1]) if hasattr(cov, "correlation") else None
                corr = [] if R is None else [float(R[i, b]) for b in range(i)]
            else:
                for prev in names[:i]:
                    mm = cor_rows[(cor_rows["var1"] == prev) & (cor_rows["var2"] == names[i])]
                    corr.append(float(mm["sdcor"].iloc[0]) if len(mm) else np.nan)
            rows.append({"Groups": grp, "Name": "" if names[i] is None else _r_name(names[i]),
                         "Variance": float(row["vcov"]), "Std.Dev.": float(row["sdcor"]), "Corr": corr,
                         "Structure": label if corr and label else ""})
    return pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr", "Structure"])


def _r_name(name: str) -> str:
    return "(Intercept)" if name == "Intercept" else name


def scaled_pearson(result) -> np.ndarray:
    """lme4's residuals(m, "pearson", scaled = TRUE): Pearson residuals over sigma."""
    from interlace.results.residuals import resid

    r = resid(result, type="pearson")
    if is_lmm(result):
        r = r / math.sqrt(result.scale)
    return r


# --------------------------------------------------------------------------- Summary


class Summary:
    """lme4's summary(glmer): ``str()`` is the text, ``_repr_html_`` renders it
    in a notebook; the parts are attributes (``header``, ``residual_quantiles``,
    ``re_table``, ``fe_table``, ``fe_corr``, ``messages``)."""

    def __init__(self, result: Any, ddf: str | None = None):
        self.result = result
        self.ddf = ddf
        r = result
        self.header = pd.Series({"AIC": r.aic, "BIC": r.bic, "logLik": r.llf, "deviance": -2.0 * r.llf,
                                 "df.resid": r.df_resid})
        try:
            q = np.quantile(scaled_pearson(r), [0, 0.25, 0.5, 0.75, 1.0])
            self.residual_quantiles = pd.Series(q, index=["Min", "1Q", "Median", "3Q", "Max"])
        except Exception:  # families without Pearson residuals: the block is left out
            self.residual_quantiles = None
        self.re_table = re_table(r)
        self.fe_table = fe_table(r, ddf)
        se = r.fe_bse.to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = r.vcov.to_numpy(dtype=float) / np.outer(se, se)
        self.fe_corr = pd.DataFrame(corr, index=r.fe_params.index, columns=r.fe_params.index)
        self.messages = self._messages()
        self.text = self._text()

    # ------------------------------------------------------------ text
    def _messages(self) -> list[str]:
        r = self.result
        out = []
        code = 0 if r.converged else 1
        out.append(f"optimizer ({r.optinfo.get('optimizer', '?')}) convergence code: {code} "
                   f"({'OK' if code == 0 else 'see optinfo'})")
        for m in r.optinfo.get("messages", []):
            if m not in out:
                out.append(m)
        return out

    def _title(self) -> list[str]:
        r = self.result
        fam = r.family
        link = getattr(getattr(fam, "link", None), "name", "?")
        if is_lmer(r):
            how = "REML" if r.optinfo["REML"] else "maximum likelihood "
            meth = "Kenward-Roger's" if str(self.fe_table.attrs.get("ddf", "")).startswith("K") else "Satterthwaite's"
            return [f"Linear mixed model fit by {how}. t-tests use {meth} method ['lmerModLmerTest']"]
        if is_lmm(r):
            return ["Linear mixed model fit by maximum likelihood  ['lmerMod']"]
        if r.optinfo.get("engine") == "glm":  # no random-effect term
            return ["Generalized linear model fit by maximum likelihood ['glm']",
                    f" Family: {getattr(fam, 'name', '?')}  ( {link} )"]
        if r.nAGQ > 1:
            method = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {r.nAGQ}"
        elif r.nAGQ == 0:
            method = "nAGQ = 0 (PIRLS only)"
        else:
            method = "Laplace Approximation"
        if r.optinfo.get("REML"):  # glmer(REML=True): glmmTMB's REML, beta integrated out with u
            return [f"Generalized linear mixed model fit by REML ({method}, fixed effects integrated out as "
                    "glmmTMB's REML = TRUE)", f" Family: {getattr(fam, 'name', '?')}  ( {link} )"]
        return [f"Generalized linear mixed model fit by maximum likelihood ({method}) ['glmerMod']",
                f" Family: {getattr(fam, 'name', '?')}  ( {link} )"]

    def _text(self) -> str:
        r = self.result
        lines = self._title()
        lines.append(f"Formula: {r.formula}")
        if r.disp_params is not None and not is_lmm(r):
            lines.append("Dispersion:        ~ " + " + ".join(map(str, r.disp_params.index)))
        lines.append("")
        h = self.header
        if is_lmer(r) and r.optinfo["REML"]:
            lines.append(f"REML criterion at convergence: {-2.0 * r.llf:.1f}")
        else:
            vals = [f"{h['AIC']:.1f}", f"{h['BIC']:.1f}", f"{h['logLik']:.1f}", f"{h['deviance']:.1f}",
                    f"{int(h['df.resid'])}"]
            w = [max(len(a), len(b)) + 1 for a, b in zip(h.index, vals)]
            lines.append(" ".join(a.rjust(k) for a, k in zip(h.index, w)))
            lines.append(" ".join(b.rjust(k) for b, k in zip(vals, w)))
        lines.append("")
        if self.residual_quantiles is not None:
            q = self.residual_quantiles
            vs = [f"{v:.4f}" for v in q]
            ww = [max(len(a), len(b)) for a, b in zip(q.index, vs)]
            lines.append("Scaled residuals: ")
            lines.append(" ".join(a.rjust(k) for a, k in zip(q.index, ww)))
            lines.append(" ".join(b.rjust(k) for b, k in zip(vs, ww)))
            lines.append("")
        if r.ngroups:
            lines += self._re_lines()
        else:  # a GLM
            lines += [f"Number of obs: {r.nobs}", ""]
        lines += self._fixed_lines()
        side = getattr(r, "side_models", None) or {}
        if r.zi_params is not None:
            lines.append("")
            lines.append("Zero-inflation model:")
            lines += _side_re_lines(side.get("zi"))
            lines += self._coef_lines(r.zi_params, getattr(r, "zi_bse", None))
        if r.disp_params is not None and not is_lmm(r):
            lines.append("")
            lines.append("Dispersion model (log scale):")
            lines += _side_re_lines(side.get("disp"))
            lines += self._coef_lines(r.disp_params, getattr(r, "disp_bse", None))
        return self._finish(lines)

    def _re_lines(self) -> list[str]:
        r = self.result
        lines = ["Random effects:"]
        rt = self.re_table
        var_s = format_common(rt["Variance"], 4)
        sd_s = format_common(rt["Std.Dev."], 4)
        has_corr = any(len(c) for c in rt["Corr"])
        rows = [("Groups", "Name", "Variance", "Std.Dev.") + (("Corr",) if has_corr else ())]
        prev = None
        for i, row in rt.iterrows():
            cells = (row["Groups"] if row["Groups"] != prev else "", row["Name"], var_s[i], sd_s[i])
            if has_corr:
                cell = " ".join("  NA " if not np.isfinite(c) else f"{c:5.2f}" for c in row["Corr"])
                cells += (f"{cell} ({row['Structure']})" if row["Structure"] else cell,)
            rows.append(cells)
            prev = row["Groups"]
        lines += [" " + s for s in _table(rows, ["l", "l", "l", "l", "l"][:len(rows[0])])]
        ng = "; ".join(f"{g}, {n}" for g, n in r.ngroups.items())
        lines.append(f"Number of obs: {r.nobs}, groups:  {ng}")
        lines.append("")
        return lines

    def _finish(self, lines: list[str]) -> str:
        r = self.result
        fp = {k: v for k, v in (r.family_params or {}).items() if np.isscalar(v) and not isinstance(v, str)}
        if fp:
            lines.append("")
            lines.append("Family parameters: " + ", ".join(f"{k} = {float(v):.4g}" for k, v in fp.items()))
        if len(r.fe_params) > 1:
            lines.append("")
            lines.append("Correlation of Fixed Effects:")
            # lme4's layout: rows abbreviated to 11, columns to 6 characters, both made unique
            rnames = [r_coef_name(n) for n in r.fe_params.index]
            short = abbreviate_unique(rnames, 6)
            names = abbreviate_unique(rnames, 11)
            cw = max(6, max(len(s) for s in short[:-1]))
            nw = max(len(n) for n in names[1:])
            corr = self.fe_corr.to_numpy()
            lines.append(" " * nw + " " + " ".join(s.rjust(cw) for s in short[:-1]))
            for i in range(1, len(names)):
                cells = [f"{corr[i, j]:.3f}" for j in range(i)]
                lines.append((names[i].ljust(nw) + " " + " ".join(c.rjust(cw) for c in cells)).rstrip())
        tail = self.messages[1:] if self.result.converged else self.messages
        if tail:
            lines.append("")
            lines += tail
        return "\n".join(lines)

    def _fixed_lines(self) -> list[str]:
        ft = self.fe_table
        lines = ["Fixed effects:"]
        est = format_common(ft["Estimate"], 4)
        se = format_common(ft["Std. Error"], 4)
        zc = "t value" if "t value" in ft.columns else "z value"
        zs = [f"{v:.3f}" for v in ft[zc]]
        with_df = "df" in ft.columns
        pcol = "Pr(>|t|)" if "Pr(>|t|)" in ft.columns else "Pr(>|z|)"
        head = ("", "Estimate", "Std. Error") + (("df",) if with_df else ()) + (zc,)
        with_p = pcol in ft.columns
        if with_p:
            head += (pcol, "")
        dfs = format_common(ft["df"], 4) if with_df else None
        rows = [head]
        for i, name in enumerate(ft.index):
            cells = (_r_name(name), est[i], se[i]) + ((dfs[i],) if with_df else ()) + (zs[i],)
            if with_p:
                p = float(ft[pcol].iloc[i])
                cells += (_pformat(p), _stars(p))
            rows.append(cells)
        lines += _table(rows, ["l", "r", "r", "r", "r", "r", "l"][:len(head)])
        if with_p:
            lines.append("---")
            lines.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
        return lines

    @staticmethod
    def _coef_lines(params: pd.Series, bse) -> list[str]:
        if bse is None:
            return [f"{_r_name(k)}: {float(v):.4g}" for k, v in params.items()]
        z = params / bse
        df = pd.DataFrame({"Estimate": params, "Std. Error": bse, "z value": z,
                           "Pr(>|z|)": 2 * special.ndtr(-np.abs(z))})
        return df.to_string(float_format=lambda v: f"{v:.4g}").splitlines()

    # ------------------------------------------------------------ display
    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """lme4's summary as one HTML layout (interlace/results/html.py)."""
        from interlace.results.html import summary_html

        return summary_html(self)


def _side_re_lines(model) -> list[str]:
    """The random effects of a side model (``ziformula`` / ``dispformula``), as glmmTMB's
    summary prints them above that model's coefficients: variances and SDs per term."""
    if not model:
        return []
    vc = model["varcorr"]
    out = [" Random effects:", " Groups Name        Variance Std.Dev."]
    for _, row in vc.iterrows():
        if row.get("var2") is not None and isinstance(row.get("var2"), str):
            continue  # correlations: see result.side_models[...]["varcorr"]
        out.append(f" {str(row['grp']):<6} {str(row['var1']):<11} {row['vcov']:<8.4g} {row['sdcor']:.4g}")
    return out + [""]
