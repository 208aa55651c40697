"""The notebook view of a fit: lme4's summary as one HTML layout.

One block per part of ``summary(glmer)`` (title, fit statistics, scaled
residuals, random effects, fixed effects with R's p-value format and
significance stars, correlation of fixed effects with lme4's unique
abbreviations, messages), every table in the same style, numbers rounded as
the text summary rounds them (R's ``format(x, digits = 4)`` per column), no
Python lists and no repeated plain-text block.

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> page = m._repr_html_()
>>> page.count("<table"), "&lt; 2e-16" in page or "1.47e-09" in page
(5, True)
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from interlace.results.rformat import _pformat, _stars, abbreviate_unique, format_common, r_coef_name

__all__ = ["summary_html"]

_STYLE = (
    "<style>"
    ".interlace-summary{font-family:var(--jp-content-font-family,system-ui,sans-serif);font-size:13px;}"
    ".interlace-summary h4{margin:10px 0 4px 0;font-size:13px;}"
    ".interlace-summary table{border-collapse:collapse;margin:0 0 6px 0;}"
    ".interlace-summary th,.interlace-summary td{padding:2px 8px;border-bottom:1px solid #ddd;"
    "text-align:right;font-variant-numeric:tabular-nums;}"
    ".interlace-summary th{font-weight:600;border-bottom:1px solid #999;}"
    ".interlace-summary td.l,.interlace-summary th.l{text-align:left;}"
    ".interlace-summary p{margin:2px 0;}"
    ".interlace-summary .note{color:#666;}"
    "</style>"
)


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(header: list[str], rows: list[list[str]], left: set[int] = frozenset()) -> str:
    def cell(tag: str, i: int, v: str) -> str:
        cls = ' class="l"' if i in left else ""
        return f"<{tag}{cls}>{_e(v)}</{tag}>"

    head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def summary_html(summary) -> str:
    """HTML for a :class:`~interlace.results.summary.Summary` (lme4's summary layout)."""
    r = summary.result
    parts = [_STYLE, '<div class="interlace-summary">']
    title = summary._title()
    parts.append(f"<p><b>{_e(title[0])}</b></p>")
    for line in title[1:]:
        parts.append(f"<p>{_e(line.strip())}</p>")
    parts.append(f"<p>Formula: <code>{_e(r.formula)}</code></p>")

    h = summary.header
    parts.append(_table(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                        [[f"{h['AIC']:.1f}", f"{h['BIC']:.1f}", f"{h['logLik']:.1f}", f"{h['deviance']:.1f}",
                          f"{int(h['df.resid'])}"]]))

    if summary.residual_quantiles is not None:
        q = summary.residual_quantiles
        parts.append("<h4>Scaled residuals</h4>")
        parts.append(_table(list(q.index), [[f"{v:.4f}" for v in q]]))

    rt = summary.re_table
    parts.append("<h4>Random effects</h4>")
    var_s = format_common(rt["Variance"], 4)
    sd_s = format_common(rt["Std.Dev."], 4)
    ncorr = max((len(c) for c in rt["Corr"]), default=0)
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] + [""] * (ncorr - 1) if ncorr else [])
    rows, prev = [], None
    for i, row in rt.iterrows():
        cells = [row["Groups"] if row["Groups"] != prev else "", row["Name"], var_s[i], sd_s[i]]
        if ncorr:
            cors = ["NA" if not np.isfinite(c) else f"{c:.2f}" for c in row["Corr"]]
            cells += cors + [""] * (ncorr - len(cors))
        rows.append(cells)
        prev = row["Groups"]
    parts.append(_table(header, rows, left={0, 1}))
    ng = "; ".join(f"{g}, {n}" for g, n in r.ngroups.items())
    parts.append(f"<p>Number of obs: {r.nobs}, groups: {_e(ng)}</p>")

    ft = summary.fe_table
    parts.append("<h4>Fixed effects</h4>")
    est = format_common(ft["Estimate"], 4)
    se = format_common(ft["Std. Error"], 4)
    stat = [c for c in ft.columns if c.endswith("value")][0]
    pcol = next((c for c in ft.columns if c.startswith("Pr(")), None)
    extra = [c for c in ft.columns if c not in ("Estimate", "Std. Error", stat) and c != pcol]
    header = ["", "Estimate", "Std. Error"] + extra + [stat] + ([pcol, ""] if pcol else [])
    rows = []
    for i, name in enumerate(ft.index):
        cells = [r_coef_name(name), est[i], se[i]]
        cells += [format_common([ft[c].iloc[i]], 4)[0] for c in extra]
        cells.append(f"{float(ft[stat].iloc[i]):.3f}")
        if pcol:
            p = float(ft[pcol].iloc[i])
            cells += [_pformat(p), _stars(p)]
        rows.append(cells)
    parts.append(_table(header, rows, left={0, len(header) - 1} if pcol else {0}))
    if pcol:
        parts.append("<p class='note'>Signif. codes: 0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1</p>")

    for label, params, bse in (("Zero-inflation model", r.zi_params, getattr(r, "zi_bse", None)),
                               ("Dispersion model (log scale)",
                                None if summary_is_lmm(r) else r.disp_params, getattr(r, "disp_bse", None))):
        if params is None:
            continue
        parts.append(f"<h4>{_e(label)}</h4>")
        rows = []
        for k, v in params.items():
            s_ = float(bse[k]) if bse is not None and k in bse.index else np.nan
            rows.append([r_coef_name(k), f"{float(v):.4g}", "" if not np.isfinite(s_) else f"{s_:.4g}"])
        parts.append(_table(["", "Estimate", "Std. Error"], rows, left={0}))

    if len(r.fe_params) > 1:
        rn = [r_coef_name(n) for n in r.fe_params.index]
        cols = abbreviate_unique(rn, 6)
        rows_n = abbreviate_unique(rn, 11)
        corr = summary.fe_corr.to_numpy()
        parts.append("<h4>Correlation of fixed effects</h4>")
        rows = [[rows_n[i]] + [f"{corr[i, j]:.3f}" for j in range(i)] + [""] * (len(rn) - 1 - i)
                for i in range(1, len(rn))]
        parts.append(_table([""] + cols[:-1], rows, left={0}))

    tail = summary.messages[1:] if r.converged else summary.messages
    for m in tail:
        parts.append(f"<p class='note'>{_e(m)}</p>")
    parts.append("</div>")
    return "".join(parts)


def summary_is_lmm(result) -> bool:
    return result.optinfo.get("engine") == "lmm"
