"""Fake train: writes adapter/, merged/ and metrics.jsonl with a falling loss."""

import json
from dataclasses import dataclass
from pathlib import Path

from thresher.io import read_table
from thresher.stage import StageFolder

from . import count

#: the registry's fact for a module-only double: a train folder's rows are not the dataset
MAKES_DATA = False


@dataclass(frozen=True)
class Config:
    base: str | None = None
    max_steps: int = 4
    merge: bool = False
    seed: int = 0

    def check(self) -> list[str]:
        return [] if self.max_steps >= 0 else ["max_steps: must be >= 0"]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    stage = StageFolder("train", out, inputs=inputs, config=config, force=force, quiet=True)
    if stage.done:
        return stage.result()
    count("train")
    df = read_table(inputs[0])
    stage.path("adapter").mkdir(exist_ok=True)
    (stage.path("adapter") / "adapter_config.json").write_text(json.dumps({"rows": df.height, "steps": config.max_steps}))
    merged = stage.path("merged")
    kind = "random" if "train-random" in str(out) else "curated"
    (merged / f"{kind}-student").mkdir(parents=True, exist_ok=True)
    (merged / f"{kind}-student" / "config.json").write_text(json.dumps({"steps": config.max_steps}))
    with open(stage.path("metrics.jsonl"), "w") as fh:
        fh.writelines(json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in range(1, config.max_steps + 1))
        fh.write(json.dumps({"step": config.max_steps, "val_loss": 1.5}) + "\n")
    return stage.finish(df, None, stats={"steps": config.max_steps},
                        artefacts={"adapter": "adapter", "merged": f"merged/{kind}-student", "metrics": "metrics.jsonl"})
