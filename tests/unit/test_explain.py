from __future__ import annotations

from leakfree.explain import Link, in_words, shortest_chain


def link(a: int, b: int, joins: bool = True, relation: str = "audio") -> Link:
    return Link(a, b, f"f{a}.wav", f"f{b}.wav", relation, joins, None, {"correlation": 0.9, "offset_s": 1.25})


def test_the_shortest_chain_uses_joining_links_only():
    links = [link(1, 2), link(2, 3), link(3, 4), link(1, 4, joins=False), link(4, 5)]
    assert [(x.file_a, x.file_b) for x in shortest_chain(links, 1, 5)] == [(1, 2), (2, 3), (3, 4), (4, 5)]
    assert shortest_chain(links, 5, 1)[0].file_b == 5  # walked backwards all the same
    assert shortest_chain(links, 1, 6) is None
    assert shortest_chain(links, 3, 3) == []


def test_links_read_as_sentences_from_either_end():
    audio = link(1, 2)
    assert audio.describe(1).startswith("matches f2.wav at +1.25 s, correlation 0.90")
    assert audio.describe(2).startswith("matches f1.wav")
    assert in_words("exact_pcm", {}, None, "x.flac") == "the same decoded audio as x.flac"
    assert "speed 1.030x" in in_words("audio", {"time_scale": 1.03, "correlation": 0.8}, None, "y")
    peaks = {"correlation": 0.6, "aligned_peaks": 40, "peak_significance": 14.2}
    assert "40 aligned peaks, 14.2 deviations above chance" in in_words("audio", peaks, None, "y")
    assert "echo" not in in_words("audio", peaks | {"echo_s": 0.0}, None, "y")
    assert "after an echo or reverb tail centred 0.21 s late" in in_words("audio", peaks | {"echo_s": 0.21}, None, "y")
    assert "another reading" not in in_words("audio", peaks | {"rival_significance": 0.0}, None, "y")
    rivaled = in_words("audio", peaks | {"rival_significance": 13.1}, None, "y")
    assert "peaks nearly as strong at another reading (13.1 deviations): they only point here" in rivaled
    assert in_words("setup:cd", {}, "same cd: CD 14", "z") == "the same setup key as z: same cd: CD 14"
