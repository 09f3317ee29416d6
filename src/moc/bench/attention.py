"""Attention benchmark: dense SDPA against the MoC backends on a paper-like multi-shot layout.

Each (backend, length, pass) case runs in two fresh subprocesses, one for time and one for memory. Both
first warm up (a small call that loads kernels and thread pools; for ``flex`` a full-size call, because its
first call compiles). The time child reports the median of ``repeats`` runs. The memory child resets the
kernel's peak-RSS mark (``/proc/self/clear_refs``) after the warm-up, with the inputs allocated, runs one
step, and reports the high-water mark (``VmHWM``) above the RSS before it. It runs with
``MALLOC_MMAP_THRESHOLD_=131072`` so freed buffers go back to the OS and RSS tracks live memory rather than
glibc's retained heap (for dense and MoC alike); that setting slows allocation, hence the separate child.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from moc.config import MoCConfig
from moc.layout import Layout

TOKENS_PER_FRAME = 256
CAPTION_TOKENS = 8
GLOBAL_CAPTION_TOKENS = 16
MOC_BACKENDS = ("varlen", "flex")
WARMUP_TOKENS = 1024
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


@dataclass(frozen=True)
class BenchSpec:
    """One benchmark setting. ``shot_tokens=None`` keeps ``shots`` fixed (shots grow with L); otherwise the
    shot length is fixed and the number of shots grows with L (the paper's Fig. 5 scaling)."""

    length: int
    heads: int = 4
    dim: int = 64
    top_k: int = 4
    shots: int = 8
    shot_tokens: int | None = None
    repeats: int = 3
    seed: int = 0

    def layout(self) -> Layout:
        if self.shot_tokens is None:
            shots = self.shots
            frames = max(1, round(self.length / (shots * TOKENS_PER_FRAME)))
        else:
            frames = max(1, self.shot_tokens // TOKENS_PER_FRAME)
            shots = max(1, round(self.length / (frames * TOKENS_PER_FRAME)))
        return Layout.interleaved([frames] * shots, TOKENS_PER_FRAME, CAPTION_TOKENS, GLOBAL_CAPTION_TOKENS)

    def config(self) -> MoCConfig:
        return MoCConfig(chunk_size=None, top_k=self.top_k, causal=True)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_case(spec: BenchSpec, backend: str, backward: bool, measure_memory: bool = False) -> dict:
    """Run one case in this process: its median seconds and routing seconds, or (``measure_memory``) its
    peak memory above the inputs."""
    import torch.nn.functional as F

    from moc.attention import moc_attention
    from moc.routing import route

    def make_step(layout: Layout, config: MoCConfig):
        torch.manual_seed(spec.seed)
        q, k, v = (torch.randn(1, spec.heads, len(layout), spec.dim) for _ in range(3))
        if backward:
            q, k, v = (t.requires_grad_() for t in (q, k, v))

        def call():
            if backend == "dense":
                return F.scaled_dot_product_attention(q, k, v)
            return moc_attention(q, k, v, layout, config, backend=backend)

        def step():
            if backward:
                call().sum().backward()
                for t in (q, k, v):
                    t.grad = None
            else:
                with torch.no_grad():
                    call()

        return step, (q, k)

    config = spec.config()
    if backend != "flex":
        make_step(BenchSpec(WARMUP_TOKENS, spec.heads, spec.dim, spec.top_k).layout(), config)[0]()
    layout = spec.layout()
    step, (q, k) = make_step(layout, config)
    if backend == "flex":
        step()  # compiles for this shape
    result = {"backend": backend, "backward": backward, "length": len(layout)}
    if measure_memory:
        base_rss = _rss_bytes()
        _reset_peak_rss()
        step()
        result["peak_bytes"] = max(0, _peak_rss_bytes() - base_rss)
        return result
    result["seconds"] = _median_time(step, spec.repeats)
    if backend != "dense":
        with torch.no_grad():
            result["route_seconds"] = _median_time(lambda: route(q, k, layout, config), spec.repeats)
            stats = route(q, k, layout, config).stats()
        result.update(density=stats.density, flops_ratio=stats.flops_ratio)
    return result


def _run_child(spec: BenchSpec, backend: str, backward: bool, measure_memory: bool) -> dict:
    payload = json.dumps(
        {"spec": asdict(spec), "backend": backend, "backward": backward, "measure_memory": measure_memory}
    )
    env = {**os.environ, **CHILD_ENV} if measure_memory else dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "moc.bench.attention", payload],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmark case {backend} L={spec.length} backward={backward} failed:\n{proc.stderr}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_case_subprocess(spec: BenchSpec, backend: str, backward: bool) -> dict:
    """Time one case in a fresh interpreter, and measure its peak memory in another."""
    result = _run_child(spec, backend, backward, measure_memory=False)
    result["peak_bytes"] = _run_child(spec, backend, backward, measure_memory=True)["peak_bytes"]
    return result


def fit_slope(lengths: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(L)."""
    xs, ys = [math.log(x) for x in lengths], [math.log(y) for y in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def summarise(records: list[dict], backends: tuple[str, ...]) -> list[dict]:
    """One row per length: density, dense and MoC times, speedups, routing share and peak memory."""
    rows = []
    for length in sorted({r["length"] for r in records}):
        at = {(r["backend"], r["backward"]): r for r in records if r["length"] == length}
        dense_f, dense_b = at.get(("dense", False)), at.get(("dense", True))
        row: dict = {"length": length}
        if dense_f:
            row["dense_fwd_s"] = dense_f["seconds"]
            row["dense_fwd_peak_mb"] = dense_f["peak_bytes"] / 2**20
        if dense_b:
            row["dense_fwdbwd_s"] = dense_b["seconds"]
            row["dense_fwdbwd_peak_mb"] = dense_b["peak_bytes"] / 2**20
        for backend in backends:
            for backward, tag in ((False, "fwd"), (True, "fwdbwd")):
                r = at.get((backend, backward))
                if r is None:
                    continue
                row["density"] = r["density"]
                row["ideal_speedup"] = 1.0 / r["density"]
                row[f"{backend}_{tag}_s"] = r["seconds"]
                row[f"{backend}_{tag}_peak_mb"] = r["peak_bytes"] / 2**20
                row[f"{backend}_{tag}_route_share"] = r["route_seconds"] / r["seconds"]
                dense = dense_b if backward else dense_f
                if dense:
                    row[f"{backend}_{tag}_speedup"] = dense["seconds"] / r["seconds"]
                    row[f"{backend}_{tag}_mem_ratio"] = r["peak_bytes"] / max(1, dense["peak_bytes"])
        rows.append(row)
    return rows


def slopes(rows: list[dict], min_length: int = 16000) -> dict[str, float]:
    """Fitted log-log slopes of every time column over lengths >= ``min_length`` (all lengths if fewer
    than two qualify)."""
    out = {}
    for key in rows[0] if rows else []:
        if not key.endswith("_s"):
            continue
        pts = [(r["length"], r[key]) for r in rows if key in r]
        tail = [p for p in pts if p[0] >= min_length]
        pts = tail if len(tail) >= 2 else pts
        if len(pts) >= 2:
            out[key] = fit_slope([p[0] for p in pts], [p[1] for p in pts])
    return out


def markdown_table(rows: list[dict], backends: tuple[str, ...]) -> str:
    """The benchmark table as Markdown."""
    head = ["L", "density", "ideal", "dense fwd s", "dense f+b s"]
    for b in backends:
        head += [f"{b} fwd s", f"{b} fwd ×", f"{b} f+b s", f"{b} f+b ×", f"{b} route %"]
    head += ["dense peak MB (f+b)"] + [f"{b} peak MB (f+b)" for b in backends]

    def fmt(value, spec):
        return "—" if value is None else format(value, spec)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            str(r["length"]),
            fmt(r.get("density"), ".3f"),
            fmt(r.get("ideal_speedup"), ".1f"),
            fmt(r.get("dense_fwd_s"), ".3f"),
            fmt(r.get("dense_fwdbwd_s"), ".3f"),
        ]
        for b in backends:
            cells += [
                fmt(r.get(f"{b}_fwd_s"), ".3f"),
                fmt(r.get(f"{b}_fwd_speedup"), ".2f"),
                fmt(r.get(f"{b}_fwdbwd_s"), ".3f"),
                fmt(r.get(f"{b}_fwdbwd_speedup"), ".2f"),
                fmt(100 * r[f"{b}_fwd_route_share"] if f"{b}_fwd_route_share" in r else None, ".0f"),
            ]
        cells.append(fmt(r.get("dense_fwdbwd_peak_mb", r.get("dense_fwd_peak_mb")), ".0f"))
        cells += [fmt(r.get(f"{b}_fwdbwd_peak_mb", r.get(f"{b}_fwd_peak_mb")), ".0f") for b in backends]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], fitted: dict[str, float], path: Path) -> None:
    """Log-log time against L, with the fitted slopes in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for key in sorted(fitted):
        pts = [(r["length"], r[key]) for r in rows if key in r]
        label = f"{key.removesuffix('_s').replace('_', ' ')} (slope {fitted[key]:.2f})"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L (tokens)")
    ax.set_ylabel("seconds (median)")
    ax.set_title("MoC attention vs dense SDPA (CPU, float32)")
    ax.grid(True, which="both", alpha=0.3)
    if fitted:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_benchmark(
    lengths: list[int],
    backends: tuple[str, ...],
    out_dir: Path,
    *,
    heads: int = 4,
    dim: int = 64,
    top_k: int = 4,
    shots: int = 8,
    shot_tokens: int | None = None,
    repeats: int = 3,
    backward: bool = True,
    log=print,
) -> dict:
    """Run every case, write ``results.json``, ``table.md`` and ``timings.png`` into ``out_dir``."""
    for b in backends:
        if b not in MOC_BACKENDS:
            raise ValueError(f"unknown benchmark backend {b!r}; choose from {MOC_BACKENDS}")
    minimum = shot_tokens if shot_tokens else shots * TOKENS_PER_FRAME
    for length in lengths:
        if length < minimum:
            raise ValueError(
                f"length {length} is shorter than the smallest benchmark layout ({minimum} tokens: "
                f"{'one shot' if shot_tokens else f'{shots} shots of one {TOKENS_PER_FRAME}-token frame'})"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for length in lengths:
        spec = BenchSpec(length, heads, dim, top_k, shots, shot_tokens, repeats)
        for backend in ("dense", *backends):
            passes = [False] + ([True] if backward and backend != "flex" else [])
            for bwd in passes:
                record = run_case_subprocess(spec, backend, bwd)
                records.append(record)
                log(
                    f"L={record['length']:>6} {backend:>7} {'fwd+bwd' if bwd else 'fwd':>7} "
                    f"{record['seconds']:8.3f} s  peak {record['peak_bytes'] / 2**20:8.0f} MB"
                )
    rows = summarise(records, backends)
    fitted = slopes(rows)
    table = markdown_table(rows, backends)
    meta = {
        "heads": heads,
        "dim": dim,
        "top_k": top_k,
        "shots": shots,
        "shot_tokens": shot_tokens,
        "tokens_per_frame": TOKENS_PER_FRAME,
        "repeats": repeats,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    result = {"meta": meta, "records": records, "rows": rows, "slopes": fitted}
    (out_dir / "results.json").write_text(json.dumps(result, indent=2))
    slope_lines = "\n".join(f"- `{k}`: {v:.2f}" for k, v in sorted(fitted.items()))
    span = "L >= 16k" if sum(r["length"] >= 16000 for r in rows) >= 2 else "all lengths"
    (out_dir / "table.md").write_text(f"{table}\n\nFitted log-log slopes ({span}):\n{slope_lines}\n")
    plot(rows, fitted, out_dir / "timings.png")
    return result


if __name__ == "__main__":  # child process entry used by run_case_subprocess
    args = json.loads(sys.argv[1])
    print(
        json.dumps(
            run_case(BenchSpec(**args["spec"]), args["backend"], args["backward"], args["measure_memory"])
        )
    )
