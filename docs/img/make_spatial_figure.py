"""Draw docs/img/covariance_spatial.png, the spatial figure of docs/covariance.md.

Simulated counts at 150 irregular positions (two observations each) with an exponential spatial
field (SD 0.8, scale 2) fitted with the exp, gau and mat structures; the figure shows each fit's
correlation against distance (the structure's own correlation function at the fitted
parameters) beside the true one.

Run from the repository root: ``python docs/img/make_spatial_figure.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import interlace  # noqa: E402

OUT = Path(__file__).resolve().parent / "covariance_spatial.png"


def simulate(seed: int = 7, npos: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, size=(npos, 2)).round(2)
    D = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    b = rng.multivariate_normal(np.zeros(npos), 0.8**2 * np.exp(-D / 2.0))
    rows = np.repeat(np.arange(npos), 2)
    x = rng.normal(size=rows.size).round(3)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + b[rows]))
    df = pd.DataFrame({"y": y, "x": x, "px": xy[rows, 0], "py": xy[rows, 1], "group": "all"})
    df["pos"] = interlace.numFactor(df.px, df.py)
    return df


def main() -> None:
    df = simulate()
    d = np.linspace(0, 8, 200)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    styles = {"exp": dict(color="tab:blue", lw=2), "gau": dict(color="tab:orange"),
              "mat": dict(color="tab:green", ls="--")}
    for st, style in styles.items():
        m = interlace.glmer(f"y ~ x + {st}(pos + 0 | group)", df, family="poisson")
        cov = m.model_frame.terms[0].cov
        ax.plot(d, cov.correlation_at(m.theta.to_numpy(), d), label=f"{st}  (AIC {m.aic:.1f})", **style)
    ax.plot(d, np.exp(-d / 2.0), "k:", label="truth: exp(-d / 2)")
    ax.set_xlabel("distance between positions")
    ax.set_ylabel("correlation of the spatial effects")
    ax.set_title("Fitted spatial correlation (150 irregular positions, Poisson)")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
