"""Fresh-process measurements, run as ``python -m bench.worker CASE [--memory]``.

Prints one JSON line: the time to ``import interlace`` (light: numpy, pandas, scipy and
numba load later, when first used), the first fit's time (formula parsing included, and the
loading of numba and of the compiled kernels; reading the CSV is not timed, but the pandas
import it triggers is counted in ``process_cpu_s``), and with ``--memory`` the peak memory a
fit adds. Each time is given in wall seconds and in CPU seconds of this process
(``*_cpu_s``, ``time.process_time``): on a shared machine the wall time mostly measures the
other jobs. ``process_cpu_s`` is all the CPU the process used up to the end of the first fit
(interpreter start-up included).

Peak memory is read from Linux's ``/proc/self/status`` (VmHWM, the resident-set high-water
mark). After the first fit the high-water mark is reset (``echo 5 > /proc/self/clear_refs``),
so a second fit's peak minus the resident size before it is the memory the fit itself adds,
without the one-off cost of loading numba's cached machine code; the first fit's growth
(which includes that cost) is reported too. getrusage's ru_maxrss is not used: Linux carries
the parent's high-water mark into a child across fork and exec. tracemalloc is not used: it
misses memory numpy and numba allocate outside Python's allocator.

Example
-------
$ python -m bench.worker cbpp_laplace --memory
{"case": "cbpp_laplace", "import_s": 0.9, "first_fit_s": 0.2, ...}
"""

from __future__ import annotations

import time

_T0, _C0 = time.perf_counter(), time.process_time()
import interlace  # noqa: E402,F401  (timed: the import is part of a fresh process's cost)

_T_IMPORT = time.perf_counter() - _T0
_C_IMPORT = time.process_time() - _C0

import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run one case in this (fresh) process and print the measurements as JSON."""
    from bench.cases import discover, fit_case, read_case_data

    argv = sys.argv[1:] if argv is None else argv
    name = argv[0]
    memory = "--memory" in argv
    case = discover([name])[0]
    df = read_case_data(case)
    out: dict = {"case": name, "import_s": _T_IMPORT}
    # ru_maxrss would carry the parent's high-water mark across fork+exec, so the
    # first fit's growth is read from VmHWM after a reset as well
    hwm_ok = _reset_hwm()
    rss0 = _status_kb("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    res = fit_case(case, df)
    out["first_fit_s"] = time.perf_counter() - t
    out["first_fit_cpu_s"] = time.process_time() - c
    out["import_cpu_s"] = _C_IMPORT
    out["process_cpu_s"] = time.process_time()
    out["llf"] = float(res.llf)
    peak0 = _status_kb("VmHWM")
    if hwm_ok and rss0 is not None and peak0 is not None:
        out["first_fit_peak_mb"] = (peak0 - rss0) / 1024
    if memory:
        del res
        gc.collect()
        if _reset_hwm():
            base = _status_kb("VmRSS")
            res = fit_case(case, df)
            peak = _status_kb("VmHWM")
            if base is not None and peak is not None:
                out["peak_fit_mb"] = (peak - base) / 1024
                out["memory_method"] = "VmHWM after clear_refs reset, warm second fit"
        if "peak_fit_mb" not in out:
            out["memory_method"] = "unavailable (no /proc/self/clear_refs)"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
