"""Figures, drawn with matplotlib (Agg) and written atomically.

Every text is shown literally: names come from users (layer, network and device names),
and matplotlib would read ``$...$`` in them as mathtext (and fail on some). Each plot
function draws and saves with ``text.parse_math`` and ``text.usetex`` off
(:func:`literal_text`), so a layer named ``a$b$c`` is labelled ``a$b$c``."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import InputError  # noqa: E402
from .output import check_out_path, write_atomic  # noqa: E402

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
OPERAND_LABELS = {
    "compute_pj": "MACs", "weights_pj": "weights", "index_pj": "indices",
    "inputs_pj": "input activations", "outputs_pj": "partial sums / outputs",
}


LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}
"""matplotlib settings under which every string is drawn as it is."""


def literal_text(draw):
    """Run the plot function ``draw`` (which draws and saves) with :data:`LITERAL_TEXT`."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(LITERAL_TEXT):
            return draw(*args, **kwargs)
    return wrapper


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


def figure_bytes(job: tuple) -> bytes:
    """Draw one figure, ``job = (plot function, its arguments but the path, suffix)``,
    and return the file's bytes: the unit :func:`draw_figures` hands to a study's
    workers (which may be other machines, so nothing is written there)."""
    import tempfile

    plot, args, suffix = job
    with tempfile.TemporaryDirectory(prefix="hwprune-figure-") as tmp:
        path = Path(tmp) / f"figure{suffix}"
        plot(*args, path)
        return path.read_bytes()


def draw_figures(jobs: list[tuple], draw=None) -> None:
    """Draw ``jobs`` (``(plot function, its arguments but the path, path)`` each) and
    write each file atomically; ``draw(fn, items)``: how to map :func:`figure_bytes` over
    them (a study's open runner draws them on its workers), by default here, one by one."""
    items = [(plot, args, Path(path).suffix.lower()) for plot, args, path in jobs]
    for path in [path for *_, path in jobs]:
        check_plot_path(path)
    drawn = draw(figure_bytes, items) if draw is not None else [figure_bytes(i) for i in items]
    for (*_, path), content in zip(jobs, drawn):
        write_atomic(path, content)


@literal_text
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


MAX_PANELS = 16


@literal_text
def plot_breakeven(curves: pd.DataFrame, title: str, path: str | Path) -> None:
    """Latency against density, one line per format, one panel per layer (or per layer
    group when a network has more than 16 conv/fc layers: consecutive layers summed)."""
    layers = list(dict.fromkeys(curves["layer"]))
    per_panel = -(-len(layers) // MAX_PANELS)
    panels = [layers[i:i + per_panel] for i in range(0, len(layers), per_panel)]
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    schemes = list(dict.fromkeys(curves["scheme"]))
    cmap = plt.get_cmap("tab10")
    for ax, group in zip(axes.flat, panels):
        part = curves[curves["layer"].isin(group)]
        summed = part.groupby(["scheme", "density"], sort=False)["seconds"].sum().reset_index()
        for i, scheme in enumerate(schemes):
            line = summed[summed["scheme"] == scheme].sort_values("density")
            if line.empty:
                continue
            marker = "" if scheme == "dense" else "o" if len(line) == 1 else "."
            ax.plot(line["density"], line["seconds"] * 1e3, label=scheme, color=cmap(i % 10),
                    linestyle="--" if scheme == "dense" else "-", marker=marker)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):     # plain labels: mathtext is off (literal_text)
            axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.invert_xaxis()
        ax.set_title(group[0] if len(group) == 1 else f"{group[0]} .. {group[-1]}", fontsize=9)
        ax.set_xlabel("density (fraction kept)", fontsize=8)
        ax.set_ylabel("latency (ms)", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


@literal_text
def plot_sensitivity(table: pd.DataFrame, title: str, path: str | Path) -> None:
    """Test accuracy against density, one line per layer (a sensitivity table); the rows
    of the schemes measured beside the first (N:M patterns, one point per layer) are
    drawn as markers in their layer's colour, one marker shape per scheme."""
    fig, ax = plt.subplots(figsize=(6, 4))
    cmap = plt.get_cmap("tab10")
    schemes = list(dict.fromkeys(table["scheme"])) if "scheme" in table else [None]
    shapes = dict(zip(schemes[1:], "s^Dv*P"))
    for i, (layer, part) in enumerate(table.groupby("layer", sort=False)):
        main = part if schemes[0] is None else part[part["scheme"] == schemes[0]]
        main = main.sort_values("density")
        ax.plot(main["density"], main["accuracy"] * 100, marker="o", label=layer, color=cmap(i % 10))
        for scheme, shape in shapes.items():
            point = part[part["scheme"] == scheme]
            ax.plot(point["density"], point["accuracy"] * 100, linestyle="", marker=shape,
                    markersize=9, color=cmap(i % 10),
                    label=f"{layer} {scheme}")
    ax.invert_xaxis()
    ax.set_xlabel("density of the pruned layer (fraction kept)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


@literal_text
def plot_tradeoff(points: pd.DataFrame, front_energy: pd.Series, front_latency: pd.Series,
                  title: str, path: str | Path) -> None:
    """Accuracy against simulated energy and against latency, one point per policy
    setting, the Pareto front of each panel drawn as a line (``points`` of one device;
    one row of panels per model)."""
    model_names = list(dict.fromkeys(points["model"]))
    fig, axes = plt.subplots(len(model_names), 2, figsize=(11, 4 * len(model_names)), squeeze=False)
    policies = list(dict.fromkeys(points["policy"]))
    cmap = plt.get_cmap("tab10")
    markers = "o^sDvP*Xh<>"
    energy_unit = points["energy_unit"].iloc[0] if len(points) else "pJ"
    energy_label = ("energy (µJ)" if energy_unit == "pJ"
                    else f"energy (millions of {energy_unit}, normalized)")
    for r, model in enumerate(model_names):
        part = points[points["model"] == model]
        for c, (cost, scale, unit, front) in enumerate([("energy", 1e-6, energy_label, front_energy),
                                                        ("latency_s", 1e3, "latency (ms)", front_latency)]):
            ax = axes[r][c]
            for i, policy in enumerate(policies):
                sel = part[part["policy"] == policy]
                if sel.empty:
                    continue
                ax.scatter(sel[cost] * scale, sel["accuracy"] * 100, label=policy, color=cmap(i % 10),
                           marker=markers[i % len(markers)], s=36, alpha=0.85)
            on = part[front.loc[part.index]].sort_values(cost)
            ax.step(on[cost] * scale, on["accuracy"] * 100, where="post", color="black", lw=1,
                    alpha=0.7, label="Pareto front")
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel(f"simulated {unit}, batch 1")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{model}: accuracy against {unit.split(' ')[0]}", fontsize=10)
            ax.grid(alpha=0.3, which="both")
        axes[r][0].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
