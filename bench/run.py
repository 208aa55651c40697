"""The benchmark run: time every case, optionally time R live, write results.md and chart.png.

Example
-------
$ python -m bench --quick
$ python -m bench --cases cbpp_laplace simbin_ri --reps 3 --no-fresh --live-r no
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cases import REPO, Case, discover, fit_case, read_case_data

RESULTS = Path(__file__).with_name("results")
LARGE_NOBS = 10_000  # cases at or above this size get fewer repetitions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", metavar="NAME",
                   help="only these cases (oracle, oracle-scale or tests/fixtures names)")
    p.add_argument("--fixtures", action="store_true",
                   help="also run the full-fit cases in tests/fixtures/cases")
    p.add_argument("--reps", type=int, default=None,
                   help="timed warm fits per case, median reported (default 7 small / 3 large)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions; empty-cache timing only for cbpp_laplace")
    p.add_argument("--no-fresh", action="store_true",
                   help="skip the fresh-process timings (warm and empty numba cache) and memory")
    p.add_argument("--live-r", choices=("auto", "yes", "no"), default="auto",
                   help="time lme4/glmmTMB live with Rscript (auto: when it is installed)")
    p.add_argument("--no-peers", action="store_true", help="skip the Python peers (glmm, mixedlm, GPBoost)")
    p.add_argument("--profile", type=int, default=2, metavar="K",
                   help="cProfile the K small and K large cases with the worst ratio to R (0: none)")
    p.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=None,
                   help="CPU against rows (1e4..1e6) and the 1,000-replicate cbpp bootstrap (issue 26 items "
                        "4-5); default: on for a run of all cases, off with --cases")
    p.add_argument("--out", type=Path, default=RESULTS, help="output directory")
    p.add_argument("--no-chart", action="store_true", help="do not draw chart.png")
    p.add_argument("--from-json", type=Path, metavar="RESULTS_JSON",
                   help="re-render results.md and chart.png from a results.json, measuring nothing")
    return p.parse_args(argv)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _worker(case: Case, memory: bool, env_extra: dict[str, str] | None = None,
            timeout: float = 1800) -> dict:
    """Run bench.worker in a new interpreter and parse its JSON line."""
    env = dict(os.environ)
    env.update(env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "bench.worker", case.name] + (["--memory"] if memory else [])
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "worker failed")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    return out


def time_warm(case: Case, reps: int) -> dict:
    """One untimed fit (compiles or loads numba code), then ``reps`` timed fits."""
    df = read_case_data(case)
    res = fit_case(case, df)
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        res = fit_case(case, df)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    r_ll = case.r_loglik
    return {
        "warm_s": statistics.median(wall),
        "warm_runs": wall,
        "warm_cpu_s": statistics.median(cpu),
        "llf": float(res.llf),
        "llf_diff": None if r_ll is None else float(res.llf) - r_ll,
        "converged": bool(getattr(res, "converged", True)),
    }


def _r_version() -> str | None:
    try:
        out = subprocess.run(
            ["Rscript", "-e", "cat(R.version.string, '; lme4', as.character(packageVersion('lme4')),"
             " '; glmmTMB', as.character(packageVersion('glmmTMB')))"],
            capture_output=True, text=True, timeout=120)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def rerender(args: argparse.Namespace) -> int:
    """Write results.md and chart.png again from a saved results.json (same measurements)."""
    from bench import report

    saved = json.loads(args.from_json.read_text())
    rows, info, source = saved["rows"], saved["info"], saved["source"]
    seen = {p for r in rows for p in (r.get("peers") or {})}
    peers = [p for p in ("glmm", "mixedlm", "gpboost") if p in seen]
    args.out.mkdir(parents=True, exist_ok=True)
    text = report.write_markdown(rows, info, source, peers, saved.get("notes", []),
                                 args.out / "results.md")
    if not args.no_chart:
        report.chart(rows, source, args.out / "chart.png")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0 (target FAILs are results, not errors)."""
    from bench import report

    args = parse_args(argv)
    if args.from_json:
        return rerender(args)
    load_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    cases = discover(args.cases, include_fixtures=args.fixtures)
    if not cases:
        _log("no cases found (tests/fixtures/oracle*, or INTERLACE_SHARED)")
        return 1
    rows: list[dict] = []
    for case in cases:
        large = case.nobs >= LARGE_NOBS
        reps = args.reps or (2 if args.quick else (3 if large else 7))
        row: dict = {"case": case.name, "suite": case.suite, "n": case.nobs,
                     "family": case.spec["python_call"]["family"],
                     "nAGQ": int(case.spec["python_call"].get("nAGQ", 1)),
                     "r_loglik": case.r_loglik, "r_recorded": case.recorded_r_seconds()}
        rows.append(row)
        try:
            row.update(time_warm(case, reps))
        except Exception as exc:  # noqa: BLE001  (an unfittable case is reported, not fatal)
            row["error"] = f"{type(exc).__name__}: {exc}"[:160].replace("|", "/")
            _log(f"{case.name:24s} cannot fit: {row['error']}")
            continue
        _log(f"{case.name:24s} warm {1000 * row['warm_s']:9.1f} ms "
             f"(CPU {1000 * row['warm_cpu_s']:.1f} ms)   llf - R "
             f"{row['llf_diff'] if row['llf_diff'] is not None else float('nan'):+.2e}")
        if args.no_fresh:
            continue
        try:
            n_fresh = 1 if (large or args.quick) else 3
            fresh = [_worker(case, memory=(i == 0)) for i in range(n_fresh)]
            totals = [f["import_s"] + f["first_fit_s"] for f in fresh]
            row["fresh_total_s"] = statistics.median(totals)
            row["fresh_import_s"] = statistics.median(f["import_s"] for f in fresh)
            row["fresh_fit_s"] = statistics.median(f["first_fit_s"] for f in fresh)
            row["fresh_import_cpu_s"] = statistics.median(f["import_cpu_s"] for f in fresh)
            row["fresh_fit_cpu_s"] = statistics.median(f["first_fit_cpu_s"] for f in fresh)
            row["fresh_process_cpu_s"] = statistics.median(f["process_cpu_s"] for f in fresh)
            row["peak_mb"] = fresh[0].get("peak_fit_mb")
            row["memory_method"] = fresh[0].get("memory_method")
            row["first_fit_peak_mb"] = fresh[0].get("first_fit_peak_mb")
            if not args.quick or case.name == "cbpp_laplace":
                with tempfile.TemporaryDirectory(prefix="bench-numba-") as tmp:
                    empty = _worker(case, memory=False, env_extra={"NUMBA_CACHE_DIR": tmp})
                row["empty_total_s"] = empty["import_s"] + empty["first_fit_s"]
                row["empty_process_wall_s"] = empty["process_wall_s"]
                row["empty_process_cpu_s"] = empty["process_cpu_s"]
                row["empty_fit_cpu_s"] = empty["first_fit_cpu_s"]
            _log(f"{'':24s} fresh {row['fresh_total_s']:.2f} s (CPU: import "
                 f"{row['fresh_import_cpu_s']:.2f} s, first fit {row['fresh_fit_cpu_s']:.2f} s), "
                 f"empty cache {row.get('empty_total_s', float('nan')):.1f} s (CPU "
                 f"{row.get('empty_process_cpu_s', float('nan')):.1f} s), peak {row['peak_mb']:.1f} MB")
        except Exception as exc:  # noqa: BLE001
            _log(f"{case.name:24s} fresh-process run failed: {exc}")

    peers: list[str] = []
    if not args.no_peers:
        from bench.peers import available_peers, time_peer

        peers = available_peers()
        for row, case in ((r, c) for r, c in zip(rows, cases) if not r.get("error")):
            row["peers"] = {}
            for p in peers:
                reps = 1 if (args.quick or case.nobs >= LARGE_NOBS) else 3
                rec = time_peer(p, case, reps)
                row["peers"][p] = rec
                if rec is not None:
                    _log(f"{case.name:24s} {p}: {rec}")

    live = args.live_r == "yes"
    if args.live_r == "auto":
        from bench.rlive import r_available

        live = r_available()
    info = report.machine_info()
    if live:
        from bench.rlive import run_r

        t = time.perf_counter()
        small_reps, large_reps = (1, 1) if args.quick else (5, 3)
        r_res = run_r([c for r, c in zip(rows, cases) if not r.get("error")],
                      reps_small=small_reps, reps_large=large_reps, large_nobs=LARGE_NOBS,
                      log=_log)
        for row in rows:
            recs = r_res.get(row["case"], {})
            row["r_live"] = {v: rec["median"] for v, rec in recs.items()
                             if rec.get("median") is not None}
            row["r_live_cpu"] = {v: rec["cpu_median"] for v, rec in recs.items()
                                 if rec.get("cpu_median") is not None}
            row["r_live_loglik"] = {v: rec.get("loglik") for v, rec in recs.items()}
            row["r_live_errors"] = {v: rec["error"] for v, rec in recs.items() if rec.get("error")}
        info["r_seconds_total"] = f"{time.perf_counter() - t:.0f}"
        info["r_version"] = _r_version()
    source = "live" if live else "recorded"

    profiles = ""
    if args.profile > 0:
        from bench.profiling import profile_case

        # the worst ratios among the small cases and among the scale cases: the two
        # suites lose time in different places (Python overhead vs per-row work)
        by_name = {c.name: c for c in cases}
        chosen = []
        for small in (True, False):
            ranked = sorted((r for r in rows if report.best_ratio(r, source) is not None
                             and (r["n"] < LARGE_NOBS) == small),
                            key=lambda r: report.best_ratio(r, source), reverse=True)
            chosen += ranked[:args.profile]
        profiles = "\n".join(profile_case(by_name[r["case"]]) for r in chosen)

    info = {**info, **report.machine_info(), "loadavg_start": load_start,
            "command": " ".join(["python -m bench"] + [shlex.quote(a) for a in (argv or sys.argv[1:])])}
    mem_method = next((r["memory_method"] for r in rows if r.get("memory_method")), None)
    notes = [
        "ours warm: median wall time of repeated `interlace.glmer(...)` calls in one process "
        "after one untimed fit; formula parsing and model-frame building included, CSV "
        "reading not. ours CPU: the process CPU time of the same fits (less sensitive to other "
        "load on the machine).",
        "fresh: a new `python -m bench.worker` process with the numba cache warm: `import "
        "interlace` plus the first fit (median of 3 processes for small cases, 1 for large).",
        "empty cache: the same with NUMBA_CACHE_DIR pointing to a new empty directory "
        "(everything is compiled).",
        f"peak MB: resident-set high-water mark (VmHWM in /proc/self/status, reset through "
        f"/proc/self/clear_refs) minus the resident size just before the fit, in the fresh "
        f"process: 'warm' = {mem_method or 'not measured'}, '1st fit' = the first fit, which "
        "also maps numba's cached machine code and imports lazily loaded modules. "
        "tracemalloc would miss numpy's and numba's allocations; getrusage's ru_maxrss carries "
        "the parent's peak into a child process.",
        "llf − R: our llf minus R's logLik from the case JSON (for nAGQ > 1 the full marginal "
        "`agq_loglik.loglik_full`).",
        "R times: lme4 = the reference call (lme4 / lmer / glmer.nb); nloptwrap = the glmer "
        "call with `glmerControl(optimizer = \"nloptwrap\")`; glmmTMB = the same model in "
        "glmmTMB (or the reference call for glmmTMB cases). Live: `bench/r_timing.R`, "
        "`system.time()` elapsed, median of 5 fits after a warm-up (small) or 3 fits (n >= "
        "10,000). Recorded: `r_seconds`, `r_seconds_nloptwrap`, `r_seconds_glmmTMB` from the "
        "JSONs (taken on another 2-core machine).",
        "ratio = ours warm / R time (0.1 = ten times faster). ratio best R uses the fastest "
        "R variant timed for that case.",
        "Peers: median of 3 fits after a warm-up (1 for n >= 10,000), wall and CPU seconds of "
        "this process, library defaults (glmm with satterthwaite=False, what a bare lmer "
        "computes; GPBoost uses all cores through OpenMP: 2 here; mixedlm as it comes); their llf is "
        "what each library reports for its optimum (GPBoost's is its own Laplace "
        "approximation; for Poisson it is not on lme4's scale).",
        "The machine is shared: a high load average inflates every wall time, ours and R's; "
        "results.json also has our CPU time (warm_cpu_s).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    text = report.write_markdown(rows, info, source, peers, notes, args.out / "results.md")
    scaling = boot = None
    if args.scaling or (args.scaling is None and not args.cases):  # issue 26 items 4-5: CPU against rows, and cheap refits
        from bench.cases import scaling_section, time_bootstrap, time_scaling

        scaling = time_scaling(reps=1 if args.quick else 3)
        boot = time_bootstrap()
        section = scaling_section(scaling, boot)
        text += section
        with open(args.out / "results.md", "a") as fh:
            fh.write(section)
    if profiles:
        (args.out / "profile.md").write_text(
            f"# Where the time goes (cProfile, one warm fit)\n\n{info['date']}, "
            f"{info['nproc']} cores, {info['cpu']}\n\n{profiles}")
    (args.out / "results.json").write_text(json.dumps(
        {"info": info, "source": source, "rows": rows, "notes": notes, "scaling": scaling, "bootstrap": boot},
        indent=1, default=str))
    if not args.no_chart:
        report.chart(rows, source, args.out / "chart.png")
    print(text)
    for target, verdict, evidence in report.evaluate_targets(rows, source):
        print(f"{verdict:4s}  {target}  [{evidence}]")
    return 0
