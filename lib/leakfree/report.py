"""One self-contained HTML report per run: counts, leaks, balance, group sizes, and the
largest groups with a player for each member and the evidence of each edge.

Everything is inline (CSS, SVG charts, short Ogg previews as data: URIs), so the file can
be mailed or archived and never fetches anything. Every caption, path and metadata value
is escaped: a library is input from strangers, and a caption is no place for a script.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from leakfree import storage, tables
from leakfree.audit import in_shown_order
from leakfree.config import ReportConfig
from leakfree.contamination import findings
from leakfree.decode import open_audio
from leakfree.errors import AudioError
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")

_PREVIEW_RATE = 16000
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}.num{text-align:right}.bad{color:#b00;font-weight:600}
.ok{color:#070}.group{margin:1.2em 0;padding:.6em 1em;border:1px solid #ddd;border-radius:6px}
audio{height:2em;vertical-align:middle}code{font-size:.9em;word-break:break-all}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def preview(path: str, seconds: float) -> str | None:
    """A data: URI of the first seconds of the file as mono Ogg Vorbis, or None."""
    try:
        with open_audio(path) as handle:
            frames = handle.read(int(seconds * handle.samplerate), dtype="float32", always_2d=True)
            rate = handle.samplerate
    except (AudioError, RuntimeError, OSError):
        return None
    mono = frames.mean(axis=1)
    if len(mono) == 0:
        return None
    if rate != _PREVIEW_RATE:
        mono = soxr.resample(mono, rate, _PREVIEW_RATE)
    buffer = io.BytesIO()
    # Vorbis needs a few hundred samples to encode; pad very short sounds with silence.
    mono = np.pad(mono, (0, max(0, 2048 - len(mono))))
    sf.write(buffer, np.clip(mono, -1, 1), _PREVIEW_RATE, format="OGG", subtype="VORBIS")
    return "data:audio/ogg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def bar_chart(rows: list[tuple[str, list[tuple[str, float]]]], *, width: int = 520, limit: float = 1.0) -> str:
    """Horizontal bars: rows of (label, [(series name, value)]), as inline SVG."""
    colors = ("#4a7ebb", "#e69138", "#999999", "#6aa84f")
    bar, gap, label_w = 14, 10, 140
    series_count = max((len(values) for _, values in rows), default=1)
    height = len(rows) * (series_count * bar + gap) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    y = 10
    for label, values in rows:
        parts.append(f'<text x="0" y="{y + bar}" font-size="12">{esc(label)}</text>')
        for i, (name, value) in enumerate(values):
            length = (width - label_w - 60) * min(value / limit, 1.0) if limit else 0
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar - 2}" fill="{colors[i % 4]}">'
                f"<title>{esc(name)}: {value:.3f}</title></rect>"
                f'<text x="{label_w + length + 4:.1f}" y="{y + bar - 3}" font-size="11">{esc(name)} {value:.3g}</text>'
            )
            y += bar
        y += gap
    parts.append("</svg>")
    return "".join(parts)


def report_path(settings: ReportConfig, warehouse: str, run_id: str) -> str:
    return f"{settings.folder or tables.table_path(warehouse, 'reports')}/report-{run_id}.html"


def write_report(
    spark: SparkSession, *, settings: ReportConfig, caption_column: str, warehouse: str, run: RunLog
) -> None:
    """The report stage: write the HTML report of this run."""
    with run.stage("report") as stats:
        target = build_report(
            spark,
            settings=settings,
            caption_column=caption_column,
            warehouse=warehouse,
            run_id=run.run_id,
            problems=run.problems,
        )
        stats.counters["reports_written"] = int(target is not None)
        if target is not None:
            log.info("report: %s", target)


def build_report(
    spark: SparkSession,
    *,
    settings: ReportConfig,
    caption_column: str,
    warehouse: str,
    run_id: str,
    problems: Sequence[str] = (),
) -> Path | None:
    """Write the report for `run_id`; returns its path (None for a remote warehouse)."""
    location = report_path(settings, warehouse, run_id)
    if storage.is_remote(location):
        log.warning("report: %s is remote; set report.folder to a local folder to get the HTML report", location)
        return None
    target = Path(location)
    catalog = tables.read(spark, warehouse, "catalog").where("NOT retired")
    caption = caption_column if caption_column in catalog.columns else None
    sections = [
        f"<h1>leakfree run {esc(run_id)}</h1>",
        _problems(problems),
        _counts(spark, warehouse, run_id),
        _relations(spark, warehouse, run_id),
        _leaks(spark, warehouse),
        _balance(spark, warehouse, run_id),
        _group_sizes(spark, warehouse),
        _largest_groups(spark, warehouse, settings, caption),
        _contamination(spark, warehouse, settings),
        _errors(spark, warehouse, run_id),
    ]
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:; media-src data:\">"
        f"<title>leakfree report {esc(run_id)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


def _counts(spark: SparkSession, warehouse: str, run_id: str) -> str:
    files = tables.read(spark, warehouse, "catalog").where("NOT retired").count()
    groups = tables.read(spark, warehouse, "groups").select("group_id").distinct().count()
    methods = {r.method: r["count"] for r in tables.read(spark, warehouse, "pairs").groupBy("method").count().collect()}
    errors = tables.read(spark, warehouse, "errors").where(F.col("run_id") == run_id).groupBy("error_class").count()
    rows = [("files", files), ("leak groups", groups)] + [(f"{m} edges", n) for m, n in sorted(methods.items())]
    rows += [(f"skipped: {r.error_class}", r["count"]) for r in errors.orderBy("error_class").collect()]
    body = "".join(f"<tr><td>{esc(k)}</td><td class=num>{esc(v)}</td></tr>" for k, v in rows)
    return f"<h2>Counts</h2><table>{body}</table>"


# Error rows listed in the report; the rest are counted above and named by the query shown.
ERRORS_LISTED = 200


def _errors(spark: SparkSession, warehouse: str, run_id: str) -> str:
    errors = tables.read(spark, warehouse, "errors").where(F.col("run_id") == run_id)
    rows = errors.orderBy("stage", "error_class", "path").limit(ERRORS_LISTED + 1).collect()
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{esc(r.stage)}</td><td>{esc(r.error_class)}</td><td>{esc(r.path)}</td><td>{esc(r.message)}</td></tr>"
        for r in rows[:ERRORS_LISTED]
    )
    more = (
        f'<p>The first {ERRORS_LISTED} are shown; all of them: <code>leakfree sql "SELECT * FROM errors '
        f"WHERE run_id = '{esc(run_id)}'\"</code></p>"
        if len(rows) > ERRORS_LISTED
        else ""
    )
    return (
        "<h2>Skipped files and sidecar rows</h2><p>What this run could not use, and why; the run went on.</p>"
        f"<table><tr><th>stage</th><th>class</th><th>path</th><th>message</th></tr>{body}</table>{more}"
    )


def _problems(problems: Sequence[str]) -> str:
    if not problems:
        return ""
    listed = "".join(f"<li class=bad>{esc(p)}</li>" for p in problems)
    return f"<h2 class=bad>Degraded: the results miss what was asked</h2><ul>{listed}</ul>"


def _relations(spark: SparkSession, warehouse: str, run_id: str) -> str:
    if not tables.exists(spark, warehouse, "relations"):
        return ""
    rows = tables.read(spark, warehouse, "relations").where(F.col("run_id") == run_id).orderBy("relation").collect()
    body = "".join(
        f"<tr><td>{esc(r.relation)}</td><td>{esc(r.role)}</td><td class=num>{r.links}</td>"
        f"<td class=num>{r.joining}</td><td class='{'bad' if r.coarse else ''}'>{esc(r.note or '')}</td></tr>"
        for r in rows
    )
    return (
        "<h2>Relations</h2><p>What links files: <i>join</i> relations build the leak groups, <i>audit</i> "
        "ones are only reported as leaks. Links: all found; joining: those that joined groups.</p>"
        "<table><tr><th>relation</th><th>role</th><th>links</th><th>joining</th><th>note</th></tr>"
        f"{body}</table>"
    )


def _leaks(spark: SparkSession, warehouse: str) -> str:
    if not tables.exists(spark, warehouse, "audit"):
        return "<h2>Leaks</h2><p>No audit yet.</p>"
    rows = in_shown_order(tables.read(spark, warehouse, "audit")).collect()
    body = "".join(
        f"<tr><td>{esc(r.audit)}</td><td>{esc(r.kind)}</td><td>{esc(r.to_split)}</td><td>{esc(r.from_split)}</td>"
        f"<td class=num>{r.leaking_files}</td><td class=num>{r.split_files}</td>"
        f"<td class='num {'bad' if r.leaking_files else 'ok'}'>{r.share:.1%}</td></tr>"
        for r in rows
    )
    note = "" if rows else "<p>No audit yet.</p>"
    missing = sorted({(r.audit, r.to_split, n) for r in rows if (n := getattr(r, "unmatched_entries", None))})
    unmatched = "".join(
        f"<p class=bad>{esc(audit)}: {count} entries of {esc(split)} match no catalogued file.</p>"
        for audit, split, count in missing
    )
    return (
        "<h2>Leaks</h2><p>Files of a split that are listed in another split too (<i>same_file</i>), or have "
        "a duplicate (or, for the other kinds, a file with the same specific caption or the same setup value) "
        f"in another split, for each audited assignment.</p>{unmatched}"
        "<table><tr><th>assignment</th><th>kind</th><th>split</th><th>leaks from</th><th>files</th>"
        f"<th>of</th><th>share</th></tr>{body}</table>{note}"
    )


def _balance(spark: SparkSession, warehouse: str, run_id: str) -> str:
    if not tables.exists(spark, warehouse, "split_balance"):
        return ""
    rows = tables.read(spark, warehouse, "split_balance").where(F.col("run_id") == run_id).orderBy("split").collect()
    chart = bar_chart(
        [(r.split, [("files", r.file_share), ("duration", r.duration_share), ("target", r.target)]) for r in rows]
    )
    warnings = next((r.warnings for r in rows if r.warnings), "")
    listed = "".join(f"<li class=bad>{esc(w)}</li>" for w in warnings.splitlines())
    return f"<h2>Split balance</h2>{chart}<ul>{listed}</ul>"


def _group_sizes(spark: SparkSession, warehouse: str) -> str:
    sizes = Counter()
    for r in tables.read(spark, warehouse, "groups").select("group_id", "group_size").distinct().collect():
        bucket = 2 ** math.ceil(math.log2(r.group_size)) if r.group_size > 1 else 1
        sizes[bucket] += 1
    rows = [(f"{b // 2 + 1}-{b}" if b > 2 else str(b), [("groups", float(n))]) for b, n in sorted(sizes.items())]
    return "<h2>Group sizes</h2>" + bar_chart(rows, limit=float(max(sizes.values(), default=1)))


def _largest_groups(spark: SparkSession, warehouse: str, settings: ReportConfig, caption_column: str | None) -> str:
    groups = tables.read(spark, warehouse, "groups")
    top = {
        r.group_id: r.group_size
        for r in groups.where("group_size > 1")
        .select("group_id", "group_size")
        .distinct()
        .orderBy(F.desc("group_size"), "group_id")
        .limit(settings.largest_groups)
        .collect()
    }
    if not top:
        return "<h2>Largest groups</h2><p>No file has a duplicate.</p>"
    catalog = tables.read(spark, warehouse, "catalog")
    caption = F.col(caption_column) if caption_column else F.lit(None)
    # Only the members shown and the edges between them are read: a group of thousands
    # must cost the report no more than a group of six.
    first = Window.partitionBy("group_id").orderBy("file_id")
    members = (
        groups.where(F.col("group_id").isin(list(top)))
        .withColumn("rank", F.row_number().over(first))
        .where(F.col("rank") <= settings.members_per_group)
        .join(catalog.select("file_id", "path", "rel_path", caption.cast("string").alias("caption")), "file_id")
        .orderBy("group_id", "file_id")
        .collect()
    )
    pairs = tables.read(spark, warehouse, "pairs")
    ids = [m.file_id for m in members]
    edges = pairs.where(F.col("file_a").isin(ids) & F.col("file_b").isin(ids)).orderBy("file_a", "file_b").collect()
    name = {m.file_id: m.rel_path for m in members}
    out = ["<h2>Largest groups</h2>"]
    for group_id, size in top.items():
        shown = [m for m in members if m.group_id == group_id]
        rows = [
            f"<tr><td><code>{esc(m.rel_path)}</code></td><td>{esc(m.caption)}</td>"
            f"<td>{_player(m.path, settings)}</td></tr>"
            for m in shown
        ]
        members_ids = {m.file_id for m in shown}
        evidence = "".join(
            f"<tr><td><code>{esc(name[e.file_a])}</code></td><td><code>{esc(name[e.file_b])}</code></td>"
            f"<td>{esc(e.method)}</td><td class=num>{_num(e.correlation)}</td><td class=num>{_num(e.containment)}</td>"
            f"<td class=num>{_num(e.offset_s)}</td><td class=num>{_num(e.caption_jaccard)}</td></tr>"
            for e in edges
            if e.file_a in members_ids and e.file_b in members_ids
        )
        hidden = size - len(shown)
        more = f"<p>… and {hidden} more files (edges shown between the files above).</p>" if hidden else ""
        out.append(
            f"<div class=group><b>group {group_id}</b>: {size} files, joined by "
            f"{esc(', '.join(shown[0].joined_by))}<table><tr><th>file</th><th>caption</th><th>listen</th></tr>"
            + "".join(rows)
            + f"</table>{more}<table><tr><th>file</th><th>file</th><th>method</th><th>correlation</th>"
            f"<th>containment</th><th>offset s</th><th>caption J</th></tr>{evidence}</table></div>"
        )
    return "".join(out)


def _player(path: str, settings: ReportConfig) -> str:
    uri = preview(path, settings.preview_seconds)
    return f'<audio controls preload=none src="{uri}"></audio>' if uri else "<i>no preview</i>"


def _contamination(spark: SparkSession, warehouse: str, settings: ReportConfig) -> str:
    """Per reference set: its latest check, and examples of library files that copy its
    sounds, each with a player for both files and the evidence."""
    if not tables.exists(spark, warehouse, "contamination_summary"):
        return ""
    latest = Window.partitionBy("reference").orderBy(F.desc("run_id"))
    summaries = (
        tables.read(spark, warehouse, "contamination_summary")
        .withColumn("rank", F.row_number().over(latest))
        .where("rank = 1")
        .join(tables.read(spark, warehouse, "reference_sets").select("reference"), "reference")
        .orderBy("reference")
        .collect()
    )
    first = Window.partitionBy("reference").orderBy(F.desc("correlation"), "library_path", "method")
    examples = (
        findings(spark, warehouse)
        .withColumn("rank", F.row_number().over(first))
        .where(F.col("rank") <= settings.members_per_group)
        .orderBy("reference", "rank")
        .collect()
    )
    overlaps = {
        (r.reference_a, r.reference_b): r["count"]
        for r in tables.read(spark, warehouse, "reference_overlap")
        .groupBy("reference_a", "reference_b")
        .count()
        .collect()
    }
    out = [
        "<h2>Contamination</h2><p>Library files that copy a sound of a reference set (a benchmark's evaluation "
        "set): exact copies, other encodings, edited copies, excerpts and compilations, found from the audio. "
        "Block list: <code>leakfree export OUT --contaminated NAME</code>.</p>"
        "<table><tr><th>reference set</th><th>files</th><th>list entries not found</th><th>library files</th>"
        "<th>contaminated</th><th>share</th><th>checked in run</th></tr>"
    ]
    out += [
        f"<tr><td>{esc(r.reference)}</td><td class=num>{r.reference_files}</td>"
        f"<td class=num>{esc(r.unmatched_entries)}</td><td class=num>{r.library_files}</td>"
        f"<td class='num {'bad' if r.contaminated_files else 'ok'}'>{r.contaminated_files}</td>"
        f"<td class=num>{r.share:.2%}</td><td>{esc(r.run_id)}</td></tr>"
        for r in summaries
    ]
    out.append("</table>")
    out += [
        f"<p>{esc(a)} and {esc(b)} share {n} sounds (table reference_overlap).</p>"
        for (a, b), n in sorted(overlaps.items())
    ]
    for r in summaries:
        mine = [e for e in examples if e.reference == r.reference]
        if not mine:
            continue
        rows = "".join(
            f"<tr><td><code>{esc(e.reference_path)}</code><br>{_player(e.reference_path, settings)}</td>"
            f"<td><code>{esc(e.library_path)}</code><br>{_player(e.library_path, settings)}</td>"
            f"<td>{esc(e.method)}</td><td class=num>{_num(e.correlation)}</td>"
            f"<td class=num>{_num(e.containment)}</td><td class=num>{_num(e.offset_s)}</td>"
            f"<td class=num>{_num(e.time_scale)}</td><td>{esc(e.shared_key)}</td></tr>"
            for e in mine
        )
        out.append(
            f"<div class=group><b>{esc(r.reference)}</b>: the {len(mine)} closest of {r.contaminated_files} "
            "contaminated files<table><tr><th>reference file</th><th>library file</th><th>method</th>"
            "<th>correlation</th><th>containment</th><th>offset s</th><th>speed</th><th>shared key</th></tr>"
            f"{rows}</table></div>"
        )
    return "".join(out)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
