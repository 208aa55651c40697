"""Data sets shipped with interlace: the frames of lme4's, mlmRev's and glmmTMB's classic examples.

Each data set is the frame R has (a CSV, gzipped for the large ones, in
``interlace/datasets/data``), with R's factor columns restored as pandas
categoricals in R's level order, so that treatment contrasts take R's
reference level and random-effect rows come out in lme4's order. The factor
metadata and the descriptions (``data/metadata.json``) were read from the R
packages themselves by ``make_metadata.R``, which also exported the CSVs of the
sets that are not oracle frames; nothing is looked up outside the package at
run time.

- ``cbpp`` (``lme4::cbpp``, 56 rows): binomial incidence, herd random intercept;
- ``sleepstudy`` (``lme4::sleepstudy``, 180 rows): reaction times, random slope on Subject;
- ``grouseticks`` (``lme4::grouseticks``, 403 rows): tick counts, BROOD / INDEX / LOCATION;
- ``owls`` (``glmmTMB::Owls``, 599 rows): sibling negotiation counts with an offset, Nest;
- ``salamanders`` (``glmmTMB::Salamanders``, 644 rows): zero-inflated counts, site;
- ``verbagg`` (``lme4::VerbAgg``, 7,584 rows): binary item responses, crossed id and item;
- ``contraception`` (``mlmRev::Contraception``, 1,934 rows): binary use, district slopes;
- ``insteval`` (``lme4::InstEval``, 73,421 rows): ratings with crossed s, d and dept;
- ``penicillin`` (``lme4::Penicillin``, 144 rows): crossed plate and sample;
- ``dyestuff`` (``lme4::Dyestuff``, 30 rows): one random intercept (Batch);
- ``pastes`` (``lme4::Pastes``, 60 rows): nested batch / cask.

Example
-------
>>> from interlace import datasets
>>> sorted(datasets.available())[:4]
['cbpp', 'contraception', 'dyestuff', 'grouseticks']
>>> datasets.available()["dyestuff"]
'Dyestuff (lme4), 30 rows: Yield of dyestuff from 6 batches of an intermediate product; one random intercept'
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
        df = pd.read_csv(fh, compression="gzip" if meta["file"].endswith(".gz") else None)
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
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(sorted(_metadata()))}")
    return key


def available(as_frame: bool = False) -> dict[str, str] | pd.DataFrame:
    """The shipped data sets: name -> one line saying what each is.

    The line gives R's name, the R package and the number of rows, then a short
    description. With ``as_frame=True``, a pandas DataFrame (index ``name``; columns
    ``r_name``, ``r_package``, ``rows``, ``description``). :func:`load` accepts the
    names in any capitalisation (``"VerbAgg"``).

    Example
    -------
    >>> "cbpp" in available()
    True
    >>> int(available(as_frame=True).loc["insteval", "rows"])
    73421
    """
    meta = _metadata()
    names = sorted(meta)
    if as_frame:
        return pd.DataFrame(
            {
                "r_name": [meta[n]["r_name"] for n in names],
                "r_package": [meta[n]["r_package"] for n in names],
                "rows": [int(meta[n]["nrow"]) for n in names],
                "description": [meta[n]["description"] for n in names],
            },
            index=pd.Index(names, name="name"),
        )
    return {n: f"{meta[n]['r_name']} ({meta[n]['r_package']}), {meta[n]['nrow']:,} rows: "
               f"{meta[n]['description']}" for n in names}


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
