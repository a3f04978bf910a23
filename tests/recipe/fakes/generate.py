"""Fake generate: n deterministic answers per prompt (sample k is k words longer)."""

from dataclasses import dataclass
from pathlib import Path

from thresher.io import read_table
from thresher.schema import make_rows, prompt_messages, prompt_text
from thresher.stage import StageFolder

from . import count


@dataclass(frozen=True)
class Config:
    teacher: str | None = None
    n: int = 2
    temperature: float = 0.7
    max_new_tokens: int = 32
    seed: int = 0

    def check(self) -> list[str]:
        return [] if self.n >= 1 else ["n: must be >= 1"]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    stage = StageFolder("generate", out, inputs=inputs, config=config, force=force, quiet=True)
    if stage.done:
        return stage.result()
    count("generate")
    df = read_table(inputs[0])
    teacher = Path(config.teacher).resolve().name if config.teacher else "default"
    recs = []
    for row in df.iter_rows(named=True):
        p = prompt_messages(row["messages"])
        for k in range(config.n):
            words = ["Yes, " if k == 0 else ""] + [f"answer{k} from {teacher} to {prompt_text(p)}"] + ["more"] * (3 * k)
            recs.append({"messages": p + [{"role": "assistant", "content": " ".join(words)}],
                         "category": row["category"], "source": row["source"], "parent_id": row["id"],
                         "sample_index": k, "finish_reason": "length" if k == 2 else "stop", "teacher": teacher})
    kept = make_rows(recs)
    return stage.finish(kept, None, stats={"teacher": teacher}, rows_in=df.height)
