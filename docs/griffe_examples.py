"""Griffe extension for the API reference: interlace's docstrings head their doctests
``Example`` (singular), which griffe's numpy parser does not know, so the ``>>>`` lines were
rendered as nested block quotes. Renaming the heading to ``Examples`` when the docstrings are
loaded makes them an examples section, rendered as highlighted Python code.

Listed under ``extensions`` of the mkdocstrings python handler in mkdocs.yml.
"""

from __future__ import annotations

import re
from typing import Any

try:  # the docs extra; the renaming itself is tested without it (tests/test_docs.py)
    import griffe
except ImportError:  # pragma: no cover
    griffe = None

_HEADING = re.compile(r"^(?P<indent>[ \t]*)Example\n(?P=indent)-{7}[ \t]*$", re.M)
_EXAMPLES = re.compile(r"^[ \t]*Examples\n[ \t]*-{8}[ \t]*$", re.M)
_FIRST_PROMPT = re.compile(r"\n*^>>> ", re.M)


def rename_example_headings(text: str) -> str:
    """``Example`` / ``-------`` -> ``Examples`` / ``--------`` (numpy's section name); a
    doctest with no heading at all gets an ``Examples`` heading before its first ``>>>``.

    >>> rename_example_headings("Sum.\\n\\nExample\\n-------\\n>>> 1 + 1\\n2\\n")
    'Sum.\\n\\nExamples\\n--------\\n>>> 1 + 1\\n2\\n'
    >>> rename_example_headings("Sum.\\n\\n>>> 1 + 1\\n2")
    'Sum.\\n\\nExamples\\n--------\\n>>> 1 + 1\\n2'
    """
    text = _HEADING.sub(lambda m: f"{m['indent']}Examples\n{m['indent']}--------", text)
    if ">>>" in text and not _EXAMPLES.search(text):
        text = _FIRST_PROMPT.sub("\n\nExamples\n--------\n>>> ", text, count=1)
    return text


class ExampleSections(griffe.Extension if griffe is not None else object):  # type: ignore[misc]
    """Fix the section heading of every docstring griffe loads."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        doc = getattr(obj, "docstring", None)
        if doc is not None and ("Example\n" in doc.value or ">>>" in doc.value):
            doc.value = rename_example_headings(doc.value)
