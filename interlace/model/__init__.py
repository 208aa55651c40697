"""The model layer: covariance structures of random-effect terms (see covariance.py)."""

from interlace.model.covariance import (
    AR1,
    STRUCTURES,
    CompoundSymmetry,
    Covariance,
    Diagonal,
    HetAR1,
    HomCompoundSymmetry,
    HomDiagonal,
    HomToeplitz,
    ScaledCorrelation,
    Toeplitz,
    Unstructured,
    make_structure,
    register_structure,
)

# the structures defined outside covariance.py register themselves on import
# (ou, exp, gau, mat, rr); importing them here keeps covariance.py free of a loop
from interlace.model import reduced_rank, spatial  # noqa: E402,F401

__all__ = ["Covariance", "Unstructured", "Diagonal", "ScaledCorrelation", "CompoundSymmetry", "HomCompoundSymmetry",
           "AR1", "HetAR1", "Toeplitz", "HomToeplitz", "HomDiagonal", "STRUCTURES", "make_structure",
           "register_structure"]
