from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from scripts.make_sample_dataset import SampleDataset, build_sample_dataset


@pytest.fixture(scope="session")
def pipeline(stack_settings: Settings) -> Iterator[Settings]:
    """The worker and both sinks running as real processes against the session's namespace."""
    from infra.pipeline import pipeline_down, pipeline_up

    pipeline_up(stack_settings)
    yield stack_settings
    pipeline_down(stack_settings)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> SampleDataset:
    return build_sample_dataset(Path(tmp_path_factory.mktemp("sample")))
