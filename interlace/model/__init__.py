"""The model layer: covariance structures of random-effect terms (see covariance.py)."""

from interlace.model.covariance import Covariance, Diagonal, Unstructured

__all__ = ["Covariance", "Unstructured", "Diagonal"]
