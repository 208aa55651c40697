"""numba kernels. Importing the package first sets up numba's cache handling and the
first-compilation notice (interlace/_numba_setup.py)."""

from interlace._numba_setup import install as _install_numba_setup

_install_numba_setup()
