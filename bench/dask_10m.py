"""Benchmark: a 10,000,000-row binary GLMM on a Dask cluster.

Model: ``y ~ x + (1 | g)``, binomial, 10,000 groups. The data are generated
partition by partition inside the workers (``dask.dataframe.from_map``), so no
process ever holds all rows. For each size (default 1M and 10M rows) a fresh
cluster is started with the ``dask scheduler`` / ``dask worker`` commands (an
"existing cluster", as on a real deployment) and the fit runs in a fresh
client process that connects to it with ``Client("tcp://...")``. Reported:
wall time (fit only, and end to end), the client's and each worker's peak
resident memory (``ru_maxrss`` of the process), and the number of Dask
map/reduce rounds of the fit. The client's peak memory does not grow with
the number of rows: it holds only q- and p-sized objects.

Usage::

    python bench/dask_10m.py                     # 1M and 10M rows, 2 workers
    python bench/dask_10m.py --rows 1000000 --workers 2 --partition-rows 500000

Example
-------
>>> gen_partition(0, 100, 10, 7).shape
(100, 3)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

GROUPS = 10_000
SEED = 20240611
BETA = (-0.8, 0.5)
SD_G = 0.6


def gen_partition(i: int, nrows: int, groups: int, seed: int) -> pd.DataFrame:
    """Partition ``i``: its own stream of x, g, y; the group effects are the
    same in every partition (drawn from ``seed`` alone)."""
    b = np.random.default_rng(seed).normal(0.0, SD_G, groups)
    rng = np.random.default_rng([seed, i])
    g = rng.integers(0, groups, nrows)
    x = rng.normal(size=nrows)
    eta = BETA[0] + BETA[1] * x + b[g]
    y = (rng.random(nrows) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(np.int64)})


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def client_main(address: str, rows: int, partition_rows: int, groups: int, out: str) -> None:
    """The client process: connect, build the lazy frame, fit, report."""
    import dask.dataframe as dd
    from distributed import Client

    import interlace

    t_all = time.perf_counter()
    client = Client(address)
    nparts = max(1, rows // partition_rows)
    sizes = [partition_rows] * nparts
    sizes[-1] += rows - sum(sizes)
    meta = gen_partition(0, 0, groups, SEED)
    ddf = dd.from_map(lambda args: gen_partition(args[0], args[1], groups, SEED), list(enumerate(sizes)),
                      meta=meta, enforce_metadata=False)
    t0 = time.perf_counter()
    m = interlace.glmer("y ~ x + (1 | g)", ddf, family="binomial")
    fit_s = time.perf_counter() - t0
    workers = client.run(_peak_rss_mb)
    rec = {
        "rows": rows, "partitions": nparts, "groups": groups, "workers": len(workers),
        "fit_seconds": round(fit_s, 1), "total_seconds": round(time.perf_counter() - t_all, 1),
        "dask_rounds": m.optinfo["dask_rounds"], "rounds_by_kind": m.optinfo["dask_rounds_by_kind"],
        "nfev": m.optinfo["nfev"], "ngev": m.optinfo["ngev"],
        "client_peak_rss_mb": round(_peak_rss_mb(), 1),
        "worker_peak_rss_mb": {k: round(v, 1) for k, v in sorted(workers.items())},
        "llf": m.llf, "fe_params": m.fe_params.round(5).to_dict(), "theta": m.theta.round(5).to_dict(),
        "converged": m.converged,
    }
    client.close()
    with open(out, "w") as fh:
        json.dump(rec, fh)


def run_one(rows: int, workers: int, partition_rows: int, groups: int, memory_limit: str) -> dict:
    """Start a scheduler and workers, run the client process, stop the cluster."""
    tmp = tempfile.mkdtemp(prefix="interlace-bench-")
    sched_file = os.path.join(tmp, "scheduler.json")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", sched_file], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        while not os.path.exists(sched_file):
            time.sleep(0.2)
        time.sleep(0.5)
        with open(sched_file) as fh:
            address = json.load(fh)["address"]
        procs.append(subprocess.Popen(["dask", "worker", address, "--nworkers", str(workers), "--nthreads", "1",
                                       "--memory-limit", memory_limit, "--no-dashboard",
                                       "--local-directory", tmp], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address) as c:
            c.wait_for_workers(workers, timeout=120)
        out = os.path.join(tmp, "result.json")
        subprocess.run([sys.executable, __file__, "--client", address, "--rows", str(rows),
                        "--partition-rows", str(partition_rows), "--groups", str(groups), "--out", out],
                       check=True, env=env)
        with open(out) as fh:
            return json.load(fh)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partition-rows", type=int, default=500_000)
    ap.add_argument("--groups", type=int, default=GROUPS)
    ap.add_argument("--memory-limit", default="6GB")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_main(args.client, args.rows[0], args.partition_rows, args.groups, args.out)
        return
    results = []
    for rows in args.rows:
        rec = run_one(rows, args.workers, args.partition_rows, args.groups, args.memory_limit)
        results.append(rec)
        print(json.dumps(rec), flush=True)
    print()
    print(f"{'rows':>11} {'parts':>5} {'fit s':>7} {'rounds':>6} {'client peak MB':>15} {'worker peak MB':>22}")
    for r in results:
        wk = ", ".join(f"{v:.0f}" for v in r["worker_peak_rss_mb"].values())
        print(f"{r['rows']:>11,} {r['partitions']:>5} {r['fit_seconds']:>7.1f} {r['dask_rounds']:>6} "
              f"{r['client_peak_rss_mb']:>15.0f} {wk:>22}")


if __name__ == "__main__":
    main()
