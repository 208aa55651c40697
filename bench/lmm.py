"""The LMM suite (issue 20): interlace.lmer against lme4::lmer (timed live in the same
run) and the ``glmm`` package (Rust, pip) where it expresses the model.

    python -m bench --lmm                      # all LMM cases
    python -m bench --lmm --cases sleepstudy   # only these
    python -m bench --lmm --no-r --reps 20

Per case: interlace's first fit in a fresh interpreter (``import interlace``
included, warm numba cache) and its warm fits (median of ``reps`` calls of
``interlace.lmer`` in one process, formula parsing and result building
included), as wall and CPU time; lme4's first and warm fits (``system.time``
in one Rscript, data read and factors made outside the timing); glmm's warm
fits (default ``satterthwaite=True``, and ``satterthwaite=False``, which is
what a bare ``lmer`` computes). Each peer's log-likelihood is compared with
ours, since a time at a different optimum is no time. Writes
``bench/results/lmm.md`` and ``lmm.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "fixtures" / "data"
RESULTS = Path(__file__).with_name("results")


@dataclass
class LMMCase:
    name: str
    data: str
    formula: str
    REML: bool = True
    weights: str | None = None
    factors: list[str] = field(default_factory=list)
    glmm: bool = True  # glmm expresses the model
    large: bool = False


CASES = [
    LMMCase("sleepstudy", "sleepstudy.csv", "Reaction ~ Days + (Days | Subject)", factors=["Subject"]),
    LMMCase("sleepstudy_ml", "sleepstudy.csv", "Reaction ~ Days + (Days | Subject)", REML=False,
            factors=["Subject"]),
    LMMCase("sleepstudy_uncorr", "sleepstudy.csv", "Reaction ~ Days + (Days || Subject)", factors=["Subject"],
            glmm=False),
    LMMCase("dyestuff", "dyestuff.csv", "Yield ~ 1 + (1 | Batch)", factors=["Batch"]),
    LMMCase("penicillin", "penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)",
            factors=["plate", "sample"]),
    LMMCase("pastes", "pastes.csv", "strength ~ 1 + (1 | batch/cask)", factors=["batch", "cask"]),
    LMMCase("sleepstudy_weighted", "sleepstudy_w.csv", "Reaction ~ Days + (1 | Subject)", weights="w",
            factors=["Subject"]),
    LMMCase("sim_crossed", "sim_crossed_lmm.csv.gz", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)",
            factors=["s", "d", "dept", "service"], large=True),
    LMMCase("insteval", "insteval_binary.csv", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)",
            factors=["s", "d", "dept", "service"], large=True),
    LMMCase("insteval_ml", "insteval_binary.csv", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)",
            REML=False, factors=["s", "d", "dept", "service"], large=True),
]


def _read(case: LMMCase):
    import pandas as pd

    df = pd.read_csv(DATA / case.data)
    for f in case.factors:
        df[f] = df[f].astype(str)  # factors, as R's factor(): numeric codes must not become covariates
    return df


def _fit(case: LMMCase, df):
    import interlace

    w = case.weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.lmer(case.formula, df, REML=case.REML, weights=w)


def _timed(fn, reps: int) -> tuple[float, float]:
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def first_fit(case: LMMCase) -> dict:
    """interlace's first fit in a new interpreter (import included)."""
    code = ("import time, json, sys; t = time.perf_counter(); c = time.process_time()\n"
            "from bench.lmm import CASES, _read, _fit\n"
            f"case = [x for x in CASES if x.name == {case.name!r}][0]\n"
            "df = _read(case); t1 = time.perf_counter(); c1 = time.process_time()\n"
            "m = _fit(case, df)\n"
            "print(json.dumps({'wall': time.perf_counter() - t1, 'cpu': time.process_time() - c1,"
            " 'wall_with_import': time.perf_counter() - t}))\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_glmm(case: LMMCase, df, reps: int) -> dict | None:
    try:
        import glmm
    except ImportError:
        return None
    if not case.glmm:
        return {"error": "model not expressible in glmm"}
    kw = {"reml": case.REML}
    if case.weights:
        kw["weights"] = df[case.weights].to_numpy()
    out = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = glmm.fit(df, case.formula, **kw)
            out["loglik"] = float(r.loglik)
            out["wall"], out["cpu"] = _timed(lambda: glmm.fit(df, case.formula, **kw), reps)
            out["wall_nosatt"], out["cpu_nosatt"] = _timed(
                lambda: glmm.fit(df, case.formula, satterthwaite=False, **kw), reps)
    except Exception as exc:  # a peer's failure is reported, not fatal
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def time_r(cases: list[LMMCase], reps_small: int, reps_large: int) -> dict[str, dict]:
    try:
        ok = subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        man = []
        for c in cases:
            path = DATA / c.data
            if path.suffix == ".gz":  # R's read.csv reads gzip transparently
                pass
            man.append({"case": c.name, "data": str(path), "formula": c.formula, "REML": c.REML,
                        "weights": c.weights, "factors": c.factors,
                        "reps": reps_large if c.large else reps_small})
        mpath, opath = Path(tmp) / "m.json", Path(tmp) / "o.json"
        mpath.write_text(json.dumps(man))
        subprocess.run(["Rscript", str(Path(__file__).with_name("lmm_r.R")), str(mpath), str(opath)],
                       check=False, timeout=7200)
        if not opath.exists():
            return {}
        return {r["case"]: r for r in json.loads(opath.read_text())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench --lmm", description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", metavar="NAME")
    p.add_argument("--reps", type=int, default=None, help="warm fits per small case (default 20)")
    p.add_argument("--no-r", action="store_true", help="do not time lme4")
    p.add_argument("--no-fresh", action="store_true", help="skip the fresh-process first fits")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    cases = [c for c in CASES if not a.cases or c.name in a.cases]
    reps_small = a.reps or 20
    reps_large = 1  # InstEval takes minutes in lme4: one timed fit after the untimed one
    reps_ours_large = 3  # ours and glmm take seconds: the median of 3 warm fits
    rows = []
    r_times = {} if a.no_r else time_r(cases, reps_small, reps_large)
    for c in cases:
        print(f"LMM {c.name} ...", file=sys.stderr, flush=True)
        df = _read(c)
        m = _fit(c, df)
        reps = reps_ours_large if c.large else reps_small
        wall, cpu = _timed(lambda: _fit(c, df), reps)
        row = {"case": c.name, "n": int(m.nobs), "REML": c.REML, "formula": c.formula, "llf": m.llf,
               "warm_wall": wall, "warm_cpu": cpu, "nfev": m.optinfo["nfev"]}
        if not a.no_fresh:
            row["first"] = first_fit(c)
        row["glmm"] = time_glmm(c, df, reps) if not c.large or c.glmm else None
        row["lme4"] = r_times.get(c.name)
        rows.append(row)
    a.out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg": os.getloadavg(),
            "cpus": os.cpu_count()}
    (a.out / "lmm.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=float))
    (a.out / "lmm.md").write_text(render(meta, rows))
    print(render(meta, rows))
    return 0


def _ms(x) -> str:
    return "-" if x is None else (f"{1000 * x:.2f}" if x < 1 else f"{x:.2f} s")


def render(meta: dict, rows: list[dict]) -> str:
    lines = [f"# LMM suite ({meta['date']}, {meta['cpus']} cores, load average {meta['loadavg'][0]:.1f})", "",
             "Times in ms unless marked s; warm = median of repeated fits in one process; CPU = process time "
             "(all threads). Ratios are the peer's CPU time over ours (> 1: we are faster). "
             "dllf = our log-likelihood minus the peer's.", "",
             "| case | n | crit | ours warm wall | ours warm CPU | ours first fit | lme4 warm CPU | lme4 / ours "
             "| dllf lme4 | glmm warm CPU (no Satt.) | glmm / ours | dllf glmm |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lm, gm, fi = r.get("lme4") or {}, r.get("glmm") or {}, r.get("first") or {}
        lcpu = lm.get("cpu") if not lm.get("error") else None
        gcpu = gm.get("cpu") if not gm.get("error") else None
        ratio_l = f"{lcpu / r['warm_cpu']:.1f}x" if lcpu else "-"
        ratio_g = f"{gcpu / r['warm_cpu']:.2f}x" if gcpu else "-"
        dl = f"{r['llf'] - lm['logLik']:.1e}" if lm.get("logLik") is not None else "-"
        dg = f"{r['llf'] - gm['loglik']:.1e}" if gm.get("loglik") is not None else (gm.get("error", "-")[:40])
        glmm_cell = f"{_ms(gcpu)} ({_ms(gm.get('cpu_nosatt'))})" if gcpu else "-"
        lines.append(f"| {r['case']} | {r['n']} | {'REML' if r['REML'] else 'ML'} | {_ms(r['warm_wall'])} | "
                     f"{_ms(r['warm_cpu'])} | {_ms(fi.get('wall'))} | {_ms(lcpu)} | {ratio_l} | {dl} | "
                     f"{glmm_cell} | {ratio_g} | {dg} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
