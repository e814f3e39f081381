"""Why a file is where it is: its group and split, every link that touches it in words, and
for two files the shortest chain of joining links between them (or that there is none)."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import asdict, dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import storage, tables
from leakfree.edges import AUDIO, CAPTION, EXACT_BYTES, EXACT_PCM
from leakfree.errors import LeakfreeError

# Links listed for one file; a file with a common setup value has as many as the value has files.
LINKS_SHOWN = 50
_PAIR_DETAILS = (
    "offset_s",
    "correlation",
    "aligned_hashes",
    "containment",
    "time_scale",
    "freq_scale",
    "aligned_peaks",
    "peak_significance",
    "rival_significance",
    "echo_s",
    "via_path",
)


@dataclass(frozen=True)
class Link:
    file_a: int
    file_b: int
    path_a: str
    path_b: str
    relation: str
    joins: bool
    evidence: str | None
    details: dict  # the pair's measures, for audio links

    def describe(self, subject: int) -> str:
        """The link in a sentence, seen from `subject` (one of its ends)."""
        other = self.path_b if subject == self.file_a else self.path_a
        return in_words(self.relation, self.details, self.evidence, other) + ("" if self.joins else " (does not join)")


@dataclass(frozen=True)
class Explanation:
    file_id: int
    path: str
    split: str | None
    group_id: int | None
    group_size: int | None
    cluster_id: int | None
    canonical_path: str | None  # the copy of its cluster that is kept
    canonical_reason: str | None
    links: list[Link]
    more_links: int  # beyond LINKS_SHOWN
    other_id: int | None = None
    other_path: str | None = None
    chain: list[Link] | None = None  # joining links from the file to the other; None when not joined

    def to_dict(self) -> dict:
        out = asdict(self)
        out["links"] = [{**asdict(link), "words": link.describe(self.file_id)} for link in self.links]
        return out

    def text(self) -> str:
        lines = [
            f"{self.path} (file_id {self.file_id})",
            f"  split: {self.split or 'none yet'}; group {self.group_id} of {self.group_size} file(s)",
        ]
        if self.canonical_path is not None:
            lines.append(f"  kept copy of its duplicates: {self.canonical_path} ({self.canonical_reason})")
        if not self.links:
            lines.append("  no link to any other file")
        lines += [f"  - {link.describe(self.file_id)}" for link in self.links]
        if self.more_links:
            lines.append(f"  ... and {self.more_links} more links (leakfree sql on the links table lists them)")
        if self.other_id is not None:
            lines.append(f"{self.other_path} (file_id {self.other_id}):")
            if self.chain is None:
                lines.append("  not joined: no chain of joining links leads from one file to the other")
            else:
                node = self.file_id
                for link in self.chain:
                    lines.append(f"  {'' if node == self.file_id else '  then '}{link.describe(node)}")
                    node = link.file_b if node == link.file_a else link.file_a
        return "\n".join(lines)


def in_words(relation: str, details: dict, evidence: str | None, other: str) -> str:
    """One link as a person reads it."""
    if relation == EXACT_BYTES:
        return f"the same bytes as {other}"
    if relation == EXACT_PCM:
        return f"the same decoded audio as {other}"
    if relation == AUDIO:
        parts = [f"matches {other} at {details.get('offset_s') or 0.0:+.2f} s"]
        parts.append(f"correlation {details.get('correlation') or 0.0:.2f}")
        if details.get("aligned_hashes"):
            parts.append(f"{details['aligned_hashes']} aligned landmarks")
        if details.get("aligned_peaks"):
            parts.append(
                f"{details['aligned_peaks']} aligned peaks, {details['peak_significance']:.1f} deviations above chance"
            )
        if details.get("rival_significance"):
            rival = details["rival_significance"]
            parts.append(f"peaks nearly as strong at another reading ({rival:.1f} deviations): they only point here")
        if details.get("echo_s"):
            parts.append(f"after an echo or reverb tail centred {details['echo_s']:.2f} s late")
        if (details.get("containment") or 1.0) < 0.95:
            parts.append(f"{details['containment']:.0%} of the shorter one inside the other")
        for key, what in (("time_scale", "speed"), ("freq_scale", "pitch")):
            if details.get(key) and abs(details[key] - 1) > 1e-3:
                parts.append(f"{what} {details[key]:.3f}x")
        if details.get("via_path"):
            parts.append(f"tried because both are copies of {details['via_path']}")
        return ", ".join(parts)
    if relation == CAPTION:
        return f"a caption like that of {other}: {evidence}"
    if relation.startswith("setup:"):
        return f"the same setup key as {other}: {evidence}"
    return f"{relation} with {other}: {evidence}"


def shortest_chain(links: list[Link], start: int, goal: int) -> list[Link] | None:
    """The fewest joining links from start to goal (breadth first), or None."""
    neighbours: dict[int, list[tuple[int, Link]]] = {}
    for link in links:
        if link.joins:
            neighbours.setdefault(link.file_a, []).append((link.file_b, link))
            neighbours.setdefault(link.file_b, []).append((link.file_a, link))
    came: dict[int, tuple[int, Link] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            chain = []
            while (step := came[node]) is not None:
                node, link = step
                chain.append(link)
            return chain[::-1]
        for nxt, link in neighbours.get(node, []):
            if nxt not in came:
                came[nxt] = (node, link)
                queue.append(nxt)
    return None


def explain(spark: SparkSession, warehouse: str, given: str, other: str | None = None) -> Explanation:
    """The file's explanation, and the chain to `other` when given."""
    catalog = tables.read(spark, warehouse, "catalog").where("NOT retired")
    file_id, path = find_file(catalog, given)
    groups = tables.read(spark, warehouse, "groups")
    group = groups.where(F.col("file_id") == file_id).first()
    split = None
    if tables.exists(spark, warehouse, "splits"):
        row = tables.read(spark, warehouse, "splits").where(f"file_id = {file_id} AND NOT retired").first()
        split = row.split if row else None
    touches = (F.col("file_a") == file_id) | (F.col("file_b") == file_id)
    shown = read_links(spark, warehouse, touches, limit=LINKS_SHOWN)
    more = (
        tables.read(spark, warehouse, "links").where(touches).count() - len(shown) if len(shown) == LINKS_SHOWN else 0
    )
    cluster_id, canonical_path, canonical_reason = _cluster(spark, warehouse, file_id)
    result = Explanation(
        file_id,
        path,
        split,
        group.group_id if group else None,
        group.group_size if group else None,
        cluster_id,
        canonical_path,
        canonical_reason,
        shown,
        more,
    )
    if other is None:
        return result
    other_id, other_path = find_file(catalog, other)
    other_group = groups.where(F.col("file_id") == other_id).first()
    chain = None
    if group and other_group and group.group_id == other_group.group_id:
        members = groups.where(F.col("group_id") == group.group_id).select("file_id")
        chain = shortest_chain(read_links(spark, warehouse, F.col("joins"), members), file_id, other_id)
    return Explanation(**{**result.__dict__, "other_id": other_id, "other_path": other_path, "chain": chain})


def _cluster(spark: SparkSession, warehouse: str, file_id: int) -> tuple[int | None, str | None, str | None]:
    """(cluster_id, the kept copy's relative path, why it is kept) of a file's cluster."""
    if not tables.exists(spark, warehouse, "clusters"):
        return None, None, None
    clusters = tables.read(spark, warehouse, "clusters")
    mine = clusters.where(F.col("file_id") == file_id).first()
    if mine is None:
        return None, None, None
    kept = (
        clusters.where((F.col("cluster_id") == mine.cluster_id) & F.col("canonical"))
        .join(tables.read(spark, warehouse, "catalog").select("file_id", "rel_path"), "file_id")
        .first()
    )
    return mine.cluster_id, kept.rel_path if kept else None, kept.reason if kept else None


def find_file(catalog: DataFrame, given: str) -> tuple[int, str]:
    """A catalogued file by file_id, path, path relative to its root, or unique file name."""
    rows = catalog.select("file_id", "path", "rel_path")
    conditions = [
        F.col("path") == storage.canonical(given),
        F.col("rel_path") == given.lstrip("./"),
        F.element_at(F.split("path", "/"), -1) == os.path.basename(given),
    ]
    if given.isdigit():
        conditions.insert(0, F.col("file_id") == int(given))
    for condition in conditions:
        found = rows.where(condition).limit(2).collect()
        if len(found) > 1:
            raise LeakfreeError(f"{given!r} names several catalogued files; give its full path or file_id")
        if found:
            return found[0].file_id, found[0].path
    raise LeakfreeError(f"{given!r} is not a catalogued file (by file_id, path, relative path or file name)")


def read_links(
    spark: SparkSession,
    warehouse: str,
    condition: Column,
    members: DataFrame | None = None,
    limit: int | None = None,
) -> list[Link]:
    """The links matching `condition` (both ends among `members` when given), with the
    pair's measures and both ends' relative paths, joining links first, at most `limit`."""
    links = tables.read(spark, warehouse, "links").where(condition)
    if members is not None:
        links = links.join(members.withColumnRenamed("file_id", "file_a"), "file_a").join(
            members.withColumnRenamed("file_id", "file_b"), "file_b"
        )
    paths = tables.read(spark, warehouse, "catalog").select("file_id", "rel_path")
    pairs = (
        tables.read(spark, warehouse, "pairs")
        .join(paths.toDF("via_file", "via_path"), "via_file", "left")
        .select("file_a", "file_b", F.col("method").alias("relation"), *_PAIR_DETAILS)
    )
    ordered = (
        links.join(pairs, ["file_a", "file_b", "relation"], "left")
        .join(paths.toDF("file_a", "path_a"), "file_a")
        .join(paths.toDF("file_b", "path_b"), "file_b")
        .orderBy(F.col("joins").desc(), "relation", "file_a", "file_b")
    )
    rows = (ordered.limit(limit) if limit else ordered).collect()
    return [
        Link(
            r.file_a,
            r.file_b,
            r.path_a,
            r.path_b,
            r.relation,
            bool(r.joins),
            r.evidence,
            {k: r[k] for k in _PAIR_DETAILS if r[k] is not None},
        )
        for r in rows
    ]
