"""Fixtures of the corpus tests: a real MediaWiki serving the demo wiki, once per session."""

from __future__ import annotations

import re
from pathlib import Path

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


def scaled_demo_dump(path: Path, copies: int) -> Path:
    """The demo wiki's pages `copies` times over (new page ids, titles suffixed): a dump big
    enough for a real `extract` to still be running when a test signals or races it."""
    text = demo_dump_path().read_text(encoding="utf-8")
    head, rest = text.split("<page>", 1)
    body, tail = ("<page>" + rest).rsplit("</page>", 1)
    pages = re.findall(r"<page>.*?</page>", body + "</page>", flags=re.S)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head)
        for k in range(copies):
            for page in pages:
                page = re.sub(r"<title>(.*?)</title>", lambda m: f"<title>{m.group(1)} {k}</title>", page, count=1)
                page = re.sub(r"<id>(\d+)</id>", lambda m: f"<id>{int(m.group(1)) + 1_000_000 * (k + 1)}</id>", page, count=1)
                f.write(page + "\n")
        f.write(tail)
    return path
