"""wikitune.split: the article split shared by cpt and qa build."""

import pytest

from wikitune.errors import WikituneError
from wikitune.split import heldout_score, is_heldout

PINNED = [2, 16, 20, 24, 58]


def test_split_is_deterministic_and_near_the_fraction():
    ids = range(1, 20001)
    held = [i for i in ids if is_heldout(i)]
    assert held == [i for i in ids if is_heldout(i, 0.1)]
    assert 0.09 < len(held) / 20000 < 0.11
    assert heldout_score(12345) == heldout_score(12345)
    # pinned: changing the hash would silently move articles between CPT and evaluation
    assert [i for i in range(1, 60) if is_heldout(i)] == PINNED


def test_fraction_zero_holds_nothing_out():
    assert not any(is_heldout(i, 0.0) for i in range(1000))


def test_bad_fraction():
    with pytest.raises(WikituneError):
        is_heldout(1, 1.0)
