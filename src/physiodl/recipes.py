"""Recipes: TOML files validated into a `RecipeConfig` before any work starts.

A recipe names a dataset, its features, a split, a training setup and one or more models.
Every table forbids unknown keys, so a typo is an error that names the key, not a new key.
Per-model ``train`` and ``features`` tables are partial overrides of the recipe's own.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from physiodl.errors import RecipeError
from physiodl.transforms.balance import Balance

TaskKind = Literal["classification", "regression", "detection", "forecasting"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Which dataset to load, from where, and with which loader options."""

    dataset: str
    path: str | None = None
    classes: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class SplitConfig(_Strict):
    """How records are divided into training, validation (and test) parts.

    ``kind = "kfold"`` without ``fold`` is cross-validation: every model is trained ``k``
    times, each fold validating on its own part (whole subjects when the data has groups).
    ``test_groups`` holds those subjects out as a fixed test part (else a ``test`` share).
    """

    kind: Literal["random", "stratified", "grouped", "kfold", "chronological"] = "stratified"
    validation: float = Field(0.2, gt=0.0, lt=1.0)
    test: float = Field(0.0, ge=0.0, lt=1.0)
    test_groups: list[str] | None = None
    k: int | None = Field(None, ge=2)
    fold: int | None = Field(None, ge=0)
    train_size: int | None = Field(
        None, ge=1, description="train on the first this many training records (size studies)"
    )


class SpectrogramConfig(_Strict):
    nperseg: int = Field(32, ge=4)
    noverlap: int = Field(4, ge=0)
    log: bool = False

    @model_validator(mode="after")
    def _overlap_below_segment(self) -> SpectrogramConfig:
        if self.noverlap >= self.nperseg:
            raise ValueError(f"noverlap ({self.noverlap}) must be below nperseg ({self.nperseg})")
        return self


class ChunkConfig(_Strict):
    """Windows the model sees: ``length`` time steps of the (feature) signal.

    ``random = true`` draws a fresh random window per training record every epoch (the seed's
    random-chunk augmentation); otherwise all non-overlapping windows are used. Evaluation slides
    windows of the same length with ``eval_stride`` (default: the length) over each record and
    averages their outputs per record; ``eval_whole = true`` instead gives each record's score
    from one pass over the whole record (for models that pool over time, e.g. `ResNet1d`), while
    the chunk-level scores still come from the windows.
    """

    length: int | None = Field(40, ge=1)
    random: bool = False
    stride: int | None = Field(None, ge=1)
    eval_stride: int | None = Field(None, ge=1)
    eval_whole: bool = False

    @field_validator("length", mode="before")
    @classmethod
    def _false_means_whole(cls, value: Any) -> Any:
        """TOML has no null: ``length = false`` means whole records."""
        return None if value is False else value

    def evaluation(self) -> dict[str, Any]:
        """Keyword arguments of `physiodl.evaluation.evaluate` and `predict_records`."""
        return {"length": self.length, "stride": self.eval_stride, "whole_records": self.eval_whole}


class FeaturesConfig(_Strict):
    """Preprocessing applied to every record, identically at training and prediction time.

    ``channels`` keeps these input channels, by name and in this order (default: all).
    ``rr_intervals`` appends the RR-interval track of the first channel (an ECG) as one more
    channel, after band-passing (`physiodl.transforms.rr_intervals`).
    """

    channels: list[str] | None = None
    resample: float | None = Field(None, gt=0)
    bandpass: tuple[float, float] | None = None
    spectrogram: SpectrogramConfig | None = None
    rr_intervals: bool = False
    normalise: Literal["per_frequency", "per_channel", "global", "none"] = "per_channel"
    chunks: ChunkConfig = ChunkConfig()
    balance: Balance = "oversample"

    @field_validator("channels", "resample", "spectrogram", "bandpass", mode="before")
    @classmethod
    def _false_means_off(cls, value: Any) -> Any:
        """TOML has no null: ``spectrogram = false`` in a model override turns the step off."""
        return None if value is False else value

    @model_validator(mode="after")
    def _rr_intervals_on_raw_signals(self) -> FeaturesConfig:
        if self.rr_intervals and self.spectrogram is not None:
            raise ValueError("rr_intervals needs the raw signal: turn off the spectrogram")
        return self


class OptimizerConfig(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class AugmentConfig(_Strict):
    """Training-time augmentation of each batch (see `physiodl.transforms.augment`)."""

    scale: float = Field(0.0, ge=0.0, lt=1.0)
    flip: bool = False
    noise: float = Field(0.0, ge=0.0)
    channels: list[int] | None = Field(
        None, description="indices of the channels augmented (default: all)"
    )


class TrainConfig(_Strict):
    """The training setup; ``trainer`` is passed to ``lightning.pytorch.Trainer`` untouched.

    ``keep``: the weights evaluated and exported: the ``best`` epoch on the validation part,
    or the ``last`` epoch (the validation part then chooses nothing: honest cross-validation).
    ``rate_scale``: per-window rate targets (heart rate) only: stretch each training window in
    time by a random factor within ``1 ± rate_scale`` and scale its target alike.
    """

    batch_size: int = Field(192, ge=1)
    max_epochs: int = Field(20, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: Literal["none", "onecycle", "cosine"] = "none"
    early_stopping: int | None = Field(None, ge=1, description="patience in epochs")
    gradient_clip: float | None = Field(None, gt=0)
    num_workers: int = Field(0, ge=0)
    augment: AugmentConfig = AugmentConfig()
    trainer: dict[str, Any] = Field(default_factory=dict)
    keep: Literal["best", "last"] = "best"
    rate_scale: float | None = Field(None, gt=0, lt=1)


def _safe_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"model name {name!r} may only use letters, digits, '-', '_', '.'")
    return name


#: a label in tables, plots and folder names
ModelName = Annotated[str, AfterValidator(_safe_name)]


class ModelConfig(_Strict):
    """One model of the comparison: a registry ``arch`` with its own label and overrides.

    ``task_options`` holds options of the recipe's task kind for this model (e.g. a regression
    ``criterion``); a model without trainable parameters is evaluated without training.
    ``seed`` replaces the recipe's seed for this model (e.g. ensemble members that differ only
    in their initial weights and batch order).
    """

    name: ModelName
    arch: str
    seed: int | None = None
    hparams: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    features: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    task_options: dict[str, Any] = Field(default_factory=dict)


class EvaluationConfig(_Strict):
    """How trained models are scored and what their probabilities mean.

    ``class_priors``: after balanced training (oversampling or class weights), ``training``
    re-weights predicted probabilities to the class balance of the training records (calibrated
    for data like them; best for accuracy on natural data), ``balanced`` keeps them as trained
    (best for balanced accuracy, and often for the F1 of a rare class, whose F1-optimal
    threshold lies below the accuracy-optimal one). A model's ``evaluation`` table overrides it.
    """

    class_priors: Literal["training", "balanced"] = "training"


class EnsembleConfig(_Strict):
    """Record-level class probabilities of several trained models of the recipe, averaged."""

    name: ModelName
    members: list[str] = Field(min_length=2)


class ParameterRange(_Strict):
    """One parameter of a search space: ``choices``, or a range ``low``..``high`` (integers
    when both are integers; ``log`` for a log scale, ``step`` for a grid)."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _range_or_choices(self) -> ParameterRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low and high, not both")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"needs choices, or low < high (got low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log = true needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def examples(self) -> list[Any]:
        """Values that every sample resembles (for checking the space before a search)."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def suggest(self, trial: Any, name: str) -> Any:
        """A value for an Optuna trial (non-scalar choices travel as JSON text)."""
        if self.choices is not None:
            if all(isinstance(c, bool | int | float | str) for c in self.choices):
                return trial.suggest_categorical(name, self.choices)
            encoded = [json.dumps(c) for c in self.choices]
            return json.loads(trial.suggest_categorical(name, encoded))
        if self.is_int:
            step = int(self.step or 1)
            return trial.suggest_int(name, self.low, self.high, step=step, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


class TuneConfig(_Strict):
    """A hyperparameter search (`physiodl tune`): the space and the study's settings."""

    model: str | None = Field(None, description="the [[models]] entry to tune (default: first)")
    metric: str | None = Field(None, description="e.g. 'record.efficiency' (default: the task's)")
    direction: Literal["maximize", "minimize"] | None = None
    trials: int = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0, description="seconds per worker")
    study: str | None = None
    storage: str | None = None
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int = Field(3, ge=0)
    warmup_epochs: int = Field(1, ge=0)
    space: dict[str, ParameterRange] = Field(min_length=1)

    @model_validator(mode="after")
    def _direction_with_metric(self) -> TuneConfig:
        if self.metric is not None and self.direction is None:
            raise ValueError(f"metric = {self.metric!r} needs a direction (maximize or minimize)")
        return self


class SweepConfig(_Strict):
    """Run the recipe once per value of one setting (``key`` as in ``--set``)."""

    key: str
    values: list[Any] = Field(min_length=1)


class RecipeConfig(_Strict):
    """A whole study: data, split, features, training and the models to compare."""

    name: str
    description: str = ""
    seed: int = 12345
    task: TaskKind = "classification"
    task_options: dict[str, Any] = Field(
        default_factory=dict, description="the task's own settings, e.g. its loss"
    )
    data: DataConfig
    split: SplitConfig = SplitConfig()
    features: FeaturesConfig = FeaturesConfig()
    train: TrainConfig = TrainConfig()
    models: list[ModelConfig] = Field(min_length=1)
    ensembles: list[EnsembleConfig] = Field(default_factory=list)
    evaluation: EvaluationConfig = EvaluationConfig()
    quick: dict[str, Any] = Field(
        default_factory=dict, description="dotted overrides applied by --quick"
    )
    sweep: SweepConfig | None = None
    tune: TuneConfig | None = None

    @model_validator(mode="after")
    def _unique_model_names(self) -> RecipeConfig:
        names = [m.name for m in self.models] + [e.name for e in self.ensembles]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        models = {m.name for m in self.models}
        for ensemble in self.ensembles:
            unknown = [m for m in ensemble.members if m not in models]
            if unknown:
                raise ValueError(
                    f"ensemble {ensemble.name!r}: no model named {', '.join(unknown)}; "
                    f"models: {', '.join(sorted(models))}"
                )
        if self.ensembles and self.task != "classification":
            raise ValueError("ensembles average class probabilities: classification only")
        return self

    def model_train(self, model: ModelConfig) -> TrainConfig:
        """The training setup of one model: the recipe's, updated by the model's overrides."""
        merged = _deep_merge(self.train.model_dump(), model.train)
        return _validate(TrainConfig, merged, f"models.{model.name}.train")

    def model_evaluation(self, model: ModelConfig) -> EvaluationConfig:
        """How one model is scored: the recipe's ``[evaluation]``, updated by the model's."""
        merged = _deep_merge(self.evaluation.model_dump(), model.evaluation)
        return _validate(EvaluationConfig, merged, f"models.{model.name}.evaluation")

    def model_seed(self, model: ModelConfig) -> int:
        """The seed of one model: its own, else the recipe's."""
        return self.seed if model.seed is None else model.seed

    def model_features(self, model: ModelConfig) -> FeaturesConfig:
        """The features of one model: the recipe's, updated by the model's overrides."""
        merged = _deep_merge(self.features.model_dump(), model.features)
        return _validate(FeaturesConfig, merged, f"models.{model.name}.features")

    def model_task_options(self, model: ModelConfig) -> dict[str, Any]:
        """The task settings of one model: the recipe's, updated by the model's."""
        return {**self.task_options, **model.task_options}

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        raise RecipeError(
            f"no model {name!r} in recipe {self.name!r}; models: "
            + ", ".join(m.name for m in self.models)
        )


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, *, quick: bool = False
) -> RecipeConfig:
    """Read, override and validate a recipe file.

    ``overrides`` are ``key=value`` strings (``train.max_epochs=3``, ``trainer.devices=2``); values
    are parsed as TOML (``3``, ``0.1``, ``true``, ``"ddp"``, ``[1, 2]``), bare words as strings.
    ``quick`` first applies the recipe's own ``[quick]`` overrides.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"{path} is not valid TOML: {err}") from err
    return recipe_from_dict(raw, overrides, quick=quick, source=str(path))


def recipe_from_dict(
    raw: dict[str, Any],
    overrides: list[str] | None = None,
    *,
    quick: bool = False,
    source: str = "recipe",
) -> RecipeConfig:
    """Validate a recipe given as a dict (see `load_recipe`)."""
    raw = copy.deepcopy(raw)
    if quick:
        for key, value in raw.get("quick", {}).items():
            _apply_override(raw, key, value)
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r} is not of the form key=value")
        _apply_override(raw, key.strip(), parse_value(text.strip()))
    config = _validate(RecipeConfig, raw, source)
    for model in config.models:
        config.model_train(model)
        config.model_features(model)
        config.model_evaluation(model)
    if config.sweep is not None:
        for value in config.sweep.values:
            sweep_point(config, value)
    return config


def sweep_point(config: RecipeConfig, value: Any) -> RecipeConfig:
    """The recipe of one sweep point: ``sweep.key`` set to ``value``, no sweep of its own."""
    if config.sweep is None:
        raise RecipeError(f"recipe {config.name!r} has no [sweep] table")
    key = config.sweep.key
    if key.split(".")[0] in ("sweep", "name", "tune"):
        raise RecipeError(f"sweep.key = {key!r}: a sweep cannot change the recipe's {key}")
    return override_recipe(config, {key: value}, f"sweep point {key} = {value!r}")


def override_recipe(config: RecipeConfig, overrides: dict[str, Any], where: str) -> RecipeConfig:
    """``config`` with dotted ``overrides`` (as ``--set``), validated, without sweep or tune."""
    raw = config.model_dump(mode="json", exclude={"sweep", "tune"})
    for key, value in overrides.items():
        _apply_override(raw, key, value)
    changed = _validate(RecipeConfig, raw, where)
    for model in changed.models:
        changed.model_train(model)
        changed.model_features(model)
        changed.model_evaluation(model)
    return changed


def parse_value(text: str) -> Any:
    """A command-line value as TOML (numbers, booleans, strings, arrays), else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def recipe_to_toml(config: RecipeConfig) -> str:
    """The resolved recipe as TOML text (written into every run directory)."""
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))


_SECTION_ALIASES = ("train", "features", "data", "split")


def _apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted ``key`` in ``raw``.

    ``models.<name>.`` addresses one model by its name, ``models.*.`` every model; a key that
    is not top-level is looked up in the sections: ``trainer.devices`` is ``train.trainer.devices``.
    """
    parts = key.split(".")
    top_level = set(RecipeConfig.model_fields)
    if parts[0] not in top_level:
        sections = [s for s in _SECTION_ALIASES if parts[0] in _model_fields_of(s)]
        if len(sections) != 1:
            raise RecipeError(
                f"override key {key!r}: {parts[0]!r} is not a recipe key; "
                f"top-level keys: {', '.join(sorted(top_level))}"
            )
        parts = [sections[0], *parts]
    node: Any = raw
    if parts[0] == "models" and len(parts) > 2 and not parts[1].isdigit():
        if parts[1] == "*":
            for model in raw.get("models", []):
                _set_path(model, parts[2:], value, key)
            return
        matches = [m for m in raw.get("models", []) if m.get("name") == parts[1]]
        if not matches:
            names = ", ".join(str(m.get("name")) for m in raw.get("models", []))
            raise RecipeError(f"override key {key!r}: no model named {parts[1]!r}; models: {names}")
        node, parts = matches[0], parts[2:]
    _set_path(node, parts, value, key)


def _set_path(node: Any, parts: list[str], value: Any, key: str) -> None:
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_list_index(part, node, key)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            raise RecipeError(f"override key {key!r}: {part!r} is a value, not a table")
    if isinstance(node, list):
        node[_list_index(parts[-1], node, key)] = value
    else:
        node[parts[-1]] = value


def _list_index(part: str, items: list[Any], key: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise RecipeError(f"override key {key!r}: {part!r} is not an index below {len(items)}")
    return int(part)


def _model_fields_of(section: str) -> set[str]:
    annotation = RecipeConfig.model_fields[section].annotation
    return set(getattr(annotation, "model_fields", {}))


def _validate(model: type[_Strict], data: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise RecipeError(_explain(err, where)) from None


def _explain(err: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid recipe"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - unknown key {loc!r}; check the spelling (see docs/recipes.md)")
        else:
            shown = e.get("input")
            got = "" if isinstance(shown, dict) else f" (got {shown!r})"
            lines.append(f"  - {loc}: {e['msg']}{got}")
    return "\n".join(lines)


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
