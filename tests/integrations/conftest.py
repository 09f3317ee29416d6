"""Offline setup of the diffusers integration tests (diffusers comes with the `test` extra)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def tiny_wan_pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny WanPipeline saved with ``save_pretrained`` to a temporary folder."""
    from tests.integrations.tiny_diffusers import build_tiny_wan_pipeline

    path = tmp_path_factory.mktemp("tiny-wan-pipeline")
    build_tiny_wan_pipeline().save_pretrained(path)
    return path
