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

    The binding panel is drawn only when a run logged ``probe_binding_ratio`` (runs from before it existed
    did not).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(Path(run).name, read_metrics(run)) for run in run_dirs]
    binding = any("probe_binding_ratio" in r for _, rows in runs for r in rows)
    fig, axes = plt.subplots(1, 4 if binding else 3, figsize=(18.5 if binding else 14, 3.8))
    for label, rows in runs:
        loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        probe = [
            (r["step"], r["probe_ratio"], r["probe_character_ratio"]) for r in rows if "probe_ratio" in r
        ]
        axes[0].plot(*zip(*loss), label=label, lw=1)
        if probe:
            steps, ratio, character = zip(*probe)
            axes[1].plot(steps, ratio, marker=".", label=label)
            axes[2].plot(steps, character, marker=".", label=label)
        bound = [(r["step"], r["probe_binding_ratio"]) for r in rows if "probe_binding_ratio" in r]
        if bound:
            axes[3].plot(*zip(*bound), marker=".", label=label)
    axes[0].set(title="training loss (character-weighted x0 MSE)", xlabel="step", yscale="log")
    axes[1].set(title="memory probe: loss(noisy history) / loss(clean history)", xlabel="step")
    axes[2].set(title="memory probe on character pixels", xlabel="step")
    if binding:
        axes[3].set(title="binding probe: loss(renamed history) / loss(true)", xlabel="step")
    for ax in axes[1:]:
        ax.axhline(1.0, color="grey", ls="--", lw=0.8)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic.save_figure(fig, out)
