"""Model registry: ``@register_model`` classes built by name with ``build_model``.

Every registered model takes the signal parameters first and its own after::

    Model(in_channels: int, out_size: int, input_length: int | None = None, **hparams)

A model whose constructor also names ``fs`` (the sampling rate of its input, in Hz) gets it
from `build_model` as a signal parameter too; it is never a recipe hyperparameter.

and maps ``(batch, channels, time)`` to ``(batch, out_size)`` (or ``(batch, time)`` for
per-bin detection models). A model never knows which dataset it is trained on.
"""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any, TypeVar

from torch import nn

from physiodl.errors import RecipeError

_MODELS: dict[str, type[nn.Module]] = {}
SIGNAL_PARAMETERS = ("in_channels", "out_size", "input_length", "fs")
M = TypeVar("M", bound=type[nn.Module])


def register_model(cls: M) -> M:
    """Class decorator adding ``cls`` to the registry under its class name."""
    if cls.__name__ in _MODELS:
        raise ValueError(f"model {cls.__name__!r} is registered twice")
    _MODELS[cls.__name__] = cls
    return cls


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob ``pattern``, sorted."""
    _import_all()
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n.lower(), pattern.lower()))


def model_class(name: str) -> type[nn.Module]:
    """The registered class called ``name``; a `RecipeError` lists the choices otherwise."""
    _import_all()
    if name not in _MODELS:
        raise RecipeError(f"unknown model arch {name!r}; registered: {', '.join(list_models())}")
    return _MODELS[name]


def model_hparams(name: str) -> dict[str, Any]:
    """The model's own hyperparameters and their defaults (signal parameters excluded)."""
    params = inspect.signature(model_class(name).__init__).parameters
    skip = {"self", *SIGNAL_PARAMETERS}
    return {k: p.default for k, p in params.items() if k not in skip}


def build_model(
    name: str,
    *,
    in_channels: int,
    out_size: int,
    input_length: int | None = None,
    fs: float | None = None,
    **hparams: Any,
) -> nn.Module:
    """Build registered model ``name``; unknown hyperparameters are a `RecipeError`.

    ``fs`` is passed on only to models whose constructor takes it.
    """
    allowed = model_hparams(name)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise RecipeError(
            f"model {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    cls = model_class(name)
    if "fs" in inspect.signature(cls.__init__).parameters:
        hparams["fs"] = fs
    return cls(in_channels=in_channels, out_size=out_size, input_length=input_length, **hparams)


def _import_all() -> None:
    """Import the model modules so their decorators run."""
    from physiodl.models import (  # noqa: F401
        cnn,
        convdense,
        crnn,
        detection,
        mlp,
        recurrent,
        resnet1d,
        spectral,
        unet1d,
    )
