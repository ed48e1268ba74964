"""Model sources and the uniform block decomposition."""

from restnet_compile.models.blocks import BlockSequence, FeatureSpec
from restnet_compile.models.registry import MODELS, create_model

__all__ = ["MODELS", "BlockSequence", "FeatureSpec", "create_model"]
