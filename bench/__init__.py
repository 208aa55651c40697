"""interlace's benchmark harness: ``python -m bench`` races interlace against lme4 and glmmTMB.

Kept free of heavy imports: ``python -m bench.worker`` times ``import interlace`` in a fresh
process, and importing this package must not load numpy or pandas first.
"""
