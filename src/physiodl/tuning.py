"""Hyperparameter search with Optuna, from a recipe's ``[tune]`` table (`physiodl tune`).

A trial is the recipe with the trial's values set (keys as in ``--set``), trained for the one
tuned model through the normal pipeline; its objective is one of the model's metrics
(default: the validation efficiency at the operating point for detection). Every validation
epoch reports the task's monitored metric to Optuna, whose pruner stops unpromising trials.
The study lives in any storage Optuna accepts (default: SQLite in the tune folder), so
several workers (``physiodl tune`` on several machines with the same ``--storage`` and study
name) share one study.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from physiodl.errors import RecipeError
from physiodl.models.registry import model_hparams
from physiodl.outputs import write_table
from physiodl.pipeline import RunOptions, run_recipe
from physiodl.recipes import ParameterRange, RecipeConfig, TuneConfig, override_recipe
from physiodl.tasks import TASKS, check_task_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneOptions:
    """Where and how long to search (the what is in the recipe's ``[tune]`` table)."""

    data_dir: Path
    runs_dir: Path = Path("runs")
    trials: int | None = None
    storage: str | None = None
    study_name: str | None = None
    use_cache: bool = True


def tune_settings(config: RecipeConfig) -> TuneConfig:
    """The recipe's ``[tune]`` table, checked: every parameter of its space must be a valid
    override (a known recipe key, model hyperparameter or task option)."""
    if config.tune is None:
        raise RecipeError(f"recipe {config.name!r} has no [tune] table; see docs/recipes.md")
    tune = config.tune
    model = config.model(tune.model) if tune.model else config.models[0]
    for key, space in tune.space.items():
        for value in space.examples():
            try:
                check_trial_config(override_recipe(config, {key: value}, "the trial's recipe"))
            except RecipeError as err:
                raise RecipeError(f"tune.space {key!r} = {value!r}: {err}") from None
    return tune.model_copy(update={"model": model.name})


def check_trial_config(config: RecipeConfig) -> None:
    """Model hyperparameter and task option names of every model (values are checked later)."""
    for model in config.models:
        allowed = model_hparams(model.arch)
        unknown = sorted(set(model.hparams) - set(allowed))
        if unknown:
            raise RecipeError(
                f"models.{model.name}.hparams: {model.arch} has no hyperparameter "
                f"{', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
            )
        check_task_options(config.task, config.model_task_options(model))


def default_metric(config: RecipeConfig) -> tuple[str, str]:
    """The objective when ``[tune] metric`` is not given: the task's main record metric."""
    if config.task == "detection":
        return "record.efficiency", "maximize"
    if config.task == "classification":
        return "record.balanced_accuracy", "maximize"
    return "record.mae", "minimize"


def run_study(config: RecipeConfig, options: TuneOptions) -> Path:
    """Run trials into ``<runs_dir>/<recipe name>/`` and write the study's summary there."""
    import optuna

    tune = tune_settings(config)
    folder = options.runs_dir / config.name
    folder.mkdir(parents=True, exist_ok=True)
    storage = options.storage or tune.storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    name = options.study_name or tune.study or config.name
    metric, direction = tune.metric or default_metric(config)[0], tune.direction
    if tune.metric is None:
        direction = default_metric(config)[1]
    study = _open_study(
        name=name,
        storage=storage,
        direction=direction,
        sampler=_sampler(tune, config.seed),
        pruner=_pruner(tune),
    )
    study.set_user_attr("recipe", config.name)
    study.set_user_attr("metric", metric)
    trials = options.trials or tune.trials
    objective = _Objective(config, tune, metric, folder / "trials", options)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=trials, timeout=tune.timeout, catch=(RecipeError,))
    return write_study_summary(study, folder, storage)


def _open_study(*, name: str, storage: str, **settings: Any) -> Any:
    """Create the study or join it. Workers that start together race to create the storage's
    tables and the study (optuna/optuna#820, #1092, #4621): SQLite waits up to a minute for a
    lock, and a creation that lost the race is retried, then finds what the winner made."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}

    def attempt() -> Any:
        rdb = optuna.storages.RDBStorage(storage, engine_kwargs=engine)
        return optuna.create_study(study_name=name, storage=rdb, load_if_exists=True, **settings)

    for retry in range(4):
        try:
            return attempt()
        except SQLAlchemyError:
            time.sleep(0.2 + random.random() * (retry + 1))
    return attempt()


class _Objective:
    """One trial: sample the space, run the recipe for the tuned model, read its metric."""

    def __init__(
        self,
        config: RecipeConfig,
        tune: TuneConfig,
        metric: str,
        trials_dir: Path,
        options: TuneOptions,
    ) -> None:
        self.config, self.tune, self.metric = config, tune, metric
        self.trials_dir, self.options = trials_dir, options

    def __call__(self, trial: Any) -> float:
        values = {key: space.suggest(trial, key) for key, space in self.tune.space.items()}
        overrides = {**values, "name": f"trial-{trial.number:04d}"}
        config = override_recipe(self.config, overrides, f"trial {trial.number}")
        task = TASKS[config.task]
        run_options = RunOptions(
            data_dir=self.options.data_dir,
            runs_dir=self.trials_dir,
            only_models=(self.tune.model or config.models[0].name,),
            use_cache=self.options.use_cache,
            callbacks=(PruneOnMonitor(trial, task.monitor, task.monitor_mode),),
            write_report=False,
        )
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        started = time.time()
        run_dir = run_recipe(config, run_options)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("seconds", round(time.time() - started, 1))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        result = metrics["models"][run_options.only_models[0]]
        value = _lookup(result, self.metric)
        log.info("trial %d: %s = %.4f %s", trial.number, self.metric, value, values)
        return value


class PruneOnMonitor(pl.Callback):
    """Reports the monitored validation metric to an Optuna trial every epoch and stops the
    trial when the study's pruner says so (signs follow the study's direction)."""

    def __init__(self, trial: Any, monitor: str, mode: str) -> None:
        self.trial, self.monitor, self.mode = trial, monitor, mode

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the epoch's validation, whose metrics the module logs in its own epoch-end hook
        import optuna

        if self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        maximise = self.trial.study.direction == optuna.study.StudyDirection.MAXIMIZE
        if maximise != (self.mode == "max"):
            value = -value  # the pruner compares in the study's direction
        self.trial.report(value, trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {trainer.current_epoch + 1}")


def write_study_summary(study: Any, folder: Path, storage: str) -> Path:
    """``trials.csv``, ``study.json`` (best trial, importances) and ``report.html``."""
    from physiodl.report.tuning import write_tuning_report

    summary = study_summary(study, storage)
    (folder / "study.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    write_table(folder / "trials.csv", summary["trials"])
    return write_tuning_report(folder, summary)


def study_summary(study: Any, storage: str) -> dict[str, Any]:
    """Everything the report shows, as plain values."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    importances: dict[str, float] = {}
    importance_note = None
    if len(complete) >= 2 and any(t.params for t in complete):
        try:
            importances = {
                k: float(v) for k, v in optuna.importance.get_param_importances(study).items()
            }
        except (RuntimeError, ValueError) as err:
            importance_note = f"not computed: {err}"
    else:
        importance_note = "needs at least two completed trials"
    best = study.best_trial if complete else None
    return {
        "study": study.study_name,
        "storage": _redacted(storage),
        "direction": study.direction.name.lower(),
        "metric": study.user_attrs.get("metric"),
        "recipe": study.user_attrs.get("recipe"),
        "best": None
        if best is None
        else {"number": best.number, "value": best.value, "params": best.params, **best.user_attrs},
        "importances": importances,
        "importance_note": importance_note,
        "trials": [_trial_row(t) for t in study.get_trials(deepcopy=False)],
    }


def _trial_row(trial: Any) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "epochs_reported": len(trial.intermediate_values),
        **{f"param:{k}": v for k, v in trial.params.items()},
        "worker": trial.user_attrs.get("worker"),
        "seconds": trial.user_attrs.get("seconds"),
    }


def _lookup(result: dict[str, Any], metric: str) -> float:
    node: Any = result
    for part in metric.split("."):
        if not isinstance(node, dict) or part not in node:
            raise RecipeError(
                f"tune.metric = {metric!r}: no {part!r} in the model's metrics; use a "
                "key of metrics.json models.<name>, e.g. 'record.efficiency'"
            )
        node = node[part]
    value = float(node) if node is not None else math.nan
    if math.isnan(value):
        raise RecipeError(f"tune.metric = {metric!r} is not a number in this trial")
    return value


def _sampler(tune: TuneConfig, seed: int) -> Any:
    import optuna

    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials)


def _pruner(tune: TuneConfig) -> Any:
    import optuna

    if tune.pruner == "none":
        return optuna.pruners.NopPruner()
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=tune.startup_trials, n_warmup_steps=tune.warmup_epochs
    )


def _redacted(storage: str) -> str:
    """A storage URL without its password."""
    head, at, tail = storage.rpartition("@")
    if not at or "://" not in head:
        return storage
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":")[0]
    return f"{scheme}://{user}:***@{tail}"


__all__ = ["ParameterRange", "TuneOptions", "run_study", "tune_settings"]
