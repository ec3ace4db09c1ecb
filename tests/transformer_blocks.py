"""Hand-written transformer modules for the import tests (tests/test_import_torch_zoo.py).

Written the way people write them by hand (timm, nanoGPT style) rather than with
``nn.MultiheadAttention``: attention from ``nn.Linear``, ``reshape``/``transpose``,
``@`` and ``softmax``, shapes read from ``x.shape``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention on ``(B, T, C)`` tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.reshape(B, T, self.heads, C // self.heads).transpose(1, 2)     # (B, H, T, D)
        k = k.reshape(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.reshape(B, T, self.heads, C // self.heads).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1)) * self.scale                      # (B, H, T, T)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(out)


class TimmAttention(nn.Module):
    """Attention as timm writes it: one qkv projection reshaped to
    ``(3, B, heads, T, D)`` (the batch moved to dimension 1), ``unbind``, then
    ``F.scaled_dot_product_attention`` (``fused``) or the products written out."""

    def __init__(self, dim: int = 64, heads: int = 4, fused: bool = True):
        super().__init__()
        self.heads, self.head_dim, self.fused = heads, dim // heads, fused
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = ((q * self.head_dim ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = attn @ v
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class PreLNBlock(nn.Module):
    """Pre-LN transformer encoder block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int = 64, heads: int = 4, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding (a strided conv), class token, position embedding, two pre-LN
    blocks, the class token's head: the parts of a ViT on a small image."""

    def __init__(self, image: int = 32, patch: int = 8, dim: int = 64, classes: int = 10):
        super().__init__()
        tokens = (image // patch) ** 2
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.blocks = nn.Sequential(PreLNBlock(dim), PreLNBlock(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)                 # (B, T, C)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])
