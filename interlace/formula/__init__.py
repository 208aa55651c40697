"""The lme4 formula front end: bar scanner, fixed part, random terms, response, FrameSpec."""

from .bars import Bar, ParsedFormula, expand_bars, parse_bar, scan_formula

__all__ = ["Bar", "ParsedFormula", "expand_bars", "parse_bar", "scan_formula"]
