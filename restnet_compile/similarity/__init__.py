"""Representation similarity between the blocks of two models."""

from restnet_compile.similarity.cka import cka_matrix

__all__ = ["cka_matrix"]
