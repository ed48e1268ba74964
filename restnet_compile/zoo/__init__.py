"""Model sources and the uniform block decomposition."""

from restnet_compile.zoo.blocks import BlockSequence, FeatureSpec
from restnet_compile.zoo.registry import MODELS, create_model

__all__ = ["MODELS", "BlockSequence", "FeatureSpec", "create_model"]
