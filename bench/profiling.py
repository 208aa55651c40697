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


def profile_case(case: Case, top: int = 15) -> str:
    """Profile a warm fit (one untimed fit first, so numba compilation is excluded) and
    return the top functions by own time and by cumulative time as text."""
    df = read_case_data(case)
    fit_case(case, df)
    prof = cProfile.Profile()
    prof.enable()
    fit_case(case, df)
    prof.disable()
    out = []
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
