"""The notebook view and summary's correlation block (issue 23 item 8): R's
abbreviate() with unique labels (tests/fixtures/postfit_toolbox/summary.json), one
HTML table layout without raw lists or a repeated text block."""

from __future__ import annotations

import functools
import json
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

import interlace
from interlace.results.summary import abbreviate_unique, r_coef_name

FIX = Path(__file__).parent / "fixtures"
R = json.loads((FIX / "postfit_toolbox" / "summary.json").read_text())


@functools.lru_cache(maxsize=None)
def contra():
    c = pd.read_csv(FIX / "data" / "contraception.csv").astype({"district": str})
    c["livch"] = pd.Categorical(c["livch"], categories=["0", "1", "2", "3+"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer("use01 ~ urban * livch + age + (1 | district)", c, family="binomial")


@pytest.mark.parametrize("key", ["contra", "cbpp", "long"])
@pytest.mark.parametrize("minlength", [6, 11])
def test_abbreviations_are_rs_and_unique(key, minlength):
    rec = R[key]
    ours = abbreviate_unique(rec["names"], minlength)
    assert ours == rec[f"abbrev{minlength}"]
    assert len(set(ours)) == len(ours)


def test_r_coef_names():
    assert r_coef_name("Intercept") == "(Intercept)"
    assert r_coef_name("urban[T.Y]:livch[T.3+]") == "urbanY:livch3+"


def test_summary_correlation_block_labels_as_lme4():
    text = str(contra().summary()).splitlines()
    i = text.index("Correlation of Fixed Effects:")
    ours_head = text[i + 1].split()
    ours_rows = [ln.split()[0] for ln in text[i + 2:i + 10]]
    r_lines = R["contra_print"]
    j = r_lines.index("Correlation of Fixed Effects:")
    assert ours_head == r_lines[j + 1].split()
    assert ours_rows == [ln.split()[0] for ln in r_lines[j + 2:j + 10]]
    # the old labels collided: three interaction columns were all 'u[T.Y]'
    assert len(set(ours_head)) == len(ours_head)


def test_repr_html_is_one_clean_layout():
    m = contra()
    page = m._repr_html_()
    assert page == m.summary()._repr_html_()
    assert "<pre>" not in page  # no duplicated plain-text block
    assert page.count("<table") == 5  # statistics, residuals, random, fixed, correlations
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page)
    assert not any(c.startswith("[") for c in cells)  # no raw Python lists
    assert "&lt; 2e-16" in page and "***" in page  # R's format.pval and stars
    assert "urbY:1" in page and "urbY:2" in page and "urbnY:lvc3+" in page
    assert "0.2124" in page and "0.4608" in page  # variance and SD as the text summary rounds them
