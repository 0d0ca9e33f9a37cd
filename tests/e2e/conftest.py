from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from scripts.make_sample_dataset import SampleDataset, build_sample_dataset
from tests.conftest import fresh_namespace


@pytest.fixture(scope="module")
def pipeline(stack_settings: Settings) -> Iterator[Settings]:
    """The worker and both sinks as real processes, on a namespace of the module's own."""
    from infra.pipeline import pipeline_down, pipeline_up

    with fresh_namespace(stack_settings) as settings:
        pipeline_up(settings)
        try:
            yield settings
        finally:
            pipeline_down(settings)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> SampleDataset:
    return build_sample_dataset(Path(tmp_path_factory.mktemp("sample")))
