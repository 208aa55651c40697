"""Data sets shipped with interlace: the frames of lme4's and glmmTMB's classic examples.

Each data set is the exact frame the R reference fits used (a CSV in
``interlace/datasets/data``), with R's factor columns restored as pandas
categoricals in R's level order, so that treatment contrasts take R's
reference level and random-effect rows come out in lme4's order. The factor
metadata (``data/metadata.json``) was read from the R packages themselves by
``make_metadata.R``; nothing is looked up outside the package at run time.

- ``cbpp`` (``lme4::cbpp``, 56 rows): binomial incidence, herd random intercept;
- ``sleepstudy`` (``lme4::sleepstudy``, 180 rows): reaction times, random slope on Subject;
- ``grouseticks`` (``lme4::grouseticks``, 403 rows): tick counts, BROOD / INDEX / LOCATION;
- ``owls`` (``glmmTMB::Owls``, 599 rows): sibling negotiation counts with an offset, Nest;
- ``salamanders`` (``glmmTMB::Salamanders``, 644 rows): zero-inflated counts, site.

Example
-------
>>> from interlace import datasets
>>> datasets.available()
['cbpp', 'grouseticks', 'owls', 'salamanders', 'sleepstudy']
>>> df = datasets.load("cbpp")
>>> df.shape
(56, 5)
>>> list(df["period"].cat.categories)
['1', '2', '3', '4']
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import pandas as pd

__all__ = ["available", "load", "info"]

_DATA = "data"
_METADATA = "metadata.json"


@cache
def _metadata() -> dict[str, Any]:
    text = resources.files(__name__).joinpath(_DATA, _METADATA).read_text(encoding="utf-8")
    return json.loads(text)["datasets"]


@cache
def _read(key: str) -> pd.DataFrame:
    """Parse one CSV once; callers get copies (see :func:`load`)."""
    meta = _metadata()[key]
    with resources.files(__name__).joinpath(_DATA, meta["file"]).open("rb") as fh:
        df = pd.read_csv(fh)
    for col, spec in meta["factors"].items():
        if col not in df.columns:
            continue
        # Factor levels are strings in R (period "1".."4", herd "1".."15"); read the
        # column as text so integer-coded factors map onto them exactly.
        values = df[col].astype(str)
        unknown = sorted(set(values.unique()) - set(spec["levels"]))
        if unknown:  # a corrupt package install, never a user error
            raise RuntimeError(f"{meta['file']}: column {col} has values not among R's levels: {unknown}")
        df[col] = pd.Categorical(values, categories=spec["levels"], ordered=bool(spec["ordered"]))
    return df


def _key(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _metadata():
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(available())}")
    return key


def available() -> list[str]:
    """Names of the shipped data sets (sorted; :func:`load` accepts any capitalisation).

    Example
    -------
    >>> "cbpp" in available()
    True
    """
    return sorted(_metadata())


def load(name: str) -> pd.DataFrame:
    """Return a fresh pandas copy of a shipped data set.

    ``name`` is case-insensitive (``"Owls"`` and ``"owls"`` are the same). R's
    factors are pandas categoricals with R's level order; everything else keeps
    the CSV's types. The frame is a new copy on every call, so modifying it never
    affects a later ``load``.

    Example
    -------
    >>> df = load("sleepstudy")
    >>> df["Subject"].cat.categories[:3].tolist()
    ['308', '309', '310']

    Raises
    ------
    ValueError
        for an unknown name (the message lists the available ones).
    """
    return _read(_key(name)).copy(deep=True)


def info(name: str) -> dict[str, Any]:
    """The metadata of one data set: R package and name, CSV file, factor levels.

    Example
    -------
    >>> info("Salamanders")["r_name"]
    'Salamanders'
    """
    return json.loads(json.dumps(_metadata()[_key(name)]))  # a deep copy
