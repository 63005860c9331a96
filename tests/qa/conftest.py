from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    from wikitune.corpus.extract import ExtractConfig, run_extract

    out = tmp_path_factory.mktemp("qa-corpus") / "demo"
    run_extract(ExtractConfig(dump="demo", out=out))
    return out


@pytest.fixture(scope="session")
def demo_qa(demo_corpus, tmp_path_factory) -> Path:
    from wikitune.qa.build import QABuildConfig, run_qa_build

    out = tmp_path_factory.mktemp("qa") / "demo"
    run_qa_build(QABuildConfig(corpus=demo_corpus, out=out))
    return out
