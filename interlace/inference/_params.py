"""The parameters inference reports on, named as lme4 names them.

lme4's confint/profile work on the random-effect standard deviations and
correlations (``.sig01``, ``.sig02``, ...), the residual SD for linear mixed
models (``.sigma``) and the fixed effects. The order of the ``.sig``
parameters is lme4's: per term, the lower triangle of the covariance matrix
column by column, which is also the order of theta. This module maps
between theta (the relative Cholesky factors the engine optimizes) and that
sd/cor scale, and resolves the names users may pass as ``parm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ParamInfo:
    """One reported parameter.

    ``kind`` is "sd", "cor", "par" (a structure's own parameter, reported as it is: the
    correlation parameters of ou/exp/gau/mat, rr's loadings), "sigma", "beta" or "aux";
    ``index`` is its
    position in theta (sd/cor), in the fixed effects (beta), in the
    concatenated family-parameter coefficients (aux: the dispersion and
    zero-inflation models of the general engine) or 0 (sigma).
    """

    name: str  # lme4's name: .sig01, .sigma or the fixed-effect name
    alias: str  # lme4's oldNames = FALSE name with our column names: sd_Intercept|herd
    kind: str
    index: int


def _r_cname(c: str) -> str:
    return "(Intercept)" if c == "Intercept" else c


def param_table(re, fe_names: list[str], has_sigma: bool,
                aux: list[tuple[str, list[str]]] | None = None) -> list[ParamInfo]:
    """All parameters in lme4's order: .sig01.., .sigma (LMM), fixed effects,
    then the family-parameter coefficients of the general engine.

    ``aux`` lists (block, coefficient names) of the free family-parameter
    models, e.g. ``[("disp", ["Intercept"])]``; their rows are named
    ``disp.Intercept`` (the general engine's ``param_names``), with glmmTMB's
    ``disp.(Intercept)`` as an alias. They are on the scale of that model's
    linear predictor (log dispersion, logit zero-inflation probability), as
    glmmTMB's ``confint(m, full = TRUE)`` reports ``disp.*`` / ``zi.*`` rows.

    >>> [p.name for p in param_table(None, ["Intercept"], False, [("disp", ["Intercept"])])
    ...  if p.kind != "sd"]
    ['Intercept', 'disp.Intercept']
    """
    out: list[ParamInfo] = []
    t = 0
    # each term's structure says which SD or correlation its parameters are reported as
    for term, cov in ([] if re is None else zip(re.terms, re.covs)):
        pnames = cov.param_names(term.vc_name, list(term.cnames))
        for i, (kind, a, b) in enumerate(cov.sdcor_layout()):
            if kind == "par":  # not an SD or a correlation: the structure's parameter name
                alias = pnames[i]
            elif kind == "sd":
                alias = f"sd_{term.cnames[a]}|{term.vc_name}"
            else:
                alias = f"cor_{term.cnames[a]}.{term.cnames[b]}|{term.vc_name}"
            out.append(ParamInfo(f".sig{t + 1:02d}", alias, kind, t))
            t += 1
    if has_sigma:
        out.append(ParamInfo(".sigma", "sigma", "sigma", 0))
    for j, nm in enumerate(fe_names):
        out.append(ParamInfo(nm, nm, "beta", j))
    j = 0
    for block, names in aux or []:
        for c in names:
            out.append(ParamInfo(f"{block}.{c}", f"{block}.{_r_cname(c)}", "aux", j))
            j += 1
    return out


def resolve_parm(parm, table: list[ParamInfo], theta_names: list[str] | None = None) -> list[int]:
    """Positions in `table` selected by ``parm`` (lme4's conventions).

    None: all; "theta_": the variance parameters; "beta_": the fixed effects;
    "aux_": the family-parameter coefficients (general engine); otherwise names (lme4's ``.sig01``, ``sd_(Intercept)|herd``, our
    ``sd_Intercept|herd``, theta names, fixed-effect names) or integer positions.
    """
    if parm is None:
        return list(range(len(table)))
    if isinstance(parm, str):
        if parm == "theta_":
            return [i for i, p in enumerate(table) if p.kind in ("sd", "cor", "par", "sigma")]
        if parm == "aux_":
            return [i for i, p in enumerate(table) if p.kind == "aux"]
        if parm == "beta_":
            return [i for i, p in enumerate(table) if p.kind == "beta"]
        parm = [parm]
    lookup: dict[str, int] = {}
    for i, p in enumerate(table):
        lookup[p.name] = i
        lookup[p.alias] = i
        if p.kind in ("sd", "cor"):
            kind, rest = p.alias.split("_", 1)
            names, grp = rest.rsplit("|", 1)
            lookup[f"{kind}_{'.'.join(_r_cname(c) for c in names.split('.'))}|{grp}"] = i
            if theta_names is not None:
                lookup[theta_names[p.index]] = i
        if p.kind == "beta" and p.name == "Intercept":
            lookup["(Intercept)"] = i
    out = []
    for q in parm:
        if isinstance(q, (int, np.integer)):
            if not 0 <= int(q) < len(table):
                raise ValueError(f"parm index {q} out of range 0..{len(table) - 1}")
            out.append(int(q))
        elif q in lookup:
            out.append(lookup[q])
        else:
            known = ", ".join(p.name for p in table)
            raise ValueError(f"unknown parameter {q!r} in parm; known: {known}")
    return out


def theta_to_sdcor(re, theta: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """sd/cor values in theta's layout: per term, the SDs and correlations its structure's
    parameters are reported as (``Covariance.sdcor``; for us, lme4's: SDs where theta holds a
    diagonal element, correlations where it holds an off-diagonal one)."""
    theta = np.asarray(theta, float)
    return np.concatenate([c.sdcor(theta[re.par_off[j]:re.par_off[j + 1]], sigma)
                           for j, c in enumerate(re.covs)]) if re.covs else np.zeros(0)


def sdcor_to_theta(re, sdcor: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, bool]:
    """Inverse of :func:`theta_to_sdcor` (for us: theta = chol(D R D) / sigma).
    Returns (theta, ok) with ok False for values outside a structure's set (a correlation
    matrix that is not positive semidefinite)."""
    sdcor = np.asarray(sdcor, float)
    parts, ok_all = [], True
    for j, c in enumerate(re.covs):
        par, ok = c.par_from_sdcor(sdcor[re.par_off[j]:re.par_off[j + 1]], sigma)
        parts.append(par)
        ok_all &= ok
    return (np.concatenate(parts) if parts else np.zeros(0)), ok_all


def sdcor_bounds(table: list[ParamInfo]) -> tuple[np.ndarray, np.ndarray]:
    """Box bounds on the sd/cor/sigma/beta scale."""
    # aux coefficients are on their link scale (log dispersion, logit zi): unbounded
    lo = np.array([0.0 if p.kind in ("sd", "sigma") else -1.0 if p.kind == "cor" else -np.inf for p in table])
    hi = np.array([1.0 if p.kind == "cor" else np.inf for p in table])
    return lo, hi


def level_labels(level: float) -> list[str]:
    """R's column names for a confidence level: '2.5 %', '97.5 %'."""
    a = (1.0 - level) / 2.0
    return [f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"]


def aux_layout(result) -> list[tuple[str, list[str]]]:
    """(block, coefficient names) of the free family-parameter models of a
    general-engine fit ("disp", "zi", in the engine's order); [] otherwise."""
    aux = getattr(result, "aux_params", None) or {}
    blocks = getattr(result.objective, "blocks", None)
    order = [b.name for b in blocks if b.free] if blocks is not None else list(aux)
    return [(b, list(aux[b].index)) for b in order if b in aux]
