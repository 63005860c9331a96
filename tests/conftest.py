"""Shared fixtures: paths to the project's own test data and to the real data in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason (a user's clone has no ../shared)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared/data beside the repository)")
    return path


@pytest.fixture
def jawiki_dump_dir() -> Path:
    return shared_file("jawiki-dump")


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The demo wiki extracted without roots (every article), once per test session."""
    from wikitune.corpus.extract import ExtractConfig, run_extract

    out = tmp_path_factory.mktemp("qa-corpus") / "demo"
    run_extract(ExtractConfig(dump="demo", out=out))
    return out


@pytest.fixture(scope="session")
def demo_qa(demo_corpus, tmp_path_factory) -> Path:
    """`qa build` of `demo_corpus`, once per test session."""
    from wikitune.qa.build import QABuildConfig, run_qa_build

    out = tmp_path_factory.mktemp("qa") / "demo"
    run_qa_build(QABuildConfig(corpus=demo_corpus, out=out))
    return out
