"""The run report: ``report.md`` (a data card with Hugging Face dataset-card front matter)
and ``report.html`` (the same content with matplotlib plots embedded as base64 PNGs)."""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path
from typing import Any

from thresher.report import sections as S
from thresher.report.eval_section import evaluation
from thresher.report.run import Run, load_run
from thresher.report.sections import Section

#: the sections in report order (each returns None when the run has nothing for it)
BUILDERS = (S.funnel, S.drop_rules, S.scores, S.auto_cuts, S.lengths, S.duplicates, S.contamination,
            S.category_mix, S.training, evaluation, S.label_bias)


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "n>10M"


def front_matter(run: Run, out_dir: Path) -> dict[str, Any]:
    """YAML front matter usable as a Hugging Face dataset card's metadata."""
    final = run.final
    rows = int(final.stats.get("rows_out", 0) or 0) if final else 0
    meta: dict[str, Any] = {
        "pretty_name": f"{run.recipe.get('name') or run.path.name} (thresher)",
        "language": ["en"],
        "license": "other",
        "task_categories": ["text-generation"],
        "tags": ["thresher", "sft", "synthetic", "distillation"],
        "size_categories": [_size_category(rows)],
    }
    gen = run.by_name("generate")
    if gen:
        teacher = gen[-1].config.get("teacher") or gen[-1].stats.get("teacher")
        if teacher:
            meta["tags"].append(f"teacher:{teacher}")
    if final is not None:
        rel = os.path.relpath(final.kept_path, out_dir)
        if final.kept_path.is_dir():  # a folder of parts: the hub reads its files by a glob
            rel += "/*.parquet"
        meta["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": rel}]}]
    return meta


def _overview(run: Run) -> Section:
    sec = Section("Overview")
    final = run.final
    rec = run.recipe
    desc = rec.get("description")
    if desc:
        sec.text(str(desc).strip())
    facts: list[list[Any]] = [["recipe", rec.get("name", "(separate stage commands)")], ["run directory", str(run.path)]]
    if rec.get("seed") is not None:
        facts.append(["seed", rec.get("seed")])
    inputs = run.by_name("inputs")
    if inputs:
        facts.append(["input rows", inputs[0].stats.get("rows_in")])
    if final is not None:
        facts.append(["final rows", final.stats.get("rows_out")])
        facts.append(["final dataset", str(final.kept_path)])
        cats = final.stats.get("kept_by_category") or {}
        if cats:
            facts.append(["categories", ", ".join(f"{k} ({v})" for k, v in cats.items())])
    for name, key in (("generate", "teacher"), ("train", "base")):
        st = run.by_name(name)
        if st and st[-1].config.get(key):
            facts.append([f"{name} {key}", st[-1].config[key]])
    for st in run.by_name("generate"):  # API usage: tokens and cost per stage, and the run's total
        if "cost_usd" in st.stats:
            from thresher.pricing import usd

            facts.append([f"{st.folder} API usage", f"{st.stats.get('prompt_tokens_with_reused')} prompt + "
                          f"{st.stats.get('completion_tokens_with_reused')} completion tokens, "
                          f"{usd(st.stats.get('cost_usd_with_reused'))}"])
    if "cost_usd" in run.summary:
        from thresher.pricing import usd

        facts.append(["API cost of the run", usd(run.summary["cost_usd"])])
    if run.summary.get("seconds") is not None:
        facts.append(["run time (s)", run.summary["seconds"]])
    sec.table(["item", "value"], facts)
    stages = [[s.folder, "finished" if s.finished else ("writing this report" if s.name == "report" else "not finished"),
               s.stats.get("seconds", "")] for s in run.stages]
    sec.text("Stages:")
    sec.table(["stage", "status", "seconds"], stages)
    return sec


def _reproduce(run: Run) -> Section:
    sec = Section("How to reproduce")
    name = run.recipe.get("name")
    if name:
        sec.text(f"`thresher run {run.path / 'recipe.yaml'} --out {run.path}` (the resolved recipe is saved in the run "
                 "directory; finished stages are reused).")
    if run.versions:
        sec.table(["package", "version"], [[k, v] for k, v in run.versions.items()])
    return sec


def build(run: Run) -> list[Section]:
    """All sections for ``run`` (sections with no data are left out)."""
    sections = [_overview(run)]
    for builder in BUILDERS:
        sec = builder(run)
        if sec is not None:
            sections.append(sec)
    from thresher.report.samples import samples

    sample_sec = samples(run)
    if sample_sec is not None:
        sections.append(sample_sec)
    sections.append(_reproduce(run))
    return sections


#: every line break CommonMark (or a browser) honours: data stays on its line
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
#: Markdown punctuation that can start inline markup in the middle of a line
_MD_INLINE = re.compile(r"([\\`*|~]|(?<=\])\(|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_escape(value: Any) -> str:
    """Data (row content, ids, categories, names) as Markdown that renders as exactly that text:
    one line, HTML as entities, inline markup characters backslash-escaped."""
    text = _LINE_BREAKS.sub(" ", str(value if value is not None else ""))
    return _MD_INLINE.sub(r"\\\1", html.escape(text, quote=False))


def md_text(text: str) -> str:
    """A paragraph thresher wrote (its `code` and **bold** kept) that may quote data: one line,
    HTML as entities, no fence (3+ backticks or tildes) and no block markup at its start."""
    text = html.escape(_LINE_BREAKS.sub(" ", text), quote=False)
    text = re.sub(r"`{3,}|~{3,}", lambda m: "".join("\\" + c for c in m.group(0)), text)
    return "\\" + text if text[:1] in "#>-+=*_|~[" and text else text


def _cell_md(v: Any) -> str:
    return md_escape(v)


def render_markdown(run: Run, sections: list[Section], out_dir: Path) -> str:
    """``report.md``: YAML front matter, then every section's text and tables."""
    import yaml

    parts = ["---", yaml.safe_dump(front_matter(run, out_dir), sort_keys=False).rstrip(), "---", ""]
    parts.append(f"# Dataset card: {md_escape(run.recipe.get('name') or run.path.name)}")
    parts.append("")
    parts.append("Made with thresher. Plots of every section are in `report.html` beside this file.")
    for sec in sections:
        parts += ["", f"## {md_escape(sec.title)}", ""]
        for kind, payload in sec.blocks:
            if kind == "text":
                parts += [md_text(payload), ""]
            elif kind == "table":
                parts += _md_table(*payload)
            elif kind == "details":  # collapsible on the hub and GitHub too
                summary, header, rows = payload
                parts += [f"<details><summary>{html.escape(_LINE_BREAKS.sub(' ', summary))}</summary>", "",
                          *_md_table(header, rows),
                          "</details>", ""]
    return "\n".join(parts).rstrip() + "\n"


def _md_table(header: list[Any], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(_cell_md(h) for h in header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(_cell_md(c) for c in r) + " |" for r in rows], ""]


def _inline_html(text: str) -> str:
    """Escape ``text`` and render its `code` spans as <code> (no literal backticks)."""
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _html_table(header: list[Any], rows: list[list[Any]]) -> str:
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{e(str(c if c is not None else ''))}</td>" for c in r) + "</tr>" for r in rows]
    return "<table>" + head + "".join(body) + "</table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}img{max-width:100%;display:block;margin:.6em 0}h2{border-bottom:1px solid #ddd}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px;font-size:90%}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}details td{max-width:280px;vertical-align:top}"""


def render_html(run: Run, sections: list[Section]) -> str:
    """``report.html``: every section with its tables and plots embedded as base64 PNGs."""
    e = html.escape
    title = f"thresher report: {run.recipe.get('name') or run.path.name}"
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{e(title)}</h1>"]
    for sec in sections:
        out.append(f"<h2>{e(sec.title)}</h2>")
        for kind, payload in sec.blocks:
            if kind == "text":
                out.append(f"<p>{_inline_html(payload)}</p>")
            elif kind == "table":
                out.append(_html_table(*payload))
            elif kind == "details":
                summary, header, rows = payload
                out.append(f"<details><summary>{e(summary)}</summary>{_html_table(header, rows)}</details>")
            elif kind == "plot":
                png, caption = payload
                data = base64.b64encode(png).decode("ascii")
                out.append(f"<img alt='{e(caption)}' src='data:image/png;base64,{data}'>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(run_dir: str | Path, out_dir: str | Path | None = None,
                 also: tuple[str | Path, ...] = ()) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for the run in ``run_dir`` into ``out_dir``
    (default: the run directory) and into every folder of ``also``; return the first pair."""
    from thresher.io import write_text_atomic

    run = load_run(run_dir)
    sections = build(run)
    page = render_html(run, sections)
    written: list[tuple[Path, Path]] = []
    for folder in (Path(out_dir) if out_dir is not None else run.path, *map(Path, also)):
        folder.mkdir(parents=True, exist_ok=True)
        md, html_path = folder / "report.md", folder / "report.html"
        write_text_atomic(md, render_markdown(run, sections, folder))  # data paths relative to it
        write_text_atomic(html_path, page)
        written.append((md, html_path))
    return written[0]
