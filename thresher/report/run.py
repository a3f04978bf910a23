"""Reading a run directory: its stage folders, their stats, tables and extra artefacts.

Works on a recipe run (``recipe.yaml`` lists the stages) and on any folder of stage
folders (``NN-<stage>`` holding ``stats.json``) made by separate CLI commands.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from thresher.errors import ThresherError
from thresher.io import parts
from thresher.registry import data_stages
from thresher.stage_folder import damage, read_manifest, recover

STAGE_DIR = re.compile(r"^(\d{2})-([a-z_]+)$")


@dataclass
class StageDir:
    """One stage folder of a run."""

    name: str
    path: Path
    stats: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return self.path.name

    @property
    def kept_path(self) -> Path:
        """The stage's kept rows: one Parquet file, or a folder of parts (a streaming stage)."""
        return self.path / "kept.parquet"

    @property
    def dropped_path(self) -> Path:
        return self.path / "dropped.parquet"

    @property
    def finished(self) -> bool:
        return (read_manifest(self.path) or {}).get("status") == "done"

    def kept(self) -> pl.DataFrame | None:
        return _read_rows(self.kept_path)

    def dropped(self) -> pl.DataFrame | None:
        return _read_rows(self.dropped_path)


def _read_rows(path: Path) -> pl.DataFrame | None:
    """A stage's rows (one Parquet file or a folder of parts), None when absent; an unreadable
    one is a one-line error naming it."""
    if not parts.exists(path):
        return None
    try:
        return parts.read(path)
    except Exception as e:  # noqa: BLE001 - polars raises several kinds for a torn or foreign file
        from thresher.errors import ThresherError

        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ThresherError(f"{path}: cannot be read as Parquet ({first}); rerun the stage to recompute it") from None


@dataclass
class Run:
    """A run directory with its stages in order."""

    path: Path
    stages: list[StageDir]
    recipe: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def by_name(self, name: str) -> list[StageDir]:
        return [s for s in self.stages if s.name == name]

    @property
    def data_stages(self) -> list[StageDir]:
        """Finished stages whose kept.parquet is (a version of) the dataset."""
        return [s for s in self.stages if s.name in data_stages() and parts.exists(s.kept_path)]

    @property
    def final(self) -> StageDir | None:
        """The stage holding the final curated dataset."""
        data = self.data_stages
        return data[-1] if data else None

    @property
    def lineage(self) -> list[StageDir]:
        """The data stages the final dataset went through, in order: a stage's rows come from
        its recipe ``input`` when it names one (a side branch, such as the student's answers,
        is not on the path), else from the data stage before it."""
        data = self.data_stages
        if not data or not self.recipe.get("stages"):
            return data
        from thresher.recipe.spec import resolve_stage_ref

        names = [next(iter(e)) if isinstance(e, dict) and e else None for e in self.recipe["stages"]]
        by_index = {int(s.folder[:2]) - 1: s for s in data}  # 00-inputs is -1
        path, i = [], int(data[-1].folder[:2]) - 1
        while i in by_index:
            stage = by_index[i]
            path.append(stage)
            ref = stage.config.get("input") if isinstance(stage.config, dict) else None
            j, _ = resolve_stage_ref(ref, names, i) if isinstance(ref, str) else (None, None)
            i = j if j is not None else max((k for k in by_index if k < i), default=-2)
        return path[::-1]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _damaged(folder: Path) -> str | None:
    """Why a stage folder cannot be reported on: a result file (or part) the manifest records
    is missing, a part it does not record was added, or a file differs in size and no longer
    reads (a file edited by hand still reads)."""
    recover(folder)  # finish (or undo) a result swap a kill interrupted
    why = damage(folder, hashes=False)
    if why is None:
        return None
    files = (read_manifest(folder) or {}).get("files")
    files = files if isinstance(files, dict) else {}
    for name in ("kept.parquet", "dropped.parquet"):
        p = folder / name
        recorded = [rel for rel in files if rel == name or rel.startswith(name + "/")]
        if any(not (folder / rel).exists() for rel in recorded) or (name in why and not parts.exists(p)):
            return why
        if p.is_dir() and any(f"{name}/{f.name}" not in files for f in parts.files(p)):
            return why
        try:
            if parts.exists(p):
                parts.scan(p).select(pl.len()).collect()
        except Exception:  # noqa: BLE001 - polars raises several kinds for a torn file
            return why
    return None


def load_run(path: str | Path) -> Run:
    """Read a run directory; raise a one-line error when it is not one."""
    import yaml

    root = Path(path)
    if not root.is_dir():
        raise ThresherError(f"{path}: run directory not found")
    recipe: dict[str, Any] = {}
    if (root / "recipe.yaml").exists():
        try:
            recipe = yaml.safe_load((root / "recipe.yaml").read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            recipe = {}
    stages: list[StageDir] = []
    if recipe.get("stages"):
        folders = [("inputs", root / "00-inputs", {})]
        for i, entry in enumerate(recipe["stages"]):
            name, opts = next(iter(entry.items()))
            folders.append((name, root / f"{i + 1:02d}-{name}", opts or {}))
        for name, folder, opts in folders:
            if folder.is_dir():
                stages.append(StageDir(name, folder, _read_json(folder / "stats.json"), opts))
    else:
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and STAGE_DIR.match(p.name)):
            if (folder / "stats.json").exists() or (folder / "manifest.json").exists():
                name = STAGE_DIR.match(folder.name).group(2)  # type: ignore[union-attr]
                stages.append(StageDir(name, folder, _read_json(folder / "stats.json")))
    if not stages:
        raise ThresherError(f"{path}: not a run directory (no stage folders like 01-generate)")
    for s in stages:
        why = _damaged(s.path)
        if why:
            raise ThresherError(f"stage {s.folder} of {path} is damaged: {why}; "
                                "rerun the stage (thresher run recomputes it)")
    return Run(root, stages, recipe, _read_json(root / "versions.json"), _read_json(root / "summary.json"))


def response_lengths(df: pl.DataFrame) -> pl.Series:
    """Character length of each row's final assistant turn (0 when it has none)."""
    last = pl.col("messages").list.last()
    return df.select(
        pl.when(last.struct.field("role") == "assistant")
        .then(last.struct.field("content").str.len_chars())
        .otherwise(0)
        .alias("len")
    )["len"]


def has_responses(df: pl.DataFrame) -> bool:
    """True when some row ends with an assistant turn."""
    if df.height == 0:
        return False
    return bool(df.select((pl.col("messages").list.last().struct.field("role") == "assistant").any()).item())


def responses(df: pl.DataFrame) -> pl.Series:
    """The final assistant turn's text of each row ("" when none)."""
    last = pl.col("messages").list.last()
    return df.select(
        pl.when(last.struct.field("role") == "assistant").then(last.struct.field("content")).otherwise(pl.lit(""))
        .alias("r")
    )["r"]
