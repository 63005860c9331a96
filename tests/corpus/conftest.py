"""Fixtures of the corpus tests: a real MediaWiki serving the demo wiki, once per session."""

from __future__ import annotations

import pytest

from tests.mediawiki_server import LocalWiki, unavailable
from wikitune.corpus.extract import demo_dump_path


@pytest.fixture(scope="session")
def local_wiki(tmp_path_factory):
    """The demo wiki imported into a real MediaWiki on 127.0.0.1 (skips where php/MediaWiki are missing)."""
    reason = unavailable()
    if reason:
        pytest.skip(f"no local MediaWiki: {reason}; .ci/run installs it")
    wiki = LocalWiki.start(tmp_path_factory.mktemp("mediawiki"), demo_dump_path())
    yield wiki
    wiki.stop()
