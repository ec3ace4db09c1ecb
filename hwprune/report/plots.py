"""Figures, drawn with matplotlib (Agg) and written atomically."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import InputError  # noqa: E402
from .output import check_out_path, write_atomic  # noqa: E402

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
OPERAND_LABELS = {
    "compute_pj": "MACs", "weights_pj": "weights", "index_pj": "indices",
    "inputs_pj": "input activations", "outputs_pj": "partial sums / outputs",
}


def check_plot_path(path: str | Path) -> Path:
    """``path`` if its suffix is a format we draw, else an :class:`InputError`."""
    if Path(path).suffix.lower() not in PLOT_SUFFIXES or str(path).endswith(("/", "\\")):
        raise InputError(f"cannot draw {path}: the file name must end in one of "
                         + ", ".join(PLOT_SUFFIXES))
    return check_out_path(path)


def save_figure(fig, path: str | Path) -> None:
    """Write ``fig`` to ``path`` (format from the suffix) through a temporary file."""
    path = check_plot_path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lower().lstrip("."), bbox_inches="tight", dpi=120)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def plot_energy(df: pd.DataFrame, level_names: list[str], title: str, unit: str,
                path: str | Path) -> None:
    """Two stacked bar charts per layer: energy by memory level, and by operand."""
    layers = df["layer"].tolist()
    fig, axes = plt.subplots(2, 1, figsize=(max(7.0, 0.45 * len(layers) + 3), 8), sharex=True)
    groups = [
        ("by memory level", [(f"{n}_pj", n.upper()) for n in level_names]
         + [("compute_pj", "MACs")]),
        ("by operand", list(OPERAND_LABELS.items())),
    ]
    cmap = plt.get_cmap("tab10")
    for ax, (subtitle, columns) in zip(axes, groups):
        bottom = pd.Series(0.0, index=df.index)
        for i, (col, label) in enumerate(columns):
            if col not in df or not (df[col] > 0).any():
                continue
            ax.bar(range(len(layers)), df[col], bottom=bottom, label=label, color=cmap(i % 10))
            bottom = bottom + df[col]
        ax.set_ylabel(f"energy ({unit})")
        ax.set_title(f"{title}: energy per layer {subtitle}")
        ax.legend(fontsize=8, ncol=3)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(layers)))
    axes[-1].set_xticklabels(layers, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
