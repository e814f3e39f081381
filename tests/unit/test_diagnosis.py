"""Why a group is large: bridges and parts without a relation, against a brute-force reference."""

from __future__ import annotations

import random

import pytest

from leakfree.diagnosis import diagnose


def parts(files: set[int], edges: list[tuple[int, int]]) -> list[int]:
    """Sizes of the connected parts, by repeated search (the slow, obvious way)."""
    seen, sizes = set(), []
    for start in files:
        if start in seen:
            continue
        todo, size = [start], 0
        seen.add(start)
        while todo:
            node = todo.pop()
            size += 1
            for a, b in edges:
                for x, y in ((a, b), (b, a)):
                    if x == node and y not in seen:
                        seen.add(y)
                        todo.append(y)
        sizes.append(size)
    return sorted(sizes)


@pytest.mark.parametrize("seed", range(6))
def test_bridges_and_parts_match_removing_each_link_by_hand(seed):
    rng = random.Random(seed)
    n = rng.randint(5, 30)
    files = set(range(n))
    relations = ["audio", "caption", "setup:cd"]
    # A random tree (all bridges) plus a few extra links that close cycles, some repeated.
    links = [(i, rng.randrange(i), rng.choice(relations)) for i in range(1, n)]
    for _ in range(rng.randint(0, n // 2)):
        a, b = sorted(rng.sample(range(n), 2))
        links.append((a, b, rng.choice(relations)))
    found = diagnose(n, links, top=n)
    expected = []
    for i, (a, b, relation) in enumerate(links):
        rest = [(x, y) for j, (x, y, _) in enumerate(links) if j != i]
        sizes = parts(files, rest)
        if len(sizes) > 1:
            expected.append((a, b, relation, sizes[0]))
    assert sorted((b.file_a, b.file_b, b.relation, b.split_off) for b in found.bridges) == sorted(expected)
    for relation in relations:
        if relation in found.links:
            kept = [(a, b) for a, b, r in links if r != relation]
            assert found.largest_without[relation] == parts(files, kept)[-1]


def test_the_description_names_the_relation_that_holds_the_group_together():
    # Two duplicate clusters of 4 held together by one shared setup value.
    links = [(i, i + 1, "audio") for i in (0, 1, 2)] + [(i, i + 1, "audio") for i in (4, 5, 6)] + [(3, 4, "setup:cd")]
    found = diagnose(8, links)
    assert found.largest_without == {"audio": 2, "setup:cd": 4}
    assert found.bridges[0].relation == "setup:cd" and found.bridges[0].split_off == 4
    text = found.describe({3: "x.wav", 4: "y.wav"})
    assert "without setup:cd its largest part holds 4 files" in text and "x.wav - y.wav splits off 4" in text
