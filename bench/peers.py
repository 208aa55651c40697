"""Optional Python peers (the ``bench`` extra): glmm (Rust, NumPy wrapper), mixedlm's glmer
(Rust) and GPBoost (C++).

Each adapter fits only the models its library can express exactly (same likelihood, same
random effects); otherwise it returns None and the table says "n/a". A library that is not
importable is skipped.

Example
-------
>>> from bench.peers import available_peers
>>> set(available_peers()) <= {"glmm", "mixedlm", "gpboost"}
True
"""

from __future__ import annotations

import re
import statistics
import time
import warnings
from typing import Callable

from bench.cases import Case, read_case_data

_SIMPLE_TERM = re.compile(r"^\(\s*1\s*\|\s*(\w+)\s*\)$")


def available_peers() -> list[str]:
    """Names of the peer libraries that import on this machine."""
    out = []
    for name in ("glmm", "mixedlm", "gpboost"):
        try:
            __import__(name)
            out.append(name)
        except Exception:  # noqa: BLE001  (any import failure means "not installed")
            pass
    return out


def _mixedlm_fitter(case: Case) -> Callable[[], float] | None:
    call = case.spec["python_call"]
    if case.r_call_head not in ("glmer", "lmer") or call.get("link") or call.get("offset"):
        return None
    if call["formula"].lstrip().startswith("cbind("):
        return None  # mixedlm's formula parser does not read cbind responses
    import mixedlm
    from mixedlm import families

    fams = {"binomial": families.Binomial, "poisson": families.Poisson}
    df = read_case_data(case)
    if call["family"] == "gaussian":
        return lambda: float(mixedlm.lmer(call["formula"], df, REML=False).logLik().value)
    if call["family"] not in fams:
        return None
    nagq = int(call.get("nAGQ", 1))
    return lambda: float(mixedlm.glmer(call["formula"], df, family=fams[call["family"]](),
                                       weights=call.get("weights"), nAGQ=nagq).logLik().value)


def _gpboost_fitter(case: Case) -> Callable[[], float] | None:
    call = case.spec["python_call"]
    parts = case.spec.get("formula_parts") or {}
    lik = {"binomial": "bernoulli_logit", "poisson": "poisson"}.get(call["family"])
    if (lik is None or case.r_call_head != "glmer" or int(call.get("nAGQ", 1)) != 1
            or call.get("link") or call.get("weights") or call.get("offset") or not parts):
        return None
    groups = [m.group(1) for t in parts["random"] if (m := _SIMPLE_TERM.match(t.strip()))]
    if len(groups) != len(parts["random"]):
        return None  # GPBoost's random slopes are uncorrelated with the intercept
    import gpboost as gpb
    from formulaic import model_matrix

    df = read_case_data(case)
    yname = call["formula"].split("~", 1)[0].strip()
    if yname not in df.columns:
        return None
    y = df[yname].to_numpy(float)
    if lik == "bernoulli_logit" and not set(y.tolist()) <= {0.0, 1.0}:
        return None
    X = model_matrix(parts["fixed"] if parts["fixed"].strip() else "1", df).to_numpy()
    G = df[groups].astype(str).to_numpy()

    def fit() -> float:
        m = gpb.GPModel(group_data=G, likelihood=lik)
        m.fit(y=y, X=X, params={"trace": False})
        return -float(m.get_current_neg_log_likelihood())

    return fit


_CBIND = re.compile(r"^\s*cbind\(\s*(\w+)\s*,\s*(.+?)\s*\)\s*~")
_GLMM_FAMILIES = {"binomial", "poisson", "gaussian", "negativebinomial"}


def _glmm_fitter(case: Case) -> Callable[[], float] | None:
    """glmm.fit on the models it expresses: glmer/lmer/glmer.nb-type models with one
    dispersion, no ``||`` (glmm always fits correlated terms), cbind responses whose
    failures column is made beforehand (glmm's cbind takes column names)."""
    call = case.spec["python_call"]
    fam = call["family"]
    if fam not in _GLMM_FAMILIES or call.get("ziformula") or call.get("offset"):
        return None
    if (call.get("dispformula") or "~1").replace(" ", "") != "~1" or "||" in call["formula"]:
        return None
    import glmm

    df = read_case_data(case)
    formula = call["formula"]
    m = _CBIND.match(formula)
    if m and not m.group(2).isidentifier():
        df = df.copy()
        df["_failures_"] = df.eval(m.group(2))  # e.g. size - incidence
        formula = f"cbind({m.group(1)}, _failures_) ~" + formula[m.end():]
    kw: dict = {"family": fam, "nagq": int(call.get("nAGQ", 1)), "satterthwaite": False}
    if call.get("link"):
        kw["link"] = call["link"]
    if fam == "gaussian":
        kw["reml"] = False  # the gaussian oracle cases are lmer(REML = FALSE)
    if isinstance(call.get("weights"), str):
        kw["weights"] = df[call["weights"]].to_numpy(float)
    return lambda: float(glmm.fit(df, formula, **kw).loglik)


_ADAPTERS = {"glmm": _glmm_fitter, "mixedlm": _mixedlm_fitter, "gpboost": _gpboost_fitter}


def time_peer(peer: str, case: Case, reps: int) -> dict | None:
    """Median wall seconds, median CPU seconds (``cpu_seconds``, this process, all threads)
    and log-likelihood of a peer's fit, after one warm-up fit; None if the peer cannot fit
    this model; ``{"error": ...}`` if it tried and failed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter = _ADAPTERS[peer](case)
            if fitter is None:
                return None
            llf = fitter()
            secs, cpus = [], []
            for _ in range(max(reps, 1)):
                t, c = time.perf_counter(), time.process_time()
                llf = fitter()
                secs.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
    except Exception as exc:  # noqa: BLE001  (a peer's failure is a result, not a crash)
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"seconds": statistics.median(secs), "cpu_seconds": statistics.median(cpus), "llf": llf}
