"""``python -m bench``: see bench/README.md and ``python -m bench --help``;
``python -m bench --lmm [...]`` runs only the LMM suite (bench/lmm.py)."""

import sys

if "--lmm" in sys.argv[1:]:
    from bench.lmm import main as lmm_main

    raise SystemExit(lmm_main([a for a in sys.argv[1:] if a != "--lmm"]))

from bench.run import main  # noqa: E402

raise SystemExit(main())
