"""Publish a run's dataset: ``thresher export`` (a hub-ready folder) and ``thresher push``.

``export_run(RUN_DIR, DIR)`` writes::

    DIR/README.md                          the dataset card (the run report, with hub front matter)
    DIR/data/train-00000-of-00001.parquet  the curated rows
    DIR/data/test-00000-of-00001.parquet   the held-out prompts (recipe runs with ``holdout``)
    DIR/report.html                        the run report with its plots (runs with a report)
    DIR/.thresher-export.json              the files this export wrote (a re-export replaces only those)

and the card's ``configs`` point at those files, so ``datasets.load_dataset(DIR)`` and the
hub read the folder as it is. RUN_DIR is a recipe run folder (its final dataset and
``00-inputs/heldout.parquet``) or a stage folder (its ``kept.parquet``; no test split); a
``kept.parquet`` that is a folder of parts is written as the one train file.
Both splits have the same columns (missing ones are null), as the hub's Parquet loader needs.

``push_run(RUN_DIR, REPO_ID)`` exports to a temporary folder and uploads it to a dataset repo
through ``huggingface_hub`` (optionally the adapter to a model repo, its card linking the
dataset). Offline (``HF_HUB_OFFLINE=1``) or without access it is a one-line error.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from thresher.errors import ThresherError
from thresher.io import parts

TRAIN_FILE = "data/train-00000-of-00001.parquet"
TEST_FILE = "data/test-00000-of-00001.parquet"


def _sources(run_dir: Path) -> tuple[Path, Path | None, dict[str, Any]]:
    """(curated rows, held-out rows or None, summary) of a run or stage folder; the curated rows
    are one Parquet file or a folder of parts (a streaming stage's ``kept.parquet``)."""
    summary: dict[str, Any] = {}
    if (run_dir / "summary.json").is_file():
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    dataset = Path(summary["dataset"]) if summary.get("dataset") else None
    if dataset is None or not parts.exists(dataset):
        from thresher.report.run import load_run

        try:
            final = load_run(run_dir).final
        except ThresherError:
            final = None
        dataset = final.kept_path if final is not None else run_dir / "kept.parquet"
    if not parts.exists(dataset):
        raise ThresherError(f"{run_dir}: no finished dataset to export (no kept.parquet; run the stages first)")
    held = next(iter(sorted(run_dir.glob("*/heldout.parquet"))), None)
    return dataset, held, summary


def _align(train: pl.DataFrame, test: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Both splits with the same columns in the same order (nulls where a split has none)."""
    train = train.select([c for c in train.columns if not c.startswith("_")])
    if test is None:
        return train, None
    test = test.select([c for c in test.columns if not c.startswith("_")])
    both = pl.concat([train.with_columns(pl.lit("train").alias("__split")),
                      test.with_columns(pl.lit("test").alias("__split"))], how="diagonal_relaxed")
    return (both.filter(pl.col("__split") == "train").drop("__split"),
            both.filter(pl.col("__split") == "test").drop("__split"))


def _card(run_dir: Path, out: Path, splits: dict[str, str], rows: dict[str, int]) -> tuple[str, str | None]:
    """The dataset card (the run report's text with front matter whose configs name ``splits``)
    and the report page (``report.html``, which the card names) when the run has a report."""
    import yaml

    from thresher.report.report import md_escape

    body, meta, page = "", {}, None
    try:
        from thresher.report.report import build, front_matter, render_html, render_markdown
        from thresher.report.run import load_run

        run = load_run(run_dir)
        sections = build(run)
        text = render_markdown(run, sections, out)
        page = render_html(run, sections)
        _, _, rest = text.partition("---\n")
        _, _, body = rest.partition("\n---\n")
        meta = front_matter(run, out)
    except ThresherError:
        name = md_escape(run_dir.name)
        body = f"# Dataset card: {name}\n\nMade with thresher from the stage folder {name}.\n"
    meta.setdefault("tags", ["thresher", "sft", "synthetic"])
    meta["configs"] = [{"config_name": "default",
                        "data_files": [{"split": s, "path": p.replace("00000-of-00001", "*")}
                                       for s, p in splits.items()]}]
    split_text = ", ".join(f"`{s}` ({rows[s]} rows)" for s in splits)
    note = (f"\nSplits: {split_text}. `test` holds the held-out prompts the curated rows never share a "
            "prompt with.\n" if "test" in splits else f"\nSplits: {split_text}.\n")
    card = "---\n" + yaml.safe_dump(meta, sort_keys=False).rstrip() + "\n---\n" + body.lstrip("\n").rstrip() \
        + "\n" + note
    return card, page


#: the record of what ``thresher export`` wrote into a folder (only those files are ever replaced)
EXPORT_RECORD = ".thresher-export.json"
_EXPORT_STAGING = ".thresher-export.new"


def _exported_files(out: Path) -> list[str] | None:
    """The files an earlier export wrote into ``out`` (None: thresher never exported there)."""
    try:
        data = json.loads((out / EXPORT_RECORD).read_text(encoding="utf-8"))
        files = data.get("files") if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
    if not isinstance(files, list):
        return None
    return [f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()]


def _check_export_target(out: Path, force: bool) -> list[str]:
    """The files a previous export left in ``out``; refuses a folder thresher did not export."""
    if out.exists() and not out.is_dir():
        raise ThresherError(f"{out}: is a file, not a folder; choose another --to")
    previous = _exported_files(out)
    if previous is not None or force or not out.exists():
        return previous or []
    names = sorted(e.name for e in out.iterdir() if e.name != _EXPORT_STAGING)
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise ThresherError(f"{out}: is not empty and was not written by thresher export (it holds {shown}); "
                            "choose another --to, or pass --force to add the export to it "
                            "(nothing else in it is changed)")
    return []


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> dict[str, Any]:
    """Write the hub-ready dataset folder ``out`` for ``run_dir``; returns figures.

    Each file is written in full and then renamed into place; a re-export replaces the files
    the previous export wrote (their list is kept in ``.thresher-export.json``) and never
    touches anything else. A non-empty folder thresher did not export is refused unless
    ``force`` (then the export's files are added to it; nothing else is changed or deleted).
    """
    import shutil

    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise ThresherError(f"{run_dir}: run folder not found")
    previous = _check_export_target(out, force)
    dataset, held, _ = _sources(run_dir)
    train, test = _align(parts.read(dataset), pl.read_parquet(held) if held is not None else None)
    splits = {"train": TRAIN_FILE, **({"test": TEST_FILE} if test is not None and test.height else {})}
    rows = {"train": train.height, "test": test.height if test is not None else 0}
    card, page = _card(run_dir, out, splits, rows)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / _EXPORT_STAGING
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    try:
        _write_export(tmp, out, previous, run_dir, train, test if "test" in splits else None, card, page)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": str(out), "splits": list(splits), "rows": {s: rows[s] for s in splits}}


def _write_export(tmp: Path, out: Path, previous: list[str], run_dir: Path, train: pl.DataFrame,
                  test: pl.DataFrame | None, card: str, page: str | None) -> None:
    """Write the export's files into ``tmp``, rename each into ``out``, drop what the previous
    export wrote and this one does not, and record the new list."""
    from thresher.io.atomic import honour_umask, write_text_atomic

    train.write_parquet(tmp / TRAIN_FILE)
    if test is not None:
        test.write_parquet(tmp / TEST_FILE)
    (tmp / "README.md").write_text(card, encoding="utf-8")
    if page is not None:  # the card says the plots are in report.html beside it
        (tmp / "report.html").write_text(page, encoding="utf-8")
    honour_umask(tmp)
    written = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    for rel in written:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, out / rel)
    for rel in sorted(set(previous) - set(written)):
        if (out / rel).is_file() and not (out / rel).is_symlink():
            (out / rel).unlink()
    write_text_atomic(out / EXPORT_RECORD, json.dumps({"run": str(run_dir), "files": written}, indent=2) + "\n")


def _adapter_dir(run_dir: Path, summary: dict[str, Any]) -> Path | None:
    for cand in (summary.get("adapter"), run_dir / "adapter", *sorted(run_dir.glob("*-train/adapter"))):
        if cand and Path(cand, "adapter_config.json").is_file():
            return Path(cand)
    return None


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except ImportError:
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def push_run(run_dir: str | os.PathLike, repo_id: str, *, private: bool = False,
             adapter_repo: str | None = None, api: Any = None) -> dict[str, Any]:
    """Export ``run_dir`` and upload it to the dataset repo ``repo_id`` (and the adapter to the
    model repo ``adapter_repo``); returns the repo URLs. ``api`` is an ``HfApi`` (tests pass
    their own); every failure is one line."""
    run_dir = Path(run_dir)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ThresherError(f"push: REPO_ID must be 'namespace/name', got {repo_id!r}")
    if api is None and _offline():
        raise ThresherError("push: offline (HF_HUB_OFFLINE is set); cannot upload to the Hugging Face hub")
    _, _, summary = _sources(run_dir)
    adapter = _adapter_dir(run_dir, summary) if adapter_repo else None
    if adapter_repo and adapter is None:
        raise ThresherError(f"push: {run_dir} has no trained adapter to upload")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="thresher-push-") as tmp:
        folder = Path(tmp) / "dataset"
        export_run(run_dir, folder)
        (folder / EXPORT_RECORD).unlink(missing_ok=True)  # thresher's own bookkeeping stays local
        try:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                              commit_message="Upload dataset exported by thresher")
            out["dataset"] = f"https://huggingface.co/datasets/{repo_id}"
            if adapter is not None:
                staged = _staged_adapter(adapter, Path(tmp) / "adapter", repo_id, summary)
                api.create_repo(adapter_repo, repo_type="model", private=private, exist_ok=True)
                api.upload_folder(folder_path=str(staged), repo_id=adapter_repo, repo_type="model",
                                  commit_message="Upload LoRA adapter trained by thresher")
                out["adapter"] = f"https://huggingface.co/{adapter_repo}"
        except ThresherError:
            raise
        except Exception as e:  # noqa: BLE001 - HTTP, auth, connection and offline errors
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ThresherError(f"push: cannot upload to {repo_id} ({type(e).__name__}: {first})") from None
    return out


def _staged_adapter(adapter: Path, dst: Path, dataset_repo: str, summary: dict[str, Any]) -> Path:
    """A copy of the adapter whose card links the pushed dataset and the eval verdict."""
    import shutil

    shutil.copytree(adapter, dst)
    stats_path = adapter.parent / "stats.json"
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        from thresher.train.portable import card_info, identity_from_adapter, model_card

        info = card_info(adapter.parent, stats, dataset=dataset_repo, evaluation=summary.get("eval"))
        info["run_card"] = f"https://huggingface.co/datasets/{dataset_repo}"
        (dst / "README.md").write_text(model_card(identity_from_adapter(dst, stats), info), encoding="utf-8")
    except (OSError, ValueError, ImportError):
        pass  # the card written at training time stays
    return dst
