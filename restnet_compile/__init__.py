"""restnet-compile: an edge-deployment compiler for stitchable networks (ReStNet)."""

__version__ = "0.1.0"
