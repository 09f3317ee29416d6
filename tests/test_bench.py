"""The attention benchmark's bookkeeping, and one tiny end-to-end run of `moc bench attention`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from moc.bench.attention import BenchSpec, fit_slope, markdown_table, slopes, summarise
from moc.cli import build_app


def test_fit_slope_recovers_power_laws():
    lengths = [1000, 2000, 4000, 8000]
    assert fit_slope(lengths, [3e-9 * n**2 for n in lengths]) == pytest.approx(2.0)
    assert fit_slope(lengths, [5e-6 * n for n in lengths]) == pytest.approx(1.0)


def test_bench_layouts_are_paper_like():
    spec = BenchSpec(length=32768)
    layout = spec.layout()
    assert len(layout.shots) == 8 and abs(len(layout) - 32768) < 300
    fixed = BenchSpec(length=32768, shot_tokens=4096).layout()
    assert len(fixed.shots) == 8 and len(BenchSpec(length=65536, shot_tokens=4096).layout().shots) == 16


def test_summary_rows_compute_speedups_and_ratios():
    records = [
        {"backend": "dense", "backward": False, "length": 100, "seconds": 4.0, "peak_bytes": 100},
        {"backend": "dense", "backward": True, "length": 100, "seconds": 12.0, "peak_bytes": 200},
        {
            "backend": "varlen",
            "backward": False,
            "length": 100,
            "seconds": 1.0,
            "peak_bytes": 150,
            "route_seconds": 0.1,
            "density": 0.2,
            "flops_ratio": 0.21,
        },
        {
            "backend": "varlen",
            "backward": True,
            "length": 100,
            "seconds": 4.0,
            "peak_bytes": 250,
            "route_seconds": 0.1,
            "density": 0.2,
            "flops_ratio": 0.21,
        },
    ]
    (row,) = summarise(records, ("varlen",))
    assert row["varlen_fwd_speedup"] == 4.0 and row["varlen_fwdbwd_speedup"] == 3.0
    assert row["ideal_speedup"] == pytest.approx(5.0)
    assert row["varlen_fwdbwd_mem_ratio"] == pytest.approx(1.25)
    assert row["varlen_fwd_route_share"] == pytest.approx(0.1)
    assert "| 100 | 0.200 | 5.0 |" in markdown_table([row], ("varlen",))
    assert slopes([row]) == {}


def test_bench_cli_end_to_end(tmp_path):
    result = CliRunner().invoke(
        build_app(),
        [
            "bench",
            "attention",
            "--lengths",
            "2k,4k",
            "--backends",
            "varlen",
            "--repeats",
            "1",
            "--heads",
            "2",
            "--dim",
            "16",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert {(r["backend"], r["backward"]) for r in data["records"]} == {
        ("dense", False),
        ("dense", True),
        ("varlen", False),
        ("varlen", True),
    }
    assert all(r["seconds"] > 0 for r in data["records"])
    assert 0 < data["rows"][0]["density"] < 1
    assert (tmp_path / "timings.png").stat().st_size > 1000
    assert "varlen fwd" in (tmp_path / "table.md").read_text()


def test_bench_cli_rejects_bad_lengths(tmp_path):
    result = CliRunner().invoke(
        build_app(), ["bench", "attention", "--lengths", "4k,abc", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "abc" in result.output
