"""Training curves: loss and memory-probe ratios against steps, for one or more runs (from metrics.jsonl)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from moc import atomic


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics (is {run_dir} a training run folder?)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_curves(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """A PNG with the training loss and the probe ratios (all pixels, character pixels, binding) per run.

    The probe panels are drawn only when a run logged them: runs from before the binding probe have no
    binding ratio, and a cleaner stage (``train.trainable = "cleaner"``) runs no probe. The loss is each run's
    own objective (the x0 loss; a cleaner stage's L1 error).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(Path(run).name, read_metrics(run)) for run in run_dirs]
    panels = [("loss", "training loss (the run's objective)")]
    if any("probe_ratio" in r for _, rows in runs for r in rows):
        panels += [
            ("probe_ratio", "memory probe: loss(noisy history) / loss(clean history)"),
            ("probe_character_ratio", "memory probe on character pixels"),
        ]
    if any("probe_binding_ratio" in r for _, rows in runs for r in rows):
        panels.append(("probe_binding_ratio", "binding probe: loss(renamed history) / loss(true)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for label, rows in runs:
            points = [(r["step"], r[key]) for r in rows if key in r]
            if points:
                ax.plot(*zip(*points), label=label, **({"lw": 1} if key == "loss" else {"marker": "."}))
        ax.set(title=title, xlabel="step", yscale="log" if key == "loss" else "linear")
        if key != "loss":
            ax.axhline(1.0, color="grey", ls="--", lw=0.8)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic.save_figure(fig, out)
