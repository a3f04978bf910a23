"""Training people can watch: live progress fields, plain log lines, experiment trackers.

- The progress bar shows the live loss, validation loss, learning rate and tokens/s
  (:func:`bar_fields`, :data:`BAR_EXTRA`).
- When stderr is not a terminal (nohup, Slurm, CI) a plain line goes out every ``log_every``
  optimiser steps, and after every evaluation::

      train step 40/200 loss 1.8731 val 1.9012 lr 4.8e-04 tok/s 2,310

- ``report_to`` sends the metrics where standard tools read them, like transformers'
  ``report_to``: ``tensorboard`` (the default: event files under ``RUN/tensorboard``, tags
  ``train/loss``, ``train/learning_rate``, ``train/grad_norm``, ``train/tokens_per_s``,
  ``eval/loss``), ``trackio``, ``wandb``, ``mlflow`` or ``none``. Each needs its package; a
  missing one is a one-line error naming it, before training starts.
- At the end ``trainer_state.json`` (the transformers Trainer's layout: ``global_step``,
  ``log_history``, ``best_metric``, ``best_model_checkpoint`` ...) summarises the run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

PACKAGES = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb", "mlflow": "mlflow"}
BAR_EXTRA = ("loss {task.fields[loss]} val {task.fields[val]} lr {task.fields[lr]} "
             "{task.fields[tok_s]:,.0f} tok/s")
TAGS = {"loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
        "tokens_per_s": "train/tokens_per_s", "epoch": "train/epoch", "val_loss": "eval/loss"}
TRAINER_STATE = "trainer_state.json"


def check_report_to(targets: list[str]) -> None:
    """Raise a one-line ThresherError for a target whose package is not installed."""
    for t in targets:
        pkg = PACKAGES.get(t)
        if pkg and importlib.util.find_spec(pkg) is None:
            raise ThresherError(f"--report-to {t}: the {pkg} package is not installed (pip install {pkg})")


def _num(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) or x != x else f"{x:.4f}"


def bar_fields(rec: dict[str, Any], last_val: float | None) -> dict[str, Any]:
    """Progress-bar fields for a step record."""
    lr = rec.get("lr")
    return {"loss": _num(rec.get("loss")), "val": _num(last_val),
            "lr": f"{lr:.1e}" if isinstance(lr, float) else "-", "tok_s": rec.get("tokens_per_s") or 0.0}


class Tracker:
    """Forward step and eval records to the ``report_to`` backends and print plain log lines.

    Only the main process tracks (``enabled=False`` elsewhere). ``start_step`` > 0 on resume:
    TensorBoard then purges events after it, so the curves describe one run.
    """

    def __init__(self, out: Path, targets: list[str], *, config: dict[str, Any], total_steps: int,
                 log_every: int, start_step: int = 0, enabled: bool = True, plain: bool | None = None):
        self.out = Path(out)
        self.total = total_steps
        self.log_every = max(1, log_every)
        self.enabled = enabled
        self.plain = (not sys.stderr.isatty()) if plain is None else plain
        self.last_val: float | None = None
        self.last: dict[str, Any] = {}
        self._backends: list[Any] = []
        if enabled:
            check_report_to(targets)
            for t in targets:
                self._backends.append(_BACKENDS[t](self.out, config, start_step))

    def log_step(self, rec: dict[str, Any]) -> None:
        """A training step's record (``step``, ``loss``, ``lr``, ``grad_norm``, ``tokens_per_s``)."""
        if not self.enabled:
            return
        self.last = rec
        self._send(rec)
        step = int(rec["step"])
        if self.plain and (step % self.log_every == 0 or step == self.total):
            self._line(rec)

    def log_eval(self, rec: dict[str, Any]) -> None:
        """An evaluation record (``step``, ``val_loss``)."""
        if not self.enabled:
            return
        self.last_val = rec.get("val_loss")
        self._send({"step": rec["step"], "val_loss": rec.get("val_loss")})
        if self.plain:
            from thresher.progress import info

            info(f"train eval at step {rec['step']}/{self.total}: val {_num(self.last_val)}")

    def _send(self, rec: dict[str, Any]) -> None:
        metrics = {TAGS[k]: float(v) for k, v in rec.items()
                   if k in TAGS and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
        for b in self._backends:
            b.log(metrics, int(rec["step"]))

    def _line(self, rec: dict[str, Any]) -> None:
        from thresher.progress import info

        lr = rec.get("lr")
        tps = rec.get("tokens_per_s")
        info(f"train step {rec['step']}/{self.total} loss {_num(rec.get('loss'))} val {_num(self.last_val)} "
             f"lr {lr:.1e} tok/s {tps:,.0f}" if isinstance(lr, float) and tps else
             f"train step {rec['step']}/{self.total} loss {_num(rec.get('loss'))} val {_num(self.last_val)}")

    def close(self) -> None:
        """Flush and close every backend."""
        for b in self._backends:
            b.close()
        self._backends = []


def write_trainer_state(out: Path, records: list[dict[str, Any]], state: Any, *, total_steps: int,
                        config: dict[str, Any], checkpoints: Path) -> Path:
    """``trainer_state.json`` in the transformers Trainer's layout, from ``metrics.jsonl`` records."""
    from thresher.io.atomic import write_text_atomic

    history = []
    for r in records:
        if "val_loss" in r:
            history.append({"step": r["step"], "eval_loss": r["val_loss"]})
        elif "loss" in r:
            history.append({"step": r["step"], "epoch": r.get("epoch"), "loss": r["loss"],
                            "learning_rate": r.get("lr"), "grad_norm": r.get("grad_norm"),
                            "tokens_per_s": r.get("tokens_per_s")})
    best = (checkpoints / "best") if state.best_step is not None else None
    data = {
        "global_step": state.step,
        "max_steps": total_steps,
        "epoch": next((h["epoch"] for h in reversed(history) if h.get("epoch") is not None), None),
        "num_input_tokens_seen": state.tokens,
        "trainable_tokens_seen": state.trained_tokens,
        "best_metric": state.best_val,
        "best_global_step": state.best_step,
        "best_model_checkpoint": str(best) if best is not None else None,
        "metric_for_best_model": "eval_loss" if state.best_step is not None else None,
        "should_training_stop": bool(state.stopped_early),
        "log_history": history,
        "train_batch_size": config.get("batch_size"),
        "logging_steps": config.get("log_every"),
        "save_steps": config.get("save_every"),
        "eval_steps": config.get("eval_every"),
    }
    path = Path(out) / TRAINER_STATE
    write_text_atomic(path, json.dumps(data, indent=2, default=str))
    return path


# -- backends ------------------------------------------------------------------------------

class _TensorBoard:
    def __init__(self, out: Path, config: dict[str, Any], start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.w = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=start_step or None)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.w.add_scalar(k, v, step)

    def close(self) -> None:
        self.w.flush()
        self.w.close()


class _WandB:
    def __init__(self, out: Path, config: dict[str, Any], start_step: int):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "thresher"), name=out.name,
                              dir=str(out), config=config, resume="allow")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, out: Path, config: dict[str, Any], start_step: int):
        import mlflow

        self.mlflow = mlflow
        mlflow.start_run(run_name=out.name)
        mlflow.log_params({k: str(v)[:250] for k, v in config.items()})

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class _Trackio:
    def __init__(self, out: Path, config: dict[str, Any], start_step: int):
        import trackio

        self.trackio = trackio
        trackio.init(project=os.environ.get("TRACKIO_PROJECT", "thresher"), name=out.name, config=config)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.trackio.log(metrics, step=step)

    def close(self) -> None:
        self.trackio.finish()


_BACKENDS = {"tensorboard": _TensorBoard, "wandb": _WandB, "mlflow": _MLflow, "trackio": _Trackio}
