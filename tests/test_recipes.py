"""Recipe validation, overrides and round-trips."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from physiodl.errors import RecipeError
from physiodl.recipes import load_recipe, parse_value, recipe_from_dict, recipe_to_toml

REPO = Path(__file__).resolve().parents[1]


def minimal(**extra: object) -> dict:
    recipe = {
        "name": "t",
        "data": {"dataset": "cinc2017", "classes": ["N", "A"]},
        "train": {"max_epochs": 4, "optimizer": {"lr": 0.01}},
        "models": [
            {"name": "lstm", "arch": "LSTMNet", "train": {"max_epochs": 9}},
            {"name": "cnn", "arch": "ConvNet", "features": {"chunks": {"random": True}}},
        ],
    }
    recipe.update(extra)
    return recipe


def test_model_overrides_merge_into_recipe_defaults() -> None:
    config = recipe_from_dict(minimal())
    lstm, cnn = config.models
    assert config.model_train(lstm).max_epochs == 9
    assert config.model_train(lstm).optimizer.lr == 0.01  # inherited, not reset
    assert config.model_train(cnn).max_epochs == 4
    assert config.model_features(cnn).chunks.random is True
    assert config.model_features(cnn).chunks.length == 40
    assert config.model_features(lstm).chunks.random is False


def test_unknown_key_names_the_key() -> None:
    bad = minimal()
    bad["data"]["clases"] = ["N"]
    with pytest.raises(RecipeError, match=r"unknown key 'data\.clases'"):
        recipe_from_dict(bad)


def test_unknown_key_in_model_override_names_the_model() -> None:
    bad = minimal()
    bad["models"][0]["train"] = {"max_epoch": 3}
    with pytest.raises(RecipeError, match=r"(?s)models\.lstm\.train.*max_epoch"):
        recipe_from_dict(bad)


def test_wrong_type_names_key_and_value() -> None:
    with pytest.raises(RecipeError, match=r"train\.batch_size.*'many'"):
        recipe_from_dict(minimal(), ["train.batch_size=many"])


def test_bad_value_range_is_an_error() -> None:
    with pytest.raises(RecipeError, match=r"split\.validation"):
        recipe_from_dict(minimal(split={"validation": 1.5}))


def test_duplicate_model_names_rejected() -> None:
    recipe = minimal()
    recipe["models"][1]["name"] = "lstm"
    with pytest.raises(RecipeError, match="repeated: lstm"):
        recipe_from_dict(recipe)


def test_overrides_section_aliases_models_and_wildcards() -> None:
    config = recipe_from_dict(
        minimal(),
        [
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "models.lstm.hparams.hidden=64",
            "models.*.train.batch_size=32",
            "seed=7",
        ],
    )
    assert config.train.trainer == {"devices": 2, "strategy": "ddp"}
    assert config.models[0].hparams == {"hidden": 64}
    assert all(config.model_train(m).batch_size == 32 for m in config.models)
    assert config.seed == 7


def test_override_errors_are_clear() -> None:
    with pytest.raises(RecipeError, match="key=value"):
        recipe_from_dict(minimal(), ["train.max_epochs"])
    with pytest.raises(RecipeError, match="no model named 'gru'"):
        recipe_from_dict(minimal(), ["models.gru.hparams.hidden=3"])
    with pytest.raises(RecipeError, match="not a recipe key"):
        recipe_from_dict(minimal(), ["nonsense=3"])


def test_quick_applies_recipe_quick_table() -> None:
    recipe = minimal(quick={"models.*.train.max_epochs": 1, "data.options.max_records": 50})
    assert recipe_from_dict(recipe).model_train(recipe_from_dict(recipe).models[0]).max_epochs == 9
    quick = recipe_from_dict(recipe, quick=True)
    assert [quick.model_train(m).max_epochs for m in quick.models] == [1, 1]
    assert quick.data.options == {"max_records": 50}


def test_parse_value() -> None:
    assert parse_value("3") == 3
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("ddp") == "ddp"
    assert parse_value('"x y"') == "x y"


def test_resolved_recipe_round_trips_through_toml() -> None:
    config = recipe_from_dict(minimal(), ["trainer.devices=2"])
    again = recipe_from_dict(tomllib.loads(recipe_to_toml(config)))
    assert again == config


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path: Path) -> None:
    from physiodl.models import model_class

    for quick in (False, True):
        config = load_recipe(path, quick=quick)
        for model in config.models:
            model_class(model.arch)


def test_missing_and_broken_recipe_files(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(broken)
