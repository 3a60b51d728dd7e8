"""Counterparts of `torch.utils`: `numpygpt.utils.data` is `torch.utils.data` for what the book uses."""

from . import data

__all__ = ["data"]
