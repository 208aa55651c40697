"""Turn benchmark rows into the markdown table, the PASS/FAIL target list and the PNG chart.

A row is a plain dict made by ``bench.run`` (one per case). Ratios are our warm fit time
divided by an R time, so 0.1 means ten times faster than R.

Example
-------
>>> row = {"case": "cbpp_laplace", "suite": "oracle", "n": 56, "warm_s": 0.005,
...        "r_live": {"lme4": 0.05}, "r_recorded": {"lme4": 0.055}}
>>> round(ratios(row, "live")["lme4"], 3)
0.1
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

VARIANTS = ("lme4", "nloptwrap", "glmmTMB")
LLF_TOL = 1e-4  # "llf no worse than R's by 1e-4"


def ratios(row: dict, source: str) -> dict[str, float]:
    """Our warm time over each R time from ``source`` ("live" or "recorded")."""
    times = row.get(f"r_{source}") or {}
    warm = row.get("warm_s")
    if warm is None:
        return {}
    return {v: warm / t for v, t in times.items() if t}


def best_ratio(row: dict, source: str) -> float | None:
    """Ratio to the fastest R variant (the largest ratio among the variants timed)."""
    r = ratios(row, source)
    return max(r.values()) if r else None


def machine_info() -> dict[str, str]:
    """Date, core count, CPU model and load, for the header of the results."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    import numba
    import numpy

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": nproc,
        "cpu": model,
        "loadavg": load,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
    }


def _f(x: Any, fmt: str, none: str = "–") -> str:
    return none if x is None else format(x, fmt)


def _ms(x: float | None) -> str:
    return _f(None if x is None else 1000 * x, ".1f")


def markdown_table(rows: list[dict], source: str) -> str:
    """The main table: our timings, memory, llf difference, R times and ratios from ``source``."""
    head = (
        "| case | n | ours warm (ms) | ours CPU (ms) | fresh: import + 1st fit (s) "
        "| empty cache (s) | peak MB warm / 1st fit | llf − R | R lme4 (s) | R nloptwrap (s) | R glmmTMB (s) "
        "| ratio lme4 | ratio nloptwrap | ratio glmmTMB | ratio best R |"
    )
    lines = [head, "|" + "---|" * 15]
    for row in rows:
        if row.get("error"):
            lines.append(f"| {row['case']} | {row['n']} | cannot fit: {row['error']} |"
                         + " |" * 12)
            continue
        times = row.get(f"r_{source}") or {}
        rat = ratios(row, source)
        fresh = row.get("fresh_total_s")
        lines.append(
            "| " + " | ".join([
                row["case"], str(row["n"]), _ms(row.get("warm_s")), _ms(row.get("warm_cpu_s")),
                _f(fresh, ".2f"), _f(row.get("empty_total_s"), ".1f"),
                f"{_f(row.get('peak_mb'), '.1f')} / {_f(row.get('first_fit_peak_mb'), '.0f')}",
                _f(row.get("llf_diff"), ".1e"),
                *(_f(times.get(v), ".3f") for v in VARIANTS),
                *(_f(rat.get(v), ".3f") for v in VARIANTS),
                _f(best_ratio(row, source), ".3f"),
            ]) + " |"
        )
    return "\n".join(lines)


def peers_table(rows: list[dict], peers: list[str]) -> str:
    """Seconds and llf difference to R for each Python peer, beside ours."""
    head = ("| case | ours wall (s) | ours CPU (s) | "
            + " | ".join(f"{p} wall (s) | {p} CPU (s) | {p} CPU / ours | {p} llf − R" for p in peers) + " |")
    lines = [head, "|" + "---|" * (3 + 4 * len(peers))]
    for row in rows:
        if row.get("error"):
            continue
        cells = [row["case"], _f(row.get("warm_s"), ".4f"), _f(row.get("warm_cpu_s"), ".4f")]
        for p in peers:
            rec = (row.get("peers") or {}).get(p)
            if rec is None:
                cells += ["n/a", "", "", ""]
            elif "error" in rec:
                cells += ["failed", "", "", rec["error"].replace("|", "/")[:60]]
            else:
                diff = None if row.get("r_loglik") is None else rec["llf"] - row["r_loglik"]
                cpu = rec.get("cpu_seconds")
                ratio = cpu / row["warm_cpu_s"] if cpu and row.get("warm_cpu_s") else None
                cells += [_f(rec["seconds"], ".4f"), _f(cpu, ".4f"), _f(ratio, ".2f"), _f(diff, ".1e")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def r_cpu_table(rows: list[dict]) -> str:
    """CPU seconds of our warm fit against each R variant's CPU seconds timed in this run
    (R's user + system time from ``system.time``), and R's CPU over ours (> 1: we use less)."""
    lines = ["| case | ours CPU (s) | " + " | ".join(f"R {v} CPU (s) | {v} / ours" for v in VARIANTS)
             + " |", "|" + "---|" * (2 + 2 * len(VARIANTS))]
    for row in rows:
        cpu = row.get("r_live_cpu") or {}
        ours = row.get("warm_cpu_s")
        if row.get("error") or not cpu or not ours:
            continue
        cells = [row["case"], _f(ours, ".4f")]
        for v in VARIANTS:
            c = cpu.get(v)
            cells += [_f(c, ".3f"), _f(c / ours if c else None, ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_targets(rows: list[dict], source: str) -> list[tuple[str, str, str]]:
    """The issue's targets as (target, PASS/FAIL/N/A, evidence), using R times from ``source``."""
    out: list[tuple[str, str, str]] = []
    by = {r["case"]: r for r in rows}

    def verdict(ok: bool | None) -> str:
        return "N/A" if ok is None else ("PASS" if ok else "FAIL")

    for row in rows:
        if row["suite"] != "scale":
            continue
        b = best_ratio(row, source)
        llf_ok = row.get("llf_diff") is not None and row["llf_diff"] >= -LLF_TOL
        ok = None if b is None or row.get("error") else (b <= 0.1 and llf_ok)
        out.append((f"{row['case']}: >= 10x faster than the fastest R variant, llf >= R - 1e-4",
                    verdict(ok), f"ratio {_f(b, '.3f')}, llf − R {_f(row.get('llf_diff'), '.1e')}"))
    for row in rows:
        if row.get("error") or row.get("r_loglik") is None:
            continue
        for peer, rec in sorted((row.get("peers") or {}).items()):
            if not rec or "error" in rec or rec["llf"] < row["r_loglik"] - 1e-3:
                continue  # only peers that reach R's optimum (within 1e-3, issue 26) count
            if rec.get("cpu_seconds") is not None and row.get("warm_cpu_s") is not None:
                mine, theirs, what = row["warm_cpu_s"], rec["cpu_seconds"], "CPU"
            else:
                mine, theirs, what = row["warm_s"], rec["seconds"], "wall"
            out.append((f"{row['case']}: less {what} time than {peer} (which reaches R's llf)",
                        verdict(mine < theirs),
                        f"ours {1000 * mine:.2f} ms, {peer} {1000 * theirs:.2f} ms {what}"))
    small = [r for r in rows if r["suite"] == "oracle" and not r.get("error")]
    prim = []
    for r in small:
        rat = ratios(r, source)
        key = "glmmTMB" if "lme4" not in rat else "lme4"
        if key in rat:
            prim.append(rat[key])
    med = statistics.median(prim) if prim else None
    out.append(("small oracle cases: median ratio to R's reference-call time <= 0.2",
                verdict(None if med is None else med <= 0.2),
                f"median {_f(med, '.3f')} over {len(prim)} cases"))
    cb = by.get("cbpp_laplace")
    w = None if cb is None else cb.get("warm_s")
    out.append(("cbpp_laplace warm fit <= 10 ms (formula parsing included)",
                verdict(None if w is None else w <= 0.010),
                f"{_ms(w)} ms wall ({_ms(None if cb is None else cb.get('warm_cpu_s'))} ms CPU)"))
    fr = None if cb is None else cb.get("fresh_total_s")
    out.append(("fresh process, warm numba cache: import + first cbpp fit <= 1.5 s",
                verdict(None if fr is None else fr <= 1.5), f"{_f(fr, '.2f')} s"))
    # issue 24's targets are CPU seconds: wall time on a shared machine measures the others
    ic = None if cb is None else cb.get("fresh_import_cpu_s")
    out.append(("`import interlace` <= 0.3 s CPU", verdict(None if ic is None else ic <= 0.3),
                f"{_f(ic, '.3f')} s CPU"))
    fc = None if cb is None else cb.get("fresh_fit_cpu_s")
    out.append(("fresh process, warm cache: first cbpp fit after import <= 0.5 s CPU",
                verdict(None if fc is None else fc <= 0.5),
                f"{_f(fc, '.2f')} s CPU (whole process to the end of the fit: "
                f"{_f(None if cb is None else cb.get('fresh_process_cpu_s'), '.2f')} s CPU)"))
    em = None if cb is None else cb.get("empty_total_s")
    out.append(("fresh process, empty numba cache: import + first cbpp fit <= 20 s",
                verdict(None if em is None else em <= 20.0), f"{_f(em, '.1f')} s"))
    ec = None if cb is None else cb.get("empty_process_cpu_s")
    out.append(("fresh process, empty numba cache: whole process <= 10 s CPU",
                verdict(None if ec is None else ec <= 10.0), f"{_f(ec, '.1f')} s CPU"))
    sb = by.get("simbin_ri")
    pk = None if sb is None else sb.get("peak_mb")
    pk1 = None if sb is None else sb.get("first_fit_peak_mb")
    out.append(("simbin_ri adds <= 50 MB to peak memory (warm fit)",
                verdict(None if pk is None else pk <= 50.0),
                f"{_f(pk, '.1f')} MB (first fit in a fresh process, loading compiled code "
                f"included: {_f(pk1, '.0f')} MB)"))
    return out


def targets_markdown(targets: list[tuple[str, str, str]]) -> str:
    lines = ["| target | verdict | measured |", "|---|---|---|"]
    lines += [f"| {t} | **{v}** | {e} |" for t, v, e in targets]
    return "\n".join(lines)


def chart(rows: list[dict], source: str, path: Path) -> None:
    """Grouped horizontal bars of our time / R time per variant, log scale, with the 0.1 and
    0.2 target lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in rows if ratios(r, source)]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.8))
    y = np.arange(len(rows))
    h = 0.8 / len(VARIANTS)
    colors = {"lme4": "#4c72b0", "nloptwrap": "#55a868", "glmmTMB": "#c44e52"}
    for i, v in enumerate(VARIANTS):
        vals = [ratios(r, source).get(v, np.nan) for r in rows]
        ax.barh(y + (i - 1) * h, vals, height=h, label=f"vs R {v}", color=colors[v])
    ax.axvline(0.1, color="k", ls="--", lw=1, label="0.1 (10x faster; scale target)")
    ax.axvline(0.2, color="grey", ls=":", lw=1, label="0.2 (small-case median target)")
    ax.axvline(1.0, color="grey", ls="-", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y, [f"{r['case']} (n={r['n']})" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"interlace warm fit time / R fit time ({source} R timings; lower is faster)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("interlace vs lme4 / glmmTMB")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_markdown(rows: list[dict], info: dict, source: str, peers: list[str],
                   notes: list[str], path: Path) -> str:
    """Write ``results.md`` (header, targets, tables, method notes) and return its text."""
    label = "live (timed in this run)" if source == "live" else "recorded (the fixtures' r_seconds)"
    parts = [
        "# interlace benchmark results",
        "",
        f"Date: {info['date']}. Machine: {info['nproc']} cores, {info['cpu']}; load average "
        f"(1/5/15 min) at start {info.get('loadavg_start', '?')}, at end {info['loadavg']}. "
        f"Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}"
        + (f", {info['r_version']}" if info.get("r_version") else "") + ".",
        "",
        f"Command: `{info.get('command', 'python -m bench')}`. R timings: **{label}**.",
        "",
        "## Targets",
        "",
        targets_markdown(evaluate_targets(rows, source)),
        "",
        f"## All cases (ratios against {source} R timings)",
        "",
        markdown_table(rows, source),
    ]
    if source == "live" and any(r.get("r_recorded") for r in rows):
        parts += ["", "## The same against the recorded R timings (fixture JSONs)", "",
                  markdown_table(rows, "recorded"), "",
                  targets_markdown(evaluate_targets(rows, "recorded"))]
    if source == "live" and any(r.get("r_live_cpu") for r in rows):
        parts += ["", "## CPU seconds against R's CPU seconds (both timed in this run)", "",
                  r_cpu_table(rows)]
    if peers:
        parts += ["", "## Python peers (median warm fit, same data)", "",
                  peers_table(rows, peers)]
    parts += ["", "## How these are measured", ""] + [f"- {n}" for n in notes]
    text = "\n".join(parts) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
