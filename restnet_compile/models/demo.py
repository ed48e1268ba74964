"""The built-in demo zoo: a large, a middle and a small CNN and two small vision transformers for 28x28 grey digits.

The CNNs differ by capacity (width and depth), not by training budget: all are trained with the same recipe by
``scripts/pretrain_demo_zoo.py`` and their weights ship with the package.
"""

from __future__ import annotations

import torch
from torch import nn

from restnet_compile._util.images import ImagePolicy
from restnet_compile.models.blocks import BlockSequence

DEMO_INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
#: How a picture becomes a demo model's input, as MNIST was made: grey, light on dark (a light background is
#: inverted), the digit fitted in 20 x 20 keeping its aspect and centred by its centre of mass in 28 x 28.
DEMO_IMAGE_POLICY = ImagePolicy(invert="light-background", fit_object=20)


def _conv(cin: int, cout: int, stride: int = 1, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class _PoolHead(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, NUM_CLASSES))


def demo_large_cnn() -> BlockSequence:
    """Large CNN: six 3x3 conv blocks, 32-64-128 channels, about 29 M multiply-adds."""
    blocks = [
        _conv(1, 32),  # 32x28x28
        _conv(32, 32, pool=True),  # 32x14x14
        _conv(32, 64),  # 64x14x14
        _conv(64, 64, pool=True),  # 64x7x7
        _conv(64, 128),  # 128x7x7
        _conv(128, 128),  # 128x7x7
    ]
    return BlockSequence(blocks, _PoolHead(128), DEMO_INPUT_SHAPE, "demo-large-cnn")


def demo_mid_cnn() -> BlockSequence:
    """Middle CNN: five 3x3 conv blocks, 16-32-64 channels, 5.53 M multiply-adds (between the small CNN's 0.92 M and
    the large CNN's 29.13 M, near their geometric mean)."""
    blocks = [
        _conv(1, 16),  # 16x28x28
        _conv(16, 16, pool=True),  # 16x14x14
        _conv(16, 32),  # 32x14x14
        _conv(32, 32, pool=True),  # 32x7x7
        _conv(32, 64),  # 64x7x7
    ]
    return BlockSequence(blocks, _PoolHead(64), DEMO_INPUT_SHAPE, "demo-mid-cnn")


def demo_small_cnn() -> BlockSequence:
    """Small CNN: four 3x3 conv blocks, 8-16-32 channels, about 1 M multiply-adds."""
    blocks = [
        _conv(1, 8, stride=2),  # 8x14x14
        _conv(8, 16),  # 16x14x14
        _conv(16, 32, stride=2),  # 32x7x7
        _conv(32, 32),  # 32x7x7
    ]
    return BlockSequence(blocks, _PoolHead(32), DEMO_INPUT_SHAPE, "demo-small-cnn")


class PatchEmbed(nn.Module):
    """Patchify with a strided conv, flatten to tokens, prepend a class token, add position embeddings."""

    def __init__(self, dim: int, patch: int, grid: int) -> None:
        super().__init__()
        self.proj: nn.Module = nn.Conv2d(DEMO_INPUT_SHAPE[0], dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed


class ConvStemEmbed(PatchEmbed):
    """Convolutional stem instead of one patchifying conv (Xiao et al. 2021, "Early convolutions help transformers see
    better"): three 3x3 convs (BatchNorm, ReLU between; the last two stride 2) reach the same 7x7 grid of tokens."""

    def __init__(self, dim: int, grid: int, widths: tuple[int, int] = (32, 64)) -> None:
        super().__init__(dim, 4, grid)
        a, b = widths
        self.proj = nn.Sequential(
            nn.Conv2d(DEMO_INPUT_SHAPE[0], a, 3, padding=1, bias=False),
            nn.BatchNorm2d(a),
            nn.ReLU(inplace=True),
            nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(b),
            nn.ReLU(inplace=True),
            nn.Conv2d(b, dim, 3, stride=2, padding=1),
        )


class Attention(nn.Module):
    """Multi-head self-attention written out (no ``nn.MultiheadAttention``: it converts badly to TFLite)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: attention and an MLP, each with a residual connection."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim * mlp_ratio), nn.GELU(approximate="tanh"), nn.Linear(dim * mlp_ratio, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ClassTokenHead(nn.Module):
    """LayerNorm then a linear classifier on the class token."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x[:, 0]))


def demo_vit() -> BlockSequence:
    """Small ViT: 4x4 patches (7x7 grid + class token), width 64, four blocks (first block = patch embedding)."""
    dim, heads, patch = 64, 4, 4
    grid = DEMO_INPUT_SHAPE[1] // patch
    first = nn.Sequential(PatchEmbed(dim, patch, grid), TransformerBlock(dim, heads))
    blocks = [first, TransformerBlock(dim, heads), TransformerBlock(dim, heads), TransformerBlock(dim, heads)]
    return BlockSequence(blocks, ClassTokenHead(dim), DEMO_INPUT_SHAPE, "demo-vit")


def demo_hybrid_vit() -> BlockSequence:
    """ViT with a convolutional stem (7x7 grid + class token), width 64, four blocks (first block = stem + block)."""
    dim, heads = 64, 4
    grid = DEMO_INPUT_SHAPE[1] // 4
    first = nn.Sequential(ConvStemEmbed(dim, grid), TransformerBlock(dim, heads))
    blocks = [first, TransformerBlock(dim, heads), TransformerBlock(dim, heads), TransformerBlock(dim, heads)]
    return BlockSequence(blocks, ClassTokenHead(dim), DEMO_INPUT_SHAPE, "demo-hybrid-vit")
