"""R's printing rules that lme4's summary follows: ``format(x, digits=)``,
``format.pval``, significance stars, ``abbreviate`` and coefficient names.
Shared by the text summary (summary.py) and its HTML (html.py).

Example
-------
>>> format_common([1.23456, 10.5])
['1.235', '10.500']
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["abbreviate", "abbreviate_unique", "r_coef_name", "format_common"]


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's ``abbreviate(name, minlength)`` as lme4 uses it for the fixed-effect
    correlation header: drop lower-case vowels from the right, then lower-case
    letters from the right, never the first character, then truncate.

    >>> abbreviate("(Intercept)"), abbreviate("period2")
    ('(Intr)', 'perid2')
    """
    s = name.replace(" ", "")
    if len(s) <= minlength:
        return s
    chars = list(s)
    for test in (lambda c: c in "aeiou", lambda c: c.islower()):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if test(chars[i]):
                del chars[i]
            i -= 1
    return "".join(chars[:minlength]) if len(chars) > minlength else "".join(chars)


def abbreviate_unique(names: list[str], minlength: int = 6) -> list[str]:
    """R's ``abbreviate(names, minlength)`` with its default ``strict = FALSE``:
    names whose abbreviations collide are abbreviated again with a longer
    ``minlength`` until all are distinct (so the correlation block of summary
    never shows two columns under one label).

    >>> abbreviate_unique(["urbanY:livch1", "urbanY:livch2", "urbanY:livch3+"])
    ['urbY:1', 'urbY:2', 'urY:3+']
    """
    out = [abbreviate(n, minlength) for n in names]
    redo = list(range(len(names)))
    m = minlength
    while True:
        seen: dict[str, list[int]] = {}
        for i, a in enumerate(out):
            seen.setdefault(a, []).append(i)
        dups = sorted(i for idx in seen.values() if len(idx) > 1 for i in idx)
        if not dups or m > max(len(n) for n in names):
            return out
        m += 1
        redo = dups
        for i in redo:
            out[i] = abbreviate(names[i], m)


def r_coef_name(name: str) -> str:
    """interlace's coefficient name as R prints it: ``Intercept`` -> ``(Intercept)``,
    ``urban[T.Y]:livch[T.1]`` -> ``urbanY:livch1`` (treatment-contrast columns)."""
    import re

    if name == "Intercept":
        return "(Intercept)"
    return re.sub(r"\[T\.([^\]]*)\]", r"\1", str(name))


def _decimals(x: float, digits: int) -> int:
    if not np.isfinite(x) or x == 0:
        return 0
    d = digits - 1 - int(math.floor(math.log10(abs(x))))
    # R drops trailing zeros: use the fewest decimals that keep `digits` significant digits
    while d > 0 and abs(round(x, d - 1) - x) <= 10 ** (-digits) * abs(x) * 0.5:
        d -= 1
    return max(d, 0)


def format_common(values, digits: int = 4) -> list[str]:
    """Format a column as R's ``format(x, digits=)``: common decimals, enough
    for each element to show ``digits`` significant digits (capped at 15).

    >>> format_common([565.48, 32.68, 654.94])
    ['565.48', '32.68', '654.94']
    """
    vals = [float(v) for v in values]
    fin = [v for v in vals if np.isfinite(v)]
    if not fin:
        return ["NA" if not np.isfinite(v) else f"{v}" for v in vals]
    dec = min(max(_decimals(v, digits) for v in fin), 15)
    big = max(abs(v) for v in fin)
    if big >= 1e15 or (big > 0 and big < 10 ** (-digits - 4)):
        return [f"{v:.{digits - 1}e}" for v in vals]
    return [f"{v:.{dec}f}" if np.isfinite(v) else "NA" for v in vals]


def _pformat(p: float) -> str:
    """R's format.pval with digits = 3 (printCoefmat's default here)."""
    if not np.isfinite(p):
        return "NA"
    if p < 2e-16:
        return "< 2e-16"
    if p < 1e-4:
        return f"{p:.2e}"
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.6f}".rstrip("0")


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    for cut, s in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return s
    return ""
