"""Print the lmer parity table against the lme4 / lmerTest / pbkrtest fixtures
(``python tests/lmer_parity_table.py``). Reports only; tests/test_lmer*.py assert."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interlace.inference import lmertest  # noqa: E402
from tests.lmer_cases import CASES, fitted, load  # noqa: E402


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))) if a.size else 0.0


def _vc_rel(m, r) -> float:
    ours = {(row.grp, None if row.var1 != row.var1 else row.var1, None if row.var2 != row.var2 else row.var2):
            row.vcov for row in m.varcorr.itertuples()}
    errs = []
    for row in r["varcorr"]:
        v1 = row.get("var1")
        v1 = "Intercept" if v1 == "(Intercept)" else v1
        v2 = row.get("var2")
        v2 = "Intercept" if v2 == "(Intercept)" else v2
        got = ours[(row["grp"], v1, v2)]
        scale = max(abs(row["vcov"]), 1e-6 * r["sigma"] ** 2)
        errs.append(abs(got - row["vcov"]) / scale)
    return max(errs)


def _tab(m, rows, ddf):
    t = lmertest.coef_table(m, ddf)
    df_err = _rel(t["df"], [r["df"] for r in rows])
    p_err = _rel(t["Pr(>|t|)"], [r["Pr(>|t|)"] for r in rows])
    return df_err, p_err


def main() -> None:
    print("| case | crit | criterion ours - R | fixef | SE | VarCorr | sigma | Satt. df | Satt. p | KR df | KR p |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in CASES:
        fx = load(case)
        for reml in (True, False):
            r = fx["reml" if reml else "ml"]
            m = fitted(case, reml)
            cells = [case, "REML" if reml else "ML", f"{-2 * m.llf - r['criterion']:.1e}",
                     f"{_rel(m.fe_params, list(r['fixef'].values())):.1e}", f"{_rel(m.fe_bse, r['se']):.1e}",
                     f"{_vc_rel(m, r):.1e}", f"{_rel(np.sqrt(m.scale), r['sigma']):.1e}"]
            st = fx.get("satterthwaite")
            if st:
                d, p = _tab(m, st["summary" if reml else "summary_ml"], "Satterthwaite")
                cells += [f"{d:.1e}", f"{p:.1e}"]
            else:
                cells += ["-", "-"]
            kr = fx.get("kenward_roger")
            if kr and reml:
                d, p = _tab(m, kr["summary"], "Kenward-Roger")
                cells += [f"{d:.1e}", f"{p:.1e}"]
            else:
                cells += ["-", "-"]
            print("| " + " | ".join(cells) + " |")
    print()
    print("| case | method | table | DenDF | F value | Pr(>F) |")
    print("|---|---|---|---|---|---|")
    for case in CASES:
        fx = load(case)
        for key, ddf in (("satterthwaite", "Satterthwaite"), ("kenward_roger", "Kenward-Roger")):
            for table in ("anova3", "anova2"):
                rows = [r for r in (fx.get(key) or {}).get(table) or [] if r.get("NumDF") is not None]
                if not rows:
                    continue
                t = lmertest.anova_table(fitted(case), type=int(table[-1]), ddf=ddf)
                t = t.loc[[r["term"] for r in rows]]
                cells = [case, ddf, "Type " + "I" * int(table[-1])]
                for col in ("DenDF", "F value", "Pr(>F)"):
                    cells.append(f"{_rel(t[col], [r[col] for r in rows]):.1e}")
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
