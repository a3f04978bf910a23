"""``thresher convert`` and ``thresher stats``."""

from __future__ import annotations

import os
from pathlib import Path

import click
import polars as pl

from thresher.cli.options import read_options
from thresher.io import read_rows, write_rejects, write_table
from thresher.io.inputs import ReadOptions
from thresher.io.shapes import WRITE_SHAPES


@click.command()
@click.argument("srcs", metavar="IN...", nargs=-1, required=True)
@click.argument("dst", metavar="OUT", type=click.Path(dir_okay=True))
@read_options
@click.option("--to", "to_shape", type=click.Choice(WRITE_SHAPES), default="messages", show_default=True,
              help="Record format to write (Parquet/JSONL/folder is chosen by OUT's extension).")
@click.option("--category", default=None, help="Category for rows that have none.")
@click.option("--source", default=None, help="Source for rows that have none.")
def convert(srcs: tuple[str, ...], dst: str, read: ReadOptions, to_shape: str, category: str | None,
            source: str | None) -> None:
    """Convert IN (JSONL, JSON, Parquet, CSV/TSV, optionally .gz/.bz2/.xz/.zst; a dataset folder
    or hub name; messages, ShareGPT, Alpaca, prompt/completion, prompt or OpenAI Batch records)
    to OUT, validating every row. Several INs are concatenated (ids stay unique across them); an
    OpenAI Batch results file is joined to its requests file by custom_id. OUT is never an
    input, nor a file inside a stage or run folder.

    Example: thresher convert alpaca.json data.parquet
    """
    from thresher.io.openai_batch import join
    from thresher.schema import IdAssigner

    _check_targets(srcs, dst, read.on_bad_rows)
    ids = IdAssigner()
    results = [read_rows(src, read.fmt, on_bad_rows=read.on_bad_rows, category=category, source=source,
                         split=read.split, ids=ids) for src in srcs]
    frames = join(results, on_bad_rows=read.on_bad_rows)
    table = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    rejects = [r for x in results for r in x.rejects]
    write_table(table, dst, shape=to_shape)
    rej = write_rejects(rejects, dst)
    msg = f"wrote {table.height} rows to {dst}"
    if rej:
        msg += f"; {len(rejects)} bad rows skipped, listed with reasons in {rej}"
    click.echo(msg)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_targets(srcs: tuple[str, ...], dst: str, on_bad_rows: str) -> None:
    """Refuse an OUT that would replace an input, a stage's result, or a file thresher did not write."""
    from thresher.errors import InputError
    from thresher.io.writers import is_rejects_file, rejects_path
    from thresher.stage_folder import read_manifest

    out, rej = Path(dst), rejects_path(dst)
    for src in srcs:
        if _same(Path(src), out):
            raise InputError(f"{dst}: is also an input; write to another file")
        if _same(Path(src), rej):
            raise InputError(f"{rej}: is an input, and the rejects file of {dst} would replace it; "
                             "choose another OUT")
    for folder in (out.absolute().parent, out):
        if folder.is_dir() and ((read_manifest(folder) or {}).get("stage") or (folder / "recipe.yaml").is_file()):
            raise InputError(f"{dst}: inside the stage or run folder {folder}; convert never writes "
                             "into one (write to another path)")
    if rej.exists() and not is_rejects_file(rej) and on_bad_rows == "skip":
        raise InputError(f"{rej}: exists and is not a rejects file thresher wrote; move it away or choose another OUT")


def _chat_tokens(tok, messages, name: str) -> int:
    """Tokens of a conversation as the model sees it (typed special-token text stays text)."""
    from thresher.chat_tokens import encode_chat_ids
    from thresher.errors import ThresherError
    from thresher.io.chat import template_messages

    if not getattr(tok, "chat_template", None):
        raise ThresherError(f"--tokenizer {name}: the tokenizer has no chat template to render conversations with")
    msgs = template_messages(messages)
    try:
        text = tok.apply_chat_template(msgs, tokenize=False)
    except Exception as e:  # noqa: BLE001 - jinja errors, raise_exception() in templates
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ThresherError(f"--tokenizer {name}: the chat template fails on a row: {first}") from None
    return len(encode_chat_ids(tok, text, msgs))


def _summary(s: pl.Series) -> list[str]:
    if s.len() == 0:
        return ["-"] * 5
    q = [s.min(), s.quantile(0.5), s.mean(), s.quantile(0.95), s.max()]
    return [f"{v:,.0f}" if v is not None else "-" for v in q]


@click.command()
@click.argument("src", metavar="IN")
@read_options
@click.option("--tokenizer", default=None, help="Model or folder whose tokenizer counts tokens too.")
@click.option("--trust-remote-code", is_flag=True,
              help="Run the --tokenizer folder's own Python code (auto_map); only for models you trust.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def stats(src: str, read: ReadOptions, tokenizer: str | None, trust_remote_code: bool, as_json: bool) -> None:
    """Row count, per-category and per-source counts, turns and length summaries of IN.

    Example: thresher stats data.parquet --tokenizer smollm2
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from thresher.schema import prompt_text, response_text

    res = read_rows(src, read.fmt, on_bad_rows=read.on_bad_rows, split=read.split)
    df = res.table
    msgs = df["messages"].to_list()
    lengths = pl.DataFrame({
        "turns": [len(m) for m in msgs],
        "prompt_chars": [len(prompt_text(m)) for m in msgs],
        "response_chars": [len(response_text(m)) for m in msgs],
    })
    if tokenizer:
        from thresher.models import load_tokenizer, resolve_model

        tok = load_tokenizer(resolve_model(tokenizer), trust_remote_code=trust_remote_code)
        lengths = lengths.with_columns(pl.Series("tokens", [_chat_tokens(tok, m, tokenizer) for m in msgs]))
    cats = df.group_by("category").len().sort("len", descending=True)
    srcs = df.group_by("source").len().sort("len", descending=True)
    if as_json:
        out = {
            "rows": df.height, "rejected": len(res.rejects),
            "categories": {str(c): n for c, n in cats.iter_rows()},
            "sources": {str(c): n for c, n in srcs.iter_rows()},
            "lengths": {c: dict(zip(["min", "median", "mean", "p95", "max"], _summary(lengths[c]))) for c in lengths.columns},
        }
        click.echo(json.dumps(out, indent=2))
        return
    con = Console()
    con.print(f"[bold]{src}[/bold]: {df.height:,} rows" + (f", {len(res.rejects)} rejected" if res.rejects else ""))
    for title, frame in (("category", cats), ("source", srcs)):
        t = Table(title=f"rows by {title}")
        t.add_column(title)
        t.add_column("rows", justify="right")
        t.add_column("share", justify="right")
        for c, n in frame.iter_rows():
            t.add_row(str(c) if c is not None else "(none)", f"{n:,}", f"{n / max(df.height, 1):.1%}")
        con.print(t)
    t = Table(title="lengths")
    for h in ("", "min", "median", "mean", "p95", "max"):
        t.add_column(h, justify="right" if h else "left")
    for c in lengths.columns:
        t.add_row(c, *_summary(lengths[c]))
    con.print(t)
