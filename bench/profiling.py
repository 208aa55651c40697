"""cProfile summary of one warm fit: where the time goes, for the engine's owners.

Example
-------
>>> from bench.cases import discover
>>> text = profile_case(discover(["cbpp_laplace"])[0], top=5)  # doctest: +SKIP
"""

from __future__ import annotations

import cProfile
import io
import pstats

from bench.cases import Case, fit_case, read_case_data


def stage_breakdown(prof: cProfile.Profile, entry: str = "_glmer") -> str:
    """Cumulative time of each function ``entry`` calls directly (the pipeline's stages:
    model frame, optimizer, result), as one markdown line."""
    stats = pstats.Stats(prof)
    parts = []
    total = 0.0
    for func, (_cc, _nc, _tt, _ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        for caller, cstats in callers.items():
            if caller[2] == entry:
                parts.append((cstats[3], f"{func[2]} ({func[0].rsplit('/', 1)[-1]})"))
            if func[2] == entry and caller[2] != entry:
                total = max(total, _ct)
    parts.sort(reverse=True)
    shown = ", ".join(f"{name} {t:.3f} s" for t, name in parts[:6] if t >= 0.0005)
    return f"Stages under `{entry}` ({total:.3f} s): {shown}.\n"


def profile_case(case: Case, top: int = 15) -> str:
    """Profile a warm fit (one untimed fit first, so numba compilation is excluded) and
    return the top functions by own time and by cumulative time as text."""
    df = read_case_data(case)
    fit_case(case, df)
    prof = cProfile.Profile()
    prof.enable()
    fit_case(case, df)
    prof.disable()
    out = [stage_breakdown(prof)]
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key)
        stats.print_stats(top)
        body = buf.getvalue()
        # keep the table, drop pstats' preamble up to the column header
        body = body[body.find("   ncalls"):] if "   ncalls" in body else body
        total = stats.total_tt
        out.append(f"### {case.name}: top {top} by {title} (profiled fit {total:.3f} s)\n\n"
                   f"```\n{body.rstrip()}\n```\n")
    return "\n".join(out)
