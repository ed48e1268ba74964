"""Representation similarity between the blocks of two models."""

from restnet_compile.similarity.cka import cka_matrix, linear_cka

__all__ = ["cka_matrix", "linear_cka"]
