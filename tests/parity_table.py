"""Print the parity table: interlace against every R reference fit, largest relative errors.

    python tests/parity_table.py            # all oracle, oracle-scale and fixture cases
    python tests/parity_table.py cbpp_laplace simbin_ri

One markdown row per case: llf minus R's, then the largest relative error of the fixed
effects, SEs, VarCorr, BLUPs, conditional SDs and fitted values (`oracle_utils.compare`, the
measure the parity tests hold to 1e-3). Not a test: the tests assert; this reports.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FIXTURES, ORACLE, ORACLE_SCALE  # noqa: E402
from oracle_utils import compare, fit_case  # noqa: E402


def main(names: list[str]) -> int:
    files = [p for root in (ORACLE, ORACLE_SCALE, FIXTURES) for p in sorted((root / "cases").glob("*.json"))]
    print("| case | engine | llf − R | fixef | SE | VarCorr | BLUPs | cond. SD | fitted |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in files:
        case = json.loads(path.read_text())
        if "python_call" not in case or (names and case["case"] not in names):
            continue  # residual-only fixtures carry no fit
        if "fixef_names" not in case:
            continue  # benchmark-only cases (llf and timing; their parity tests live with the feature)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cmp = compare(fit_case(case), case)
        cell = [f"{cmp[k]:.1e}" if k in cmp else "–" for k in ("fixef", "se", "varcorr", "ranef", "condsd", "fitted")]
        print(f"| {case['case']} | {case['engine']} | {cmp['llf_diff']:+.1e} | " + " | ".join(cell) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
