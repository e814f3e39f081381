"""Where leak groups go: the pure placement behind the splits stage, on plain values.

Whole leak groups to train/val/test, balanced by files and by audio duration, optionally per
stratum, deterministic for a seed, and sticky across runs.

The placement is a greedy pass over (group, files, seconds): largest groups first, each into
the split that most lacks files and duration relative to its target. Small groups come last
and even out what the big ones left. Counting files and seconds rather than groups is what
keeps the ratios: placing groups by count drifts as far as the group sizes vary.

Stability: a file keeps its split. A new file joins the split its group already has. A
new group is placed to keep the ratios. When new evidence merges groups that sit in
different splits, the merge policy decides who moves, and every move is a Move with its reason.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from leakfree.config import SplitsConfig

EXCLUDED = "excluded"  # where the frozen policy puts files that would leak into a frozen split


@dataclass(frozen=True)
class PlacedFile:
    """One live file as the placement sees it."""

    file_id: int
    group_id: int
    seconds: float
    stratum: str
    previous: str | None  # its split before this run, None when new
    active_s: float | None = None  # active audio; None without features


@dataclass(frozen=True)
class Move:
    """A file that leaves its split (or never gets one), and why."""

    file_id: int
    group_id: int
    from_split: str | None
    to_split: str
    reason: str


@dataclass(frozen=True)
class Group:
    group_id: int
    files: int
    seconds: float
    stratum: str
    # Its short sounds: they stay out of every split but the short-sound one (splits.short_sound_*).
    short_files: int = 0
    short_seconds: float = 0.0


@dataclass
class Tally:
    """Files and seconds per split, for one stratum (what earlier runs placed)."""

    files: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)

    def add(self, split: str, files: int, seconds: float) -> None:
        self.files[split] += files
        self.seconds[split] += seconds


@dataclass(frozen=True)
class Placement:
    assignments: dict[int, str]  # group_id -> split
    oversized: list[tuple[Group, str, float]]  # group, the split it went to, that split's share after


def order_key(group: Group, seed: int) -> tuple:
    """Largest (in files) first; groups of one size in a seeded pseudo-random order, never
    in input order, so the seed picks one of many equally balanced assignments."""
    digest = hashlib.sha256(f"{seed}:{group.group_id}".encode()).digest()
    return (-group.files, digest)


def place_groups(
    groups: list[Group],
    names: tuple[str, ...],
    ratios: tuple[float, ...],
    *,
    seed: int,
    tolerance: float,
    already: dict[str, Tally] | None = None,
    closed: frozenset[str] = frozenset(),
    short_split: str = "",
) -> Placement:
    """Assign each group to a split; `already` holds what earlier runs placed (per stratum),
    `closed` splits take no new groups (a frozen test split)."""
    target = dict(zip(names, ratios, strict=True))
    open_splits = [n for n in names if n not in closed]
    by_stratum: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        by_stratum[g.stratum].append(g)
    assignments: dict[int, str] = {}
    oversized = []
    for stratum, members in sorted(by_stratum.items()):
        base = (already or {}).get(stratum, Tally())
        balance, placed = _Balance.best(base, members, target, short_split, open_splits, seed, tolerance)
        assignments.update(placed)
        for g in members:
            share = balance.files[placed[g.group_id]] / balance.all_files
            if g.files / balance.all_files > tolerance and share > target[placed[g.group_id]] + tolerance:
                oversized.append((g, placed[g.group_id], share))
    return Placement(assignments, oversized)


class _Balance:
    """Files and seconds per split for one stratum, and how far they are from the targets
    (the sum of squared deviations of both shares)."""

    def __init__(self, base: Tally, groups: list[Group], target: dict[str, float], short_split: str = ""):
        self.target = target
        self.short_split = short_split
        self.files = {s: float(base.files[s]) for s in target}
        self.seconds = {s: float(base.seconds[s]) for s in target}
        # Short sounds stay only where their groups go to the short-sound split: expect that share.
        stay = target.get(short_split, 1.0)
        self.all_files = sum(self.files.values()) + sum(g.files - (1 - stay) * g.short_files for g in groups)
        self.all_seconds = (
            sum(self.seconds.values()) + sum(g.seconds - (1 - stay) * g.short_seconds for g in groups) or 1.0
        )

    def size(self, g: Group, split: str) -> tuple[float, float]:
        """Files and seconds g brings to a split."""
        if not self.short_split or split == self.short_split:
            return g.files, g.seconds
        return g.files - g.short_files, g.seconds - g.short_seconds

    def _term(self, split: str, files: float, seconds: float) -> float:
        r = self.target[split]
        return (files / self.all_files - r) ** 2 + (seconds / self.all_seconds - r) ** 2

    def move_gain(self, g: Group, source: str | None, dest: str) -> float:
        """How much the deviation drops if g moves from source (None: unplaced) to dest."""
        files, seconds = self.size(g, dest)
        before = self._term(dest, self.files[dest], self.seconds[dest])
        after = self._term(dest, self.files[dest] + files, self.seconds[dest] + seconds)
        if source is not None:
            files, seconds = self.size(g, source)
            before += self._term(source, self.files[source], self.seconds[source])
            after += self._term(source, self.files[source] - files, self.seconds[source] - seconds)
        return before - after

    def shift(self, g: Group, source: str | None, dest: str) -> None:
        if source is not None:
            files, seconds = self.size(g, source)
            self.files[source] -= files
            self.seconds[source] -= seconds
        files, seconds = self.size(g, dest)
        self.files[dest] += files
        self.seconds[dest] += seconds

    @classmethod
    def best(
        cls,
        base: Tally,
        groups: list[Group],
        target: dict[str, float],
        short_split: str,
        splits: list[str],
        seed: int,
        tolerance: float,
    ) -> tuple[_Balance, dict[int, str]]:
        """The placement from the largest-first order; when it leaves a split off target (a
        few large groups can be packed in ways the local search does not reach from there),
        again from seeded orders in which sizes are jittered, keeping the closest."""
        tried = []
        for attempt in range(_RESTARTS):
            jitter = random.Random(seed + attempt)
            noise = {g.group_id: jitter.uniform(0.6, 1.4) if attempt else 1.0 for g in groups}
            order = sorted(groups, key=lambda g: (-g.files * noise[g.group_id], order_key(g, seed)[1]))
            balance = cls(base, groups, target, short_split)
            placed = balance.place(order, splits, seed + attempt)
            tried.append((balance.deviation(), attempt, balance, placed))
            if balance.within(tolerance):
                break
        _, _, balance, placed = min(tried, key=lambda t: t[:2])
        return balance, placed

    def deviation(self) -> float:
        return sum(self._term(s, self.files[s], self.seconds[s]) for s in self.target)

    def within(self, tolerance: float) -> bool:
        return all(
            abs(self.files[s] / self.all_files - r) <= tolerance
            and abs(self.seconds[s] / self.all_seconds - r) <= tolerance
            for s, r in self.target.items()
        )

    def place(self, ordered: list[Group], splits: list[str], seed: int) -> dict[int, str]:
        """Greedy (largest first, each where it helps most), then improving moves and swaps:
        the greedy alone leaves the last big groups wherever they happened to fit."""
        where: dict[int, str] = {}
        for g in ordered:
            dest = max(splits, key=lambda s: (self.move_gain(g, None, s), -splits.index(s)))
            self.shift(g, None, dest)
            where[g.group_id] = dest
        for _ in range(_REFINE_PASSES):
            improved = False
            for g in ordered:
                source = where[g.group_id]
                dest = max(splits, key=lambda s: (self.move_gain(g, source, s) if s != source else 0.0, s == source))
                if dest != source and self.move_gain(g, source, dest) > _MIN_GAIN:
                    self.shift(g, source, dest)
                    where[g.group_id] = dest
                    improved = True
            improved |= self._swaps(ordered, where, seed)
            if not improved:
                break
        return where

    def _swaps(self, ordered: list[Group], where: dict[int, str], seed: int) -> bool:
        """Seeded random swaps of two groups between splits, kept when they help."""
        rng = random.Random(seed)
        improved = False
        for _ in range(min(_SWAPS_PER_GROUP * len(ordered), _MAX_SWAPS)):
            g, h = rng.choice(ordered), rng.choice(ordered)
            a, b = where[g.group_id], where[h.group_id]
            if a == b:
                continue
            before = self._term(a, self.files[a], self.seconds[a]) + self._term(b, self.files[b], self.seconds[b])
            (ga, gsa), (gb, gsb) = self.size(g, a), self.size(g, b)
            (ha, hsa), (hb, hsb) = self.size(h, a), self.size(h, b)
            fa, sa = self.files[a] - ga + ha, self.seconds[a] - gsa + hsa
            fb, sb = self.files[b] - hb + gb, self.seconds[b] - hsb + gsb
            if before - (self._term(a, fa, sa) + self._term(b, fb, sb)) > _MIN_GAIN:
                self.shift(g, a, b)
                self.shift(h, b, a)
                where[g.group_id], where[h.group_id] = b, a
                improved = True
        return improved


_REFINE_PASSES = 8
_RESTARTS = 12  # only when a placement misses a target: each costs one greedy pass and its search
_SWAPS_PER_GROUP = 20
_MAX_SWAPS = 200_000
_MIN_GAIN = 1e-12


@dataclass(frozen=True)
class Resolution:
    split: str | None  # the group's split, or None when it is new and must be placed
    moves: list[Move]


def resolve_group(group_id: int, members: list[tuple[int, str | None]], *, policy: str, frozen: str) -> Resolution:
    """Where a group goes given its members' current splits (None = not assigned yet)."""
    placed = [(f, s) for f, s in members if s is not None and s != EXCLUDED]
    splits = Counter(s for _, s in placed)
    if not splits:
        return Resolution(None, [])
    if len(splits) == 1:
        return Resolution(next(iter(splits)), [])
    if policy == "frozen" and frozen in splits:
        # The frozen split keeps its files and takes none; the group's other files leave
        # their splits rather than leak into it.
        reason = f"group {group_id} now joins files in frozen split {frozen}"
        moves = [Move(f, group_id, s, EXCLUDED, reason) for f, s in placed if s != frozen]
        return Resolution(frozen, moves)
    # move_smaller: the side with the most files stays, ties to the earlier split name.
    keep = max(splits, key=lambda s: (splits[s], -sorted(splits).index(s)))
    parts = ", ".join(f"{n} in {s}" for s, n in sorted(splits.items()))
    reason = f"group {group_id} merged files from different splits ({parts}); the smaller sides move to {keep}"
    return Resolution(keep, [Move(f, group_id, s, keep, reason) for f, s in placed if s != keep])


def assign(rows: list[PlacedFile], settings: SplitsConfig) -> tuple[dict[int, str], list[Move], list[str]]:
    """file_id -> split for every file, the moves, and warnings about groups too large."""
    members: dict[int, list[PlacedFile]] = defaultdict(list)
    for r in rows:
        members[r.group_id].append(r)
    assignment: dict[int, str] = {}
    moves: list[Move] = []
    already: dict[str, Tally] = defaultdict(Tally)
    new_groups: list[Group] = []
    for group_id, group in sorted(members.items()):
        resolution = resolve_group(
            group_id, [(r.file_id, r.previous) for r in group], policy=settings.merge_policy, frozen=settings.frozen
        )
        moved = {m.file_id: m.to_split for m in resolution.moves}
        moves += resolution.moves
        stratum = _stratum(group)
        if resolution.split is None and _pinned_by_short_sounds(group, settings):
            for r in group:
                assignment[r.file_id] = settings.short_sound_split
                already[stratum].add(settings.short_sound_split, 1, r.seconds)
            continue
        if resolution.split is None:
            short = [r for r in group if _is_short(r, settings)]
            new_groups.append(
                Group(
                    group_id,
                    len(group),
                    sum(r.seconds for r in group),
                    stratum,
                    len(short),
                    sum(r.seconds for r in short),
                )
            )
            continue
        frozen_group = settings.merge_policy == "frozen" and resolution.split == settings.frozen
        for r in group:
            split = moved.get(r.file_id, r.previous if r.previous == EXCLUDED else resolution.split)
            if frozen_group and r.previous is None:
                split = EXCLUDED  # a frozen split takes no new files, not even a new copy
                moves.append(
                    Move(
                        r.file_id,
                        group_id,
                        None,
                        EXCLUDED,
                        f"new file in group {group_id} of frozen split {settings.frozen}",
                    )
                )
            elif r.previous is None:
                split = _keep_short_out(r, split, group_id, settings, moves)
            assignment[r.file_id] = split
            if split != EXCLUDED:
                already[stratum].add(split, 1, r.seconds)
    closed = frozenset([settings.frozen]) if settings.merge_policy == "frozen" and settings.frozen else frozenset()
    placement = place_groups(
        new_groups,
        settings.names,
        settings.ratios,
        seed=settings.seed,
        tolerance=settings.tolerance,
        already=already,
        closed=closed,
        short_split=settings.short_sound_split,
    )
    for group_id, split in placement.assignments.items():
        for r in members[group_id]:
            assignment[r.file_id] = _keep_short_out(r, split, group_id, settings, moves)
    return assignment, moves, oversized_warnings(placement.oversized, settings.tolerance)


def oversized_warnings(oversized: list[tuple[Group, str, float]], tolerance: float) -> list[str]:
    """A group of several files is too large to place; a single file only says the library
    is too small for the tolerance, once per stratum."""
    warnings = []
    small = {}
    for g, split, share in oversized:
        stratum = g.stratum or "(all)"
        if g.files == 1:
            small.setdefault(stratum, (split, share))
            continue
        warnings.append(
            f"group {g.group_id} ({g.files} files, {g.seconds:.0f} s) is too large to place within tolerance: "
            f"{split} now holds {share:.1%} of stratum {stratum}"
        )
    warnings += [
        f"stratum {stratum} is too small for splits.tolerance = {tolerance:g}: one file is more than that share "
        f"of it, so {split} holds {share:.1%}"
        for stratum, (split, share) in sorted(small.items())
    ]
    return warnings


def _is_short(r: PlacedFile, settings: SplitsConfig) -> bool:
    """Too little active audio to find every copy (a file without features has none)."""
    return bool(settings.short_sound_split) and (r.active_s or 0.0) < settings.short_sound_s


def _pinned_by_short_sounds(group: list[PlacedFile], settings: SplitsConfig) -> bool:
    """A group mostly of unverifiable clicks goes to the short-sound split whole."""
    short = sum(_is_short(r, settings) for r in group)
    return short > 0 and short >= settings.short_sound_share * len(group)


def _keep_short_out(r: PlacedFile, split: str, group_id: int, settings: SplitsConfig, moves: list[Move]) -> str:
    """A new short file whose group went to another split than the short-sound one stays out
    of every split: in evaluation an unseen copy of it could leak, in train it would sit
    beside its group's files in evaluation."""
    if split in (EXCLUDED, settings.short_sound_split) or not _is_short(r, settings):
        return split
    reason = (
        f"under {settings.short_sound_s} s of sound, too short to find every copy; "
        f"its group {group_id} is in {split}, so it is kept out of evaluation"
    )
    moves.append(Move(r.file_id, group_id, None, EXCLUDED, reason))
    return EXCLUDED


def _stratum(group: list[PlacedFile]) -> str:
    """A group's stratum: its most common value, ties to the smallest."""
    counts = Counter(r.stratum for r in group)
    return min(counts, key=lambda s: (-counts[s], s))


def balance(
    rows: list[PlacedFile], assignment: dict[int, str], settings: SplitsConfig
) -> tuple[list[tuple], list[str]]:
    """Per split: files, seconds, their shares and the target; and a warning for every
    share further from its target than the tolerance. Shares are of the files in splits;
    the excluded row's, of all files."""
    files: Counter = Counter()
    seconds: Counter = Counter()
    for r in rows:
        files[assignment[r.file_id]] += 1
        seconds[assignment[r.file_id]] += r.seconds
    placed_files = max(sum(files.values()) - files[EXCLUDED], 1)
    placed_seconds = max(sum(seconds.values()) - seconds[EXCLUDED], 1e-9)
    target = dict(zip(settings.names, settings.ratios, strict=True))
    table, warnings = [], []
    for split in [*settings.names, EXCLUDED]:
        if split == EXCLUDED and not files[split]:
            continue
        all_files = placed_files + (files[split] if split == EXCLUDED else 0)
        all_seconds = placed_seconds + (seconds[split] if split == EXCLUDED else 0)
        file_share, duration_share = files[split] / all_files, seconds[split] / all_seconds
        goal = target.get(split, 0.0)
        table.append((split, files[split], float(seconds[split]), file_share, duration_share, goal))
        for what, share in (("files", file_share), ("duration", duration_share)):
            if split != EXCLUDED and abs(share - goal) > settings.tolerance:
                warnings.append(
                    f"{split} holds {share:.1%} of the {what}, target {goal:.0%} +- {settings.tolerance:.0%}"
                )
    return table, warnings
