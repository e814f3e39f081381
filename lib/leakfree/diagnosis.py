"""Why a leak group is as large as it is: which relations built it, how large its largest
part would be without each of them, and its bridges (the links whose removal splits it),
so a person can see which key or which edge to question when a split cannot meet its target.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from leakfree.components import labels_of


@dataclass(frozen=True)
class Bridge:
    file_a: int
    file_b: int
    relation: str
    split_off: int  # files on the smaller side once the link is gone


@dataclass(frozen=True)
class GroupDiagnosis:
    files: int
    links: dict[str, int]  # relation -> links inside the group
    largest_without: dict[str, int]  # relation -> files of the largest part left without its links
    bridges: list[Bridge]  # the bridges that split off the most, largest first

    def describe(self, names: dict[int, str] | None = None) -> str:
        names = names or {}
        built = ", ".join(f"{r} ({n} links)" for r, n in sorted(self.links.items(), key=lambda kv: -kv[1]))
        parts = [f"joined by {built}"]
        parts += [
            f"without {r} its largest part holds {n} files"
            for r, n in sorted(self.largest_without.items(), key=lambda kv: kv[1])
            if n < self.files
        ]
        if self.bridges:
            shown = "; ".join(
                f"{b.relation} {names.get(b.file_a, b.file_a)} - {names.get(b.file_b, b.file_b)} "
                f"splits off {b.split_off}"
                for b in self.bridges
            )
            parts.append(f"bridges: {shown}")
        else:
            parts.append("no single link splits it")
        return "; ".join(parts)


def diagnose(files: int, links: list[tuple[int, int, str]], top: int = 3) -> GroupDiagnosis:
    """`links` are the group's joining links (file_a, file_b, relation); `files` its size."""
    by_relation = Counter(r for _, _, r in links)
    without = {r: _largest_part([(a, b) for a, b, rel in links if rel != r], files) for r in by_relation}
    bridges = sorted(_bridges(links), key=lambda b: (-b.split_off, b.relation, b.file_a, b.file_b))
    return GroupDiagnosis(files, dict(by_relation), without, bridges[:top])


def _largest_part(edges: list[tuple[int, int]], files: int) -> int:
    """Largest connected part among the group's files (files left without edges count 1)."""
    return max(_component_sizes(edges).values(), default=1) if files else 0


def _component_sizes(edges: list[tuple[int, int]]) -> dict[int, int]:
    """Every file that has an edge -> the size of its connected part."""
    if not edges:
        return {}
    nodes, labels = labels_of(np.array([a for a, _ in edges]), np.array([b for _, b in edges]))
    sizes = Counter(labels.tolist())
    return {int(n): sizes[int(label)] for n, label in zip(nodes, labels, strict=True)}


def _bridges(links: list[tuple[int, int, str]]) -> list[Bridge]:
    """Bridges of the multigraph (a link repeated between the same two files is no bridge),
    with the size of the part each one cuts off; iterative, so deep groups do not recurse."""
    adjacency: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for i, (a, b, _) in enumerate(links):
        if a != b:
            adjacency[a].append((b, i))
            adjacency[b].append((a, i))
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    below: dict[int, int] = {}  # files in a node's DFS subtree
    found: list[tuple[int, int]] = []  # (link index, the node on the cut-off side)
    for root in adjacency:
        if root in order:
            continue
        order[root] = low[root] = len(order)
        below[root] = 1
        stack = [(root, -1, iter(adjacency[root]))]
        while stack:
            node, via, neighbours = stack[-1]
            step = next(neighbours, None)
            if step is None:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    below[parent] += below[node]
                    if low[node] > order[parent]:
                        found.append((via, node))
                continue
            other, link = step
            if link == via:
                continue
            if other in order:
                low[node] = min(low[node], order[other])
            else:
                order[other] = low[other] = len(order)
                below[other] = 1
                stack.append((other, link, iter(adjacency[other])))
    whole = _component_sizes([(a, b) for a, b, _ in links])
    return [
        Bridge(links[link][0], links[link][1], links[link][2], min(below[node], whole[node] - below[node]))
        for link, node in found
    ]
