"""The filter stage: keep the good rows and explain every dropped one.

Rules run in this order, each on the rows the previous ones kept, and a dropped row's
``drop_reason`` and ``drop_code`` name the first rule that dropped it:

1. row rules, one entry each in :data:`.row_rules.RULES` (name, drop code, on, check): on
   the response, empty, truncated (``finish_reason == "length"``), too short / long
   (characters, tokens), repeated n-grams, junk, markup and boilerplate, refusal phrases and
   patterns, a cut-off answer, wrong language, echo of the prompt (overlap, and novelty: the
   text rules of :mod:`.text_rules`);
2. thresholds: ``min_scores`` / ``max_scores`` map a score column to a limit (or ``auto``); then the
   verified-distillation rules: ``only_passing`` (keep the samples a verifier passed: with
   n samples per prompt, "at least one correct" keeps the passing samples of the prompts that
   have one) and ``min_passrate`` / ``max_passrate`` on the prompt's pass rate (``passrate_by``,
   default ``score_passrate``): "hard but solvable" keeps the prompts in the range;
3. ``top_fraction`` or ``top_k`` by ``top_by``, globally or ``per_category``;
4. best-of-n: ``best_of`` rows per ``parent_id`` by ``best_by``, with an optional ``margin``.

``normalize: zscore | rank | robust`` first adds per-category normalised copies of the score
columns (``score_x_z``, ``score_x_rank`` or ``score_x_rz``: median/MAD with small categories
shrunk toward the global statistics) that any rule may name, so one threshold means the same
in every category. ``combine`` then adds columns that are the mean of score columns
(``score_fit: [score_relevance_rz, score_gain_rz]``), which the rules may name too. A limit
``auto`` is placed from the scores (:mod:`.autocut`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from thresher.errors import ConfigError, ThresherError
from thresher.executor import ROW_INDEX, RowStage, StageContext, run_stage
from thresher.io.inputs import ReadOptions
from thresher.schema import DROP_COLUMNS
from thresher.stage import StageResult, dropped_frame

from . import heuristics as H
from . import row_rules
from .rules import NO_SCORE, NORMALIZE_SUFFIX, Reason, best_of, combined, normalize, threshold, top


def _iso(code: Any) -> bool:
    return isinstance(code, str) and len(code) in (2, 3) and code.isalpha() and code.islower()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Config:
    """Options of ``thresher curate filter`` (recipe keys are the field names)."""

    # score rules
    min_scores: dict[str, float | str] = field(default_factory=dict)
    """Drop rows whose COL is below VALUE (e.g. score_loglik=-2.5, or auto: a cut placed from the scores); a column -> limit mapping."""
    max_scores: dict[str, float | str] = field(default_factory=dict)
    """Drop rows whose COL is above VALUE (or auto); a column -> limit mapping."""
    normalize: Literal["none", "zscore", "rank", "robust"] = "none"
    """Add per-category score_X_z / score_X_rank / score_X_rz (median/MAD, small categories shrunk to the global) columns."""
    shrink: float = 20.0
    """normalize robust: pseudo-rows of the global median/MAD mixed into each category's (0: categories alone)."""
    combine: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Add a column NAME = the mean of score columns, e.g. score_fit: [score_relevance_rz, score_gain_rz]
    (two partly independent signals cut once on their mean), that any rule may name; a name -> columns mapping."""
    top_fraction: float | None = None
    """Keep this fraction of the rows, by top_by."""
    top_k: int | None = None
    """Keep this many rows, by top_by."""
    top_by: str | None = None
    """Score column for top_fraction / top_k."""
    per_category: bool = False
    """Apply top_fraction / top_k in each category."""
    best_of: int | None = None
    """Keep the best K samples per parent_id, by best_by."""
    best_by: str | None = None
    """Score column for best_of."""
    margin: float = 0.0
    """best_of keeps a group only if its K-th beats the runner-up by this."""
    # verified distillation
    only_passing: str | None = None
    """Keep only the samples whose verifier column (e.g. score_m from verify:math) is a pass (1);
    prompts without a correct sample lose all their rows (rejection sampling)."""
    min_passrate: float | None = None
    """Keep prompts whose pass rate (passrate_by) is at least this, e.g. 0.1 (solvable)."""
    max_passrate: float | None = None
    """Keep prompts whose pass rate (passrate_by) is at most this, e.g. 0.75 (not too easy;
    with a student pass rate: drop the prompts the student already solves)."""
    passrate_by: str = "score_passrate"
    """The pass-rate column min_passrate / max_passrate read (from curate score's passrate:...)."""
    # heuristics
    drop_empty: bool = True
    """Drop empty responses."""
    drop_truncated: bool = True
    """Drop rows with finish_reason=length."""
    min_chars: int = 0
    """Drop responses shorter than this many characters."""
    max_chars: int | None = None
    """Drop responses longer than this many characters."""
    min_tokens: int = 0
    """Drop responses shorter than this many tokens."""
    max_tokens: int | None = None
    """Drop responses longer than this many tokens."""
    tokenizer: str | None = None
    """Tokenizer (folder or model) for token counts; default counts words and marks."""
    trust_remote_code: bool = False
    """Run the tokenizer folder's own Python code (auto_map); only for models you trust."""
    max_repeat_ratio: float | None = None
    """Drop responses whose repeated word n-gram share exceeds this (e.g. 0.3)."""
    ngram: int = 3
    """n for max_repeat_ratio."""
    drop_refusals: bool = False
    """Drop responses containing refusal phrases (and, with refusal_patterns, refusal and "as an AI" patterns)."""
    refusal_phrases: tuple[str, ...] = H.DEFAULT_REFUSALS
    """Refusal/boilerplate phrases (replace the built-in list)."""
    refusal_patterns: bool = True
    """With drop_refusals, also match the built-in refusal and disclaimer patterns ("I'm afraid I can't answer that")."""
    drop_cut_off: bool = False
    """Drop answers cut off mid-way: unclosed code fence, bracket or quote, a dangling last word, no end punctuation."""
    drop_markup: bool = False
    """Drop answers with HTML tags, HTTP error pages, cookie/subscribe/login notices or template placeholders."""
    drop_junk: bool = False
    """Drop junk answers: no letters, a placeholder value (null, undefined), a character run, an encoded blob, keyboard mash."""
    min_novelty: float | None = None
    """Drop echoes: answers whose share of content words not in the question is below this (e.g. 0.2)."""
    language: str | None = None
    """Drop responses not in this language (ISO 639-1, e.g. en)."""
    language_min_letters: int = 20
    """Shorter responses are not language-checked."""
    language_min_prob: float = 0.5
    """language drops a response only when another language is this likely."""
    language_candidates: tuple[str, ...] = H.COMMON_LANGUAGES
    """Languages the identifier chooses among (an empty list means all 142 known)."""
    max_echo_ratio: float | None = None
    """Drop responses whose 3-grams repeat the prompt above this share (e.g. 0.8)."""

    def score_columns(self) -> list[str]:
        """Every column a score rule reads."""
        cols = list(self.min_scores) + list(self.max_scores)
        cols += [c for c in (self.top_by, self.best_by, self.only_passing) if c]
        if self.min_passrate is not None or self.max_passrate is not None:
            cols.append(self.passrate_by)
        return list(dict.fromkeys(cols))

    def check(self) -> list[str]:
        p: list[str] = []
        for key, table in (("min_scores", self.min_scores), ("max_scores", self.max_scores)):
            for col, v in table.items():
                if not _is_number(v) and v != "auto":
                    p.append(f"{key}.{col}: threshold {v!r} is not a number (or auto)")
        for name in ("min_passrate", "max_passrate"):
            v = getattr(self, name)
            if v is not None and (not _is_number(v) or not 0 <= v <= 1):
                p.append(f"{name}: must be in [0, 1], got {v!r}")
        if (_is_number(self.min_passrate) and _is_number(self.max_passrate)
                and self.min_passrate > self.max_passrate):
            p.append(f"min_passrate, max_passrate: the range is empty ({self.min_passrate:g} > {self.max_passrate:g})")
        if self.top_fraction is not None and self.top_k is not None:
            p.append("top_fraction, top_k: give one, not both")
        if self.top_fraction is not None and not 0 < self.top_fraction <= 1:
            p.append("top_fraction: must be in (0, 1]")
        if self.top_k is not None and self.top_k < 1:
            p.append("top_k: must be >= 1")
        if (self.top_fraction is not None or self.top_k is not None) and not self.top_by:
            p.append("top_by: needed with top_fraction / top_k (a score column)")
        if self.per_category and self.top_fraction is None and self.top_k is None:
            p.append("per_category: applies to top_fraction / top_k, and neither is set")
        if self.best_of is not None and self.best_of < 1:
            p.append("best_of: must be >= 1")
        if self.best_of is not None and not self.best_by:
            p.append("best_by: needed with best_of (a score column)")
        if self.margin < 0:
            p.append("margin: must be >= 0")
        if not _is_number(self.shrink) or self.shrink < 0:
            p.append("shrink: must be >= 0")
        p += combine_problems(self.combine)
        if any(not str(ph).strip() for ph in self.refusal_phrases):
            p.append("refusal_phrases: an empty phrase would match (and drop) every response")
        if self.margin > 0 and self.best_of is None:
            p.append("margin: applies to best_of, which is not set")
        for name in ("min_chars", "min_tokens", "language_min_letters"):
            if getattr(self, name) < 0:
                p.append(f"{name}: must be >= 0")
        for name, lo in (("max_chars", "min_chars"), ("max_tokens", "min_tokens")):
            hi = getattr(self, name)
            if hi is not None and hi < max(1, getattr(self, lo)):
                p.append(f"{name}: must be >= max(1, {lo})")
        for name in ("max_repeat_ratio", "max_echo_ratio", "min_novelty"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 1:
                p.append(f"{name}: must be in [0, 1]")
        if not 0 <= self.language_min_prob <= 1:
            p.append("language_min_prob: must be in [0, 1]")
        bad = [x for x in self.language_candidates if not _iso(x)]
        if bad:
            p.append(f"language_candidates: not ISO 639 codes: {', '.join(map(repr, bad))}")
        if self.ngram < 1:
            p.append("ngram: must be >= 1")
        if self.language is not None and not _iso(self.language):
            p.append(f"language: {self.language!r} is not an ISO 639-1 code such as 'en'")
        return p + row_rules.config_problems(self)


def combine_problems(combine: Any) -> list[str]:
    """What is wrong with a ``combine`` mapping (NAME -> two or more score columns)."""
    if not isinstance(combine, dict):
        return [f"combine: expected a mapping of NAME to columns, got {combine!r}"]
    p: list[str] = []
    for name, cols in combine.items():
        if not isinstance(name, str) or not name.startswith("score_"):
            p.append(f"combine.{name}: the name must start with score_ (a score column)")
        if isinstance(cols, str) or not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
            p.append(f"combine.{name}: expected a list of score columns, got {cols!r}")
            continue
        if len(set(cols)) < 2:
            p.append(f"combine.{name}: needs two or more different columns, got {list(cols)!r}")
        if name in cols:
            p.append(f"combine.{name}: a combined column cannot average itself")
        nested = [c for c in cols if c in combine and c != name]
        if nested:
            p.append(f"combine.{name}: {', '.join(map(repr, nested))} is itself a combined column")
    return p


def _combined(df, config: Config):
    """``df`` with the ``combine`` columns added (after the normalised ones they read)."""
    if not config.combine:
        return df
    return df.with_columns([combined(df, name, cols) for name, cols in config.combine.items()])


def _check_columns(df, config: Config, source: str) -> None:
    """Raise a one-line error when a rule names a column the table lacks."""
    present = set(df.columns)
    derived = {c + NORMALIZE_SUFFIX[config.normalize]: c for c in present
               if config.normalize != "none" and c.startswith("score_")}
    clash = [n for n in config.combine if n in present]
    if clash:
        raise ThresherError(f"{source}: combine: the table already has a column {clash[0]!r}; "
                            "name the combined column differently")
    sources = [c for cols in config.combine.values() for c in cols]
    missing = [c for c in dict.fromkeys(sources) if c not in present and c not in derived]
    if missing:
        raise ThresherError(f"{source}: combine: no column {', '.join(repr(c) for c in missing)} to combine "
                            f"(score columns: {', '.join(sorted(c for c in present if c.startswith('score_')))})")
    for c in dict.fromkeys(sources):
        if not df[derived.get(c, c)].dtype.is_numeric():
            raise ThresherError(f"{source}: column {derived.get(c, c)!r} is {df[derived.get(c, c)].dtype}, not numeric")
    derived.update({n: None for n in config.combine})
    missing = [c for c in config.score_columns() if c not in present and c not in derived]
    if missing:
        have = sorted(c for c in present if c.startswith("score_")) or ["none"]
        hint = ""
        if config.normalize == "none" and any(c.endswith(("_z", "_rank", "_rz")) for c in missing):
            hint = "; normalised columns need normalize: zscore, rank or robust"
        raise ThresherError(
            f"{source}: no column {', '.join(repr(c) for c in missing)} to filter on "
            f"(score columns: {', '.join(have)}); run `thresher curate score` first{hint}"
        )
    for c in config.score_columns():
        base = derived.get(c, c)
        if base is None:  # a combined column: its sources were checked above
            continue
        if c in present and not df[c].dtype.is_numeric():
            raise ThresherError(f"{source}: column {c!r} is {df[c].dtype}, not numeric")
        if base != c and not df[base].dtype.is_numeric():
            raise ThresherError(f"{source}: column {base!r} is {df[base].dtype}, not numeric")
    if config.best_of is not None and "parent_id" not in present:
        raise ThresherError(
            f"{source}: best_of needs a parent_id column (samples of the same prompt)"
        )


def heuristic_tools(config: Config) -> dict[Any, Any]:
    """The row rules' tools (a token counter, a language identifier: only those the config
    uses); built once per worker."""
    return row_rules.build_tools(config)


def heuristic_reasons(df, config: Config, tools: dict[Any, Any] | None = None) -> list[Reason | None]:
    """First failing row rule per row (None when the row passes them all): the rules of
    :data:`.row_rules.RULES`, each reason carrying its rule's ``drop_code``."""
    return row_rules.row_reasons(df, config, tools)


def drop_code(reason: str) -> str:
    """The ``drop_code`` of a filter reason (``too-short-chars``, ``below-min`` ...): the code
    its rule wrote with it. A reason no rule made has none (an error, never a guess)."""
    code = getattr(reason, "code", None)
    if not isinstance(code, str):
        raise ValueError(f"filter reason {str(reason)!r} carries no drop code (reasons come from a rule)")
    return code


def _dropped(df, reasons: list[str | None]):
    import polars as pl

    mask = pl.Series([r is None for r in reasons], dtype=pl.Boolean)
    why = [r for r in reasons if r is not None]
    return df.filter(mask), dropped_frame(df.filter(~mask), "filter", pl.Series(why, dtype=pl.String),
                                          pl.Series([drop_code(r) for r in why], dtype=pl.String))


class FilterStage(RowStage):
    """Row-wise heuristics per batch; score rules (which rank or normalise) in :meth:`finalize`."""

    name = "filter"
    config_cls = Config
    cli = "thresher.curate.filter.cli:filter_cmd"
    cli_group = "curate"
    summary = "Keep good rows; every dropped row keeps a reason."
    batch_rows = 20_000
    position = 30

    def models(self, config: Config) -> list[tuple[str, str | None]]:
        """The tokenizer, when a token-length rule is on."""
        uses = config.min_tokens > 0 or config.max_tokens is not None
        return [("tokenizer", config.tokenizer)] if uses and config.tokenizer else []

    def reads(self, config: Config) -> list[tuple[str, str]]:
        """The score columns of the thresholds, top_by/best_by (parent_id for best_of)."""
        out = [(f"min_scores.{k}", k) for k in config.min_scores] + [(f"max_scores.{k}", k) for k in config.max_scores]
        out += [(opt, v) for opt in ("top_by", "best_by") if (v := getattr(config, opt, None))]
        # a combined column is made here from its sources: those are what the stage reads
        out = [(opt, col) for opt, col in out if col not in config.combine]
        out += [(f"combine.{name}", col) for name, cols in config.combine.items() for col in cols]
        suffix = {"zscore": "_z", "rank": "_rank", "robust": "_rz"}.get(config.normalize)
        if suffix:  # score_x_z / score_x_rank are made by the filter itself from score_x
            out = [(opt, col.removesuffix(suffix)) for opt, col in out]
        if config.best_of:
            out.append(("best_of", "parent_id"))
        return out

    def writes(self, config: Config) -> set[str]:
        """The combined columns (``combine``)."""
        return set(config.combine)

    def check(self, table, config: Config, where: str) -> None:
        _check_columns(table, config, where)

    def streams(self, config: Config) -> bool:
        """Always: the score rules need only the score columns (:meth:`finalize_columns`)."""
        return True

    def decides(self, config: Config) -> bool:
        """When a score rule, a normalisation or a combined column is configured: the
        heuristics alone are decided per batch."""
        return bool(config.score_columns() or config.normalize != "none" or config.combine)

    def finalize_columns(self, config: Config, columns: list[str]) -> list[str]:
        """The score columns (normalised and summarised), and what the rules read (none when
        the stage :meth:`decides` nothing)."""
        if not self.decides(config):
            return []
        read = [c for _, c in self.reads(config)] + [c for c in (config.only_passing, config.passrate_by) if c]
        return [c for c in columns if c.startswith("score_") or c in read]

    def setup(self, config: Config, where: str = "", stage=None) -> StageContext:
        ctx = super().setup(config, where, stage)
        ctx.state["tools"] = heuristic_tools(config)
        return ctx

    def process_batch(self, table, context: StageContext):
        return _dropped(table, heuristic_reasons(table, context.config, context.state["tools"]))

    def finalize(self, kept, dropped, context: StageContext):
        import polars as pl

        config: Config = context.config
        if not self.decides(config):  # the heuristics decided per batch: counts only
            return kept, dropped, {"dropped_by_rule": {"heuristics": dropped.height}, "thresholds": thresholds(config)}
        if config.normalize != "none":  # over every row read, as the heuristics see them
            full = pl.concat([kept, dropped.drop(DROP_COLUMNS, strict=False)], how="diagonal_relaxed")
            full = full.sort(ROW_INDEX) if ROW_INDEX in full.columns else full
            normed = _normalized(full, config)
            norm = normed.select(ROW_INDEX, *[c for c in normed.columns if c not in full.columns])
            kept = kept.join(norm, on=ROW_INDEX, how="left", maintain_order="left")
            dropped = dropped.join(norm, on=ROW_INDEX, how="left", maintain_order="left")
        kept = _combined(kept, config)  # the rules' rows (rows the heuristics dropped need no score)
        kept, more, stats = score_rules(kept, config)
        stats["dropped_by_rule"] = {"heuristics": dropped.height, **stats["dropped_by_rule"]}
        stats["thresholds"] = thresholds(config, stats.get("auto_thresholds"))
        return kept, pl.concat([dropped, more], how="diagonal_relaxed"), stats


def thresholds(config: Config, autos: dict | None = None) -> dict[str, list[float]]:
    """The score limits of ``config`` by column (declared in stats for the report); ``auto``
    ones as placed (``autos``: the ``auto_thresholds`` stats)."""
    out: dict[str, list[float]] = {}
    for table in (config.min_scores, config.max_scores):
        for col, v in table.items():
            if v == "auto":
                v = (autos or {}).get(col, {}).get("threshold")
                if v is None:
                    continue
            out.setdefault(col, []).append(float(v))
    for v in (config.min_passrate, config.max_passrate):
        if v is not None:
            out.setdefault(config.passrate_by, []).append(float(v))
    return out


def _normalized(df, config: Config):
    cols = [c for c in df.columns if c.startswith("score_") and df[c].dtype.is_numeric()
            and not c.endswith(("_z", "_rank", "_rz"))]
    return df.with_columns([normalize(df, c, config.normalize, shrink=config.shrink) for c in cols])


def apply_rules(df, config: Config) -> tuple[Any, list[str | None], dict]:
    """Every rule over ``df`` at once (heuristics, then score rules on the rows they keep);
    returns ``(table with normalised columns, reason or None per row, stats)``."""
    if config.normalize != "none":
        df = _normalized(df, config)
    df = _combined(df, config)
    reasons = heuristic_reasons(df, config)
    alive = [i for i, r in enumerate(reasons) if r is None]
    later, stats = score_reasons(df[alive], config)
    for i, r in zip(alive, later):
        reasons[i] = r
    stats["dropped_by_rule"] = {"heuristics": df.height - len(alive), **stats["dropped_by_rule"]}
    return df, reasons, stats


def score_rules(df, config: Config):
    """The score rules on rows that passed the heuristics (normalised columns present);
    returns ``(kept, dropped, stats)``."""
    reasons, stats = score_reasons(df, config)
    kept, dropped = _dropped(df, reasons)
    return kept, dropped, stats


def score_reasons(df, config: Config) -> tuple[list[str | None], dict]:
    """Thresholds, then top fraction / top k, then best-of: first reason per row, and stats."""
    import polars as pl

    reasons: list[str | None] = [None] * df.height
    counts: dict[str, int] = {}

    def merge(name: str, new: list[str | None]) -> None:
        n = 0
        for i, r in enumerate(new):
            if r is not None and reasons[i] is None:
                reasons[i] = r
                n += 1
        counts[name] = n

    def alive() -> list[bool]:
        return [r is None for r in reasons]

    autos: dict[str, dict] = {}
    for op, table in (("min", config.min_scores), ("max", config.max_scores)):
        for col, limit in table.items():
            values = df[col].to_list()
            if limit == "auto":
                from .autocut import auto_threshold

                live = [v for v, a in zip(values, alive()) if a]
                autos[col] = dict(auto_threshold(live, op), op=op)
                limit = autos[col]["threshold"]
                if limit is None:
                    counts[f"{op}:{col}"] = 0
                    continue
            merge(f"{op}:{col}", threshold(values, alive(), col, float(limit), op))
    _verified_rules(df, config, merge, alive)
    if config.top_by and (config.top_fraction is not None or config.top_k is not None):
        groups = None
        if config.per_category:
            groups = df["category"].to_list() if "category" in df.columns else [None] * df.height
        merge("top", top(df[config.top_by].to_list(), alive(), config.top_by,
                         fraction=config.top_fraction, k=config.top_k, groups=groups))
    if config.best_of is not None and config.best_by:
        merge("best_of", best_of(df[config.best_by].to_list(), alive(),
                                 df["parent_id"].to_list(), config.best_by,
                                 k=config.best_of, margin=config.margin))
    stats: dict[str, Any] = {"dropped_by_rule": counts}
    if autos:
        stats["auto_thresholds"] = autos
    for col in config.score_columns():
        vals = df[col].cast(pl.Float64)
        kept_vals = vals.filter(pl.Series(alive()))
        stats.setdefault("columns", {})[col] = {
            "all": _describe(vals),
            "kept": _describe(kept_vals),
        }
    return reasons, stats


def _verified_rules(df, config: Config, merge, alive) -> None:
    """only_passing, then the pass-rate range (reasons ``not_passing: ...``, ``passrate: ...``)."""
    if config.only_passing:
        col = config.only_passing
        merge("only_passing", [None if r is None else Reason(f"not_passing: {r}", "not-passing")
                               for r in threshold(df[col].to_list(), alive(), col, 0.5, "min")])
    for op, limit in (("min", config.min_passrate), ("max", config.max_passrate)):
        if limit is not None:
            col = config.passrate_by
            merge(f"{op}_passrate", [None if r is None else Reason(f"passrate: {r}", _passrate_code(r))
                                     for r in threshold(df[col].to_list(), alive(), col, float(limit), op)])


def _passrate_code(r: Reason) -> str:
    """``passrate-below-min`` / ``passrate-above-max``, or ``no-score`` for a null rate."""
    return NO_SCORE if r.code == NO_SCORE else f"passrate-{r.code}"


def _describe(s) -> dict:
    s = s.drop_nulls().drop_nans()
    if s.len() == 0:
        return {"n": 0}
    return {"n": s.len(), "mean": float(s.mean()), "min": float(s.min()), "max": float(s.max())}


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False,
        read: ReadOptions | dict | None = None) -> StageResult:
    """Filter the rows of ``inputs``; write kept/dropped (with reasons) to ``out``."""
    problems = config.check()
    if problems:
        raise ConfigError(problems)
    return run_stage(FilterStage(), inputs, out, config, force=force, read=read)
