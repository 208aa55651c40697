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

__all__ = ["Covariance", "Unstructured", "Diagonal", "ScaledCorrelation", "CompoundSymmetry", "HomCompoundSymmetry",
           "AR1", "HetAR1", "Toeplitz", "HomToeplitz", "HomDiagonal", "STRUCTURES", "make_structure",
           "register_structure"]
