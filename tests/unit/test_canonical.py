from __future__ import annotations

import dataclasses

from leakfree.canonical import CRITERIA, Member, choose
from leakfree.config import CANONICAL_CRITERIA, Config

ORDER = Config.from_toml().groups.canonical_order


def member(file_id: int, **facts) -> Member:
    base = {"path": f"/lib/{file_id}.wav", "lossless": True, "sample_rate": 44100, "channels": 1}
    base |= {"active_s": 2.0, "mtime": 100.0, "excerpt": False}
    return Member(file_id, **{**base, **facts})


def test_every_criterion_has_a_rank_and_words():
    assert set(CRITERIA) == set(CANONICAL_CRITERIA)


def test_the_order_decides_and_says_why():
    mp3, wav = member(1, lossless=False, sample_rate=48000), member(2)
    assert choose([mp3, wav], set(), {1, 2}, ORDER)[:2] == (2, "lossless, where the other copies are lossy")
    chosen, why, _ = choose([mp3, wav], set(), {1, 2}, ("sample_rate", "lossless"))
    assert chosen == 1 and "48000" in why
    short, long = member(3, active_s=1.0), member(4, active_s=1.6)
    assert choose([short, long], set(), {3, 4}, ORDER)[0] == 4
    old, young = member(5, mtime=10.0), member(6, mtime=20.0)
    assert choose([young, old], set(), {5, 6}, ORDER)[:2] == (5, "the oldest copy")


def test_an_excerpt_never_wins_over_its_container():
    excerpt = member(1, lossless=True, sample_rate=96000)
    container = member(2, lossless=False, excerpt=False)
    chosen, why, _ = choose([dataclasses.replace(excerpt, excerpt=True), container], set(), {1, 2}, ORDER)
    assert chosen == 2 and "excerpts" in why


def test_a_canonical_copy_stays_until_a_better_one_arrives_or_it_is_gone():
    kept, worse, better = member(1), member(2, lossless=False), member(3, sample_rate=96000)
    assert choose([kept, worse], {1}, {2}, ORDER) == (1, "kept: no better copy arrived", None)
    # An older member that ranks higher does not unseat it: only a new arrival can.
    assert choose([kept, member(4, mtime=1.0)], {1}, set(), ORDER)[0] == 1
    chosen, why, replaced = choose([kept, worse, better], {1}, {3}, ORDER)
    assert (chosen, replaced) == (3, 1) and why.startswith("a better copy arrived: the higher sample rate")
    chosen, why, replaced = choose([worse, member(5, lossless=False, channels=2)], {1}, set(), ORDER)
    assert replaced == 1 and "is gone" in why
