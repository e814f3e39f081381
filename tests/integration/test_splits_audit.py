"""Splits, audit, exports and the report on a real (generated) library, run like a user
runs leakfree: a full run, then a run after the library grew."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict

import numpy as np
import pytest

from leakfree import tables
from leakfree.audit import in_shown_order, match_entries, read_assignment
from leakfree.demo import write_audio, write_demo_library
from leakfree.export import export_splits
from leakfree.pipeline import STAGES, run_stages

pytestmark = pytest.mark.integration
HOSTILE = '<script>document.title="pwned"</script> & "quotes"'


@pytest.fixture(scope="module")
def demo(tmp_path_factory, test_config):
    """The demo library (28 originals and their planted copies), run once, then grown."""
    import dataclasses

    root = tmp_path_factory.mktemp("splits")
    lib = root / "library"
    files = write_demo_library(lib, seed=3, originals=28)
    rows = list(csv.DictReader((lib / "metadata.csv").open(encoding="utf-8")))
    rows[0]["caption"] = HOSTILE
    with (lib / "metadata.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    naive = root / "naive.csv"  # a file-level random split, as many datasets ship one
    shuffled = [f.rel_path for f in files]
    random.Random(1).shuffle(shuffled)
    cut = [int(len(shuffled) * 0.7), int(len(shuffled) * 0.85)]
    with naive.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "split"])
        for i, path in enumerate(shuffled):
            writer.writerow([path, "train" if i < cut[0] else "val" if i < cut[1] else "test"])
    cfg = test_config.replace(
        library=dataclasses.replace(test_config.library, roots=(str(lib),), metadata=str(lib / "metadata.csv")),
        warehouse=dataclasses.replace(test_config.warehouse, path=str(root / "warehouse")),
        audit=dataclasses.replace(test_config.audit, inputs=(str(naive),)),
        report=dataclasses.replace(test_config.report, folder=str(root / "reports"), largest_groups=100),
    )
    return {"cfg": cfg, "lib": lib, "files": files, "naive": naive, "root": root}


@pytest.fixture(scope="module")
def first_run(spark, demo):
    return run_stages(spark, demo["cfg"], list(STAGES), command="test", run_id="first")


def current_splits(spark, cfg):
    return {r.file_id: r for r in tables.read(spark, cfg.warehouse.path, "splits").where("NOT retired").collect()}


def test_every_file_is_assigned_and_no_group_is_split(spark, demo, first_run):
    cfg = demo["cfg"]
    splits = current_splits(spark, cfg)
    catalog = tables.read(spark, cfg.warehouse.path, "catalog").where("NOT retired").count()
    assert len(splits) == catalog
    by_group = defaultdict(set)
    for r in splits.values():
        by_group[r.group_id].add(r.split)
    assert all(len(s) == 1 for s in by_group.values())
    assert {r.split for r in splits.values()} == {"train", "val", "test"}


def test_own_split_has_no_leaks_by_the_generators_truth(spark, demo, first_run):
    cfg = demo["cfg"]
    names = {r.file_id: r.rel_path for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()}
    truth = {row["path"]: row["group"] for row in csv.DictReader((demo["lib"] / "truth.csv").open())}
    split_of_group = defaultdict(set)
    for r in current_splits(spark, cfg).values():
        split_of_group[truth[names[r.file_id]]].add(r.split)
    assert all(len(s) == 1 for s in split_of_group.values())
    own = tables.read(spark, cfg.warehouse.path, "audit").where("audit = 'leakfree'").collect()
    assert len(own) == 4 * 3 * 2  # same file, duplicate, caption and setup, for each ordered pair of the splits
    assert sum(r.leaking_files for r in own) == 0


def test_audit_of_a_naive_split_finds_its_leaks(spark, demo, first_run):
    cfg = demo["cfg"]
    truth = {row["path"]: row["group"] for row in csv.DictReader((demo["lib"] / "truth.csv").open())}
    naive = {row["path"]: row["split"] for row in csv.DictReader(demo["naive"].open())}
    splits_of = defaultdict(set)
    for path, split in naive.items():
        splits_of[truth[path]].add(split)
    expected = sum(1 for p, s in naive.items() if s == "test" and "train" in splits_of[truth[p]])
    rows = {
        (r.kind, r.from_split, r.to_split): r
        for r in tables.read(spark, cfg.warehouse.path, "audit").where("audit = 'naive.csv'").collect()
    }
    found = rows.get(("duplicate", "train", "test"))
    assert expected > 0 and found is not None
    assert found.leaking_files == expected
    assert found.split_files == sum(1 for s in naive.values() if s == "test")
    leaks = tables.read(spark, cfg.warehouse.path, "audit_leaks").where("audit = 'naive.csv'")
    assert leaks.where("kind = 'duplicate' AND relation IS NOT NULL").count() > 0  # with the link's evidence
    setup = {row["path"]: row["setup"] for row in csv.DictReader((demo["lib"] / "metadata.csv").open())}
    train_setups = {setup[p] for p, s in naive.items() if s == "train"}
    shared = sum(1 for p, s in naive.items() if s == "test" and setup[p] in train_setups)
    assert shared > 0 and rows[("setup:setup", "train", "test")].leaking_files == shared  # reported apart


def test_external_lists_match_catalogued_files(spark, demo, first_run, tmp_path):
    catalog = tables.read(spark, demo["cfg"].warehouse.path, "catalog")
    names = [f.rel_path for f in demo["files"]]
    (tmp_path / "train_list.txt").write_text("\n".join(names[:10]) + "\n")
    (tmp_path / "test_list.txt").write_text("\n".join(n.rsplit("/", 1)[-1] for n in names[10:14]) + "\nnot/there.wav\n")
    assignment = read_assignment([str(tmp_path / "train_list.txt"), str(tmp_path / "test_list.txt")])
    assert {s for _, s in assignment.entries} == {"train", "test"}
    assignment = type(assignment)(assignment.name, assignment.entries, str(demo["lib"]))
    matched, unmatched = match_entries(spark, assignment, catalog)
    assert matched.count() == 14 and [tuple(r) for r in unmatched.collect()] == [("not/there.wav", "test")]


def test_a_file_listed_in_two_splits_is_the_first_leak_and_every_entry_counts(spark, demo, first_run, tmp_path):
    import dataclasses

    cfg = demo["cfg"]
    catalog = {r.rel_path: r.path for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()}
    twice, other = sorted(catalog)[:2]
    listed = tmp_path / "sloppy.csv"
    with listed.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "split"])
        writer.writerow([twice, "train"])
        writer.writerow([catalog[twice], "test"])  # the same file under its absolute path
        writer.writerow([other, "train"])
        writer.writerow(["gone/1.wav", "val"])  # a split whose every entry is unknown
        writer.writerow(["gone/2.wav", "val"])
    audited = cfg.replace(audit=dataclasses.replace(cfg.audit, inputs=(str(listed),)))
    run_stages(spark, audited, ["audit"], command="test", run_id="sloppy", need_library=False)
    rows = in_shown_order(tables.read(spark, cfg.warehouse.path, "audit").where("audit = 'sloppy.csv'")).collect()
    assert rows[0].kind == "same_file"
    found = {(r.kind, r.from_split, r.to_split): r for r in rows}
    assert found[("same_file", "train", "test")].leaking_files == 1
    assert found[("same_file", "test", "train")].leaking_files == 1
    assert found[("same_file", "train", "test")].split_files == 1
    assert {r.to_split for r in rows} == {"train", "test", "val"}
    assert {r.unmatched_entries for r in rows if r.to_split == "val"} == {2}
    assert {r.unmatched_entries for r in rows if r.to_split != "val"} == {0}
    leak = (
        tables.read(spark, cfg.warehouse.path, "audit_leaks")
        .where("audit = 'sloppy.csv' AND kind = 'same_file' AND split = 'test'")
        .collect()
    )
    assert len(leak) == 1 and {"train", "test"} <= set(leak[0].evidence.split())


@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl"])
def test_exports_agree_with_the_splits_table(spark, demo, first_run, tmp_path, fmt):
    cfg = demo["cfg"]
    written = export_splits(spark, warehouse=cfg.warehouse.path, out=str(tmp_path), fmt=fmt, relative=True)
    expected = {(r.path.split(str(demo["lib"]) + "/", 1)[1], r.split) for r in current_splits(spark, cfg).values()}
    if fmt == "txt":
        got = {(line, p.stem) for p in written for line in p.read_text().splitlines()}
    elif fmt == "csv":
        got = {(r["path"], r["split"]) for r in csv.DictReader(written[0].open())}
    else:
        got = {(j["path"], j["split"]) for j in map(json.loads, written[0].read_text().splitlines())}
    assert got == expected


def test_report_is_self_contained_and_escapes_captions(spark, demo, first_run):
    report = demo["root"] / "reports" / "report-first.html"
    page = report.read_text(encoding="utf-8")
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "<script" not in page.lower()
    assert page.count("<audio controls") >= 2 and "data:audio/ogg;base64," in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "naive.csv" in page and "Split balance" in page
    skipped = page.split("<h2>Skipped files")[1]
    assert "broken/empty.wav</td><td>the file has zero bytes" in skipped and "not_audio" in skipped


def test_report_shows_a_few_members_of_a_large_group(spark, demo, first_run, tmp_path):
    import dataclasses
    import re

    from leakfree.report import build_report

    cfg = demo["cfg"]
    settings = dataclasses.replace(cfg.report, folder=str(tmp_path), largest_groups=3, members_per_group=1)
    page = build_report(
        spark, settings=settings, caption_column="caption", warehouse=cfg.warehouse.path, run_id="first"
    ).read_text(encoding="utf-8")
    groups = page.split("<div class=group>")[1:]
    assert len(groups) == 3
    for group in groups:
        size = int(re.search(r"</b>: (\d+) files", group).group(1))
        assert group.count("<audio controls") == 1
        assert f"… and {size - 1} more files" in group
        assert "<td>audio</td>" not in group  # no edge has both ends among one shown file


@pytest.mark.nights
def test_growing_the_library_moves_nothing_and_merges_are_logged(spark, demo, first_run):
    cfg, lib = demo["cfg"], demo["lib"]
    before = current_splits(spark, cfg)
    catalog = {r.rel_path: r for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()}
    by_split = defaultdict(list)
    for r in before.values():
        path = next(p for p, c in catalog.items() if c.file_id == r.file_id)
        # Sounds with texture (steps, engines, wind): a pure synthetic bell or sweep has only
        # a few spectral peaks, all at its onset, and is a poor witness for this test.
        if path.split("/")[0] in ("footsteps", "engine", "wind", "impact"):
            by_split[r.split].append(path)
    rng = np.random.default_rng(11)
    from leakfree.demo import SOUNDS

    for i in range(4):  # ~10 % more: new sounds
        write_audio(lib / "new" / f"new_{i}.wav", SOUNDS["bell"](rng, 1.5, 44100), 44100)
    import soundfile as sf

    in_train, in_test = min(by_split["train"]), min(by_split["test"])  # the same witnesses every run
    copy, rate = sf.read(lib / in_train)
    sf.write(lib / "new" / "copy_of_train.wav", copy, rate)  # a new copy joins its group's split
    a, _ = sf.read(lib / in_train, always_2d=True)
    b, _ = sf.read(lib / in_test, always_2d=True)
    bridge = np.concatenate([a.mean(axis=1), np.zeros(rate // 2), b.mean(axis=1)])
    sf.write(lib / "new" / "bridge.wav", bridge, rate)  # new evidence joins a train and a test group

    deleted = min(p for p in catalog if p.startswith("variants/"))
    (lib / deleted).unlink()  # and one file goes away
    run_stages(spark, cfg, list(STAGES), command="test", run_id="grown")

    after = current_splits(spark, cfg)
    moves = tables.read(spark, cfg.warehouse.path, "moves").where("run_id = 'grown'").collect()
    moved = {m.file_id for m in moves}
    assert moved and all(m.reason and m.from_split != m.to_split for m in moves)
    assert all(after[f].split == r.split for f, r in before.items() if f not in moved and f in after)
    ids = {r.rel_path: r.file_id for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()}
    # The copy joins its original's group; the bridge merged that group with a test group,
    # so one side moved as a whole, and the move of each of its files is logged.
    merged = {ids["new/copy_of_train.wav"], ids[in_train], ids["new/bridge.wav"], ids[in_test]}
    assert len({after[f].split for f in merged}) == 1
    assert len({after[f].group_id for f in merged}) == 1
    assert (ids[in_train] in moved) != (ids[in_test] in moved)
    own = tables.read(spark, cfg.warehouse.path, "audit").where("audit = 'leakfree' AND kind = 'duplicate'").collect()
    assert sum(r.leaking_files for r in own) == 0
    retired = {r.rel_path: r.retired for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()}
    assert retired[deleted] is True  # retired, not erased
    run = tables.read(spark, cfg.warehouse.path, "runs").where("run_id = 'grown'").first()
    assert run.changes["new_files"] == 6 and run.changes["deleted_files"] == 1
    assert run.changes["moved_files"] == len(moved)


@pytest.mark.browser
def test_report_renders_in_headless_chromium(demo, first_run, tmp_path):
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("needs Debian's chromium (make test installs it: apt-get install chromium)")
    report = demo["root"] / "reports" / "report-first.html"
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<audio") >= 2
    assert "<title>leakfree report first</title>" in dom  # no script ran to change it
    assert "&lt;script&gt;document.title" in dom  # the hostile caption is shown as text


def partition(spark, warehouse: str) -> set[frozenset[str]]:
    rel = {r.file_id: r.rel_path for r in tables.read(spark, warehouse, "catalog").collect()}
    members = defaultdict(set)
    for g in tables.read(spark, warehouse, "groups").collect():
        members[g.group_id].add(rel[g.file_id])
    return {frozenset(m) for m in members.values()}


@pytest.mark.nights
def test_incremental_runs_equal_a_full_run_on_the_final_library(spark, demo, first_run):
    import dataclasses

    import soundfile as sf

    from leakfree.demo import SOUNDS

    cfg, lib = demo["cfg"], demo["lib"]
    detection = ["catalog", "features", "candidates", "pairs", "groups"]
    # Its own growth: a new sound, a re-encoded copy of a catalogued one, and a copy of the new one.
    rng = np.random.default_rng(41)
    fresh_sound = SOUNDS["engine"](rng, 2.0, 44100)
    write_audio(lib / "grown" / "engine_new.wav", fresh_sound, 44100)
    write_audio(lib / "grown" / "engine_new_copy.flac", fresh_sound, 44100)
    samples, rate = sf.read(str(lib / demo["files"][0].rel_path))
    write_audio(lib / "grown" / "old_copy.flac", samples, rate)
    run_stages(spark, cfg, list(STAGES), command="test", run_id="grown_more")  # a whole nightly run
    fresh = cfg.replace(warehouse=dataclasses.replace(cfg.warehouse, path=str(demo["root"] / "fresh")))
    run_stages(spark, fresh, detection, command="test", run_id="fresh")
    groups = partition(spark, cfg.warehouse.path)
    assert any({"grown/engine_new.wav", "grown/engine_new_copy.flac"} <= g for g in groups)
    assert any({"grown/old_copy.flac", demo["files"][0].rel_path} <= g for g in groups)
    assert partition(spark, fresh.warehouse.path) == partition(spark, cfg.warehouse.path)
    edges = {
        name: {(r.file_a, r.file_b, r.method) for r in tables.read(spark, c.warehouse.path, "pairs").collect()}
        for name, c in (("incremental", cfg), ("full", fresh))
    }
    assert edges["incremental"] == edges["full"]


def test_a_second_run_with_nothing_new_changes_nothing(spark, demo, first_run):
    cfg = demo["cfg"]
    before = {
        name: sorted(map(tuple, tables.read(spark, cfg.warehouse.path, name).drop("run_id").collect()))
        for name in ("pairs", "groups", "splits")
    }
    run_stages(spark, cfg, list(STAGES), command="test", run_id="again")
    after = {
        name: sorted(map(tuple, tables.read(spark, cfg.warehouse.path, name).drop("run_id").collect()))
        for name in ("pairs", "groups", "splits")
    }
    assert after["pairs"] == before["pairs"] and after["groups"] == before["groups"]
    assert [r[:4] for r in after["splits"]] == [r[:4] for r in before["splits"]]
    run = tables.read(spark, cfg.warehouse.path, "runs").where("run_id = 'again'").first()
    assert run.changes == {"new_files": 0, "changed_files": 0, "deleted_files": 0, "moved_files": 0}
