"""Draw docs/img/covariance_ar1.png, the figure of docs/covariance.md.

A simulated longitudinal study (300 subjects, 8 equally spaced visits, Gaussian response with an
AR(1) subject-by-visit effect) fitted with ar1, toep and cs; the figure shows each fit's correlation
between the first visit and each later one against their lag. (us has as many random effects
as observations here: lme4's check refuses it, as its variances and the residual's are not
separately identified.)

Run from the repository root: ``python docs/img/make_covariance_figure.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import interlace  # noqa: E402
from interlace.results.summary import varcorr_matrices  # noqa: E402

OUT = Path(__file__).resolve().parent / "covariance_ar1.png"


def simulate(seed: int = 21, ns: int = 300, nt: int = 8, phi: float = 0.7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lag = np.abs(np.subtract.outer(np.arange(nt), np.arange(nt)))
    b = rng.multivariate_normal(np.zeros(nt), 0.8 ** 2 * phi ** lag, size=ns)
    subject = np.repeat(np.arange(ns), nt)
    visit = np.tile(np.arange(nt), ns)
    x = rng.normal(size=ns * nt)
    y = 1.0 + 0.5 * x + 0.1 * visit + b[subject, visit] + rng.normal(0, 0.5, ns * nt)
    return pd.DataFrame({"y": y, "x": x, "visit": [f"v{v}" for v in visit], "subject": subject})


def main() -> None:
    df = simulate()
    nt = df["visit"].nunique()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    styles = {"cs": dict(marker="s", color="tab:green"), "toep": dict(marker="^", color="tab:orange"),
              "ar1": dict(marker="o", color="tab:blue", lw=2)}
    for st, style in styles.items():
        m = interlace.lmer(f"y ~ x + visit + {st}(0 + visit | subject)", df, REML=False)
        R = varcorr_matrices(m)["subject"]["corr"].to_numpy()
        ax.plot(np.arange(nt), R[0], label=f"{st}  (AIC {m.aic:.1f})", **style)
    ax.plot(np.arange(nt), 0.7 ** np.arange(nt), "k:", label="truth: 0.7^lag")
    ax.set_xlabel("lag between visits")
    ax.set_ylabel("correlation of the subject's effects")
    ax.set_title("Fitted correlation by structure (300 subjects x 8 visits)")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
