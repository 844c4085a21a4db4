"""Model registry: ``@register_model`` classes built by name with ``build_model``.

Every registered model takes the signal parameters first and its own after::

    Model(in_channels: int, out_size: int, input_length: int | None = None, **hparams)

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
    skip = {"self", "in_channels", "out_size", "input_length"}
    return {k: p.default for k, p in params.items() if k not in skip}


def build_model(
    name: str,
    *,
    in_channels: int,
    out_size: int,
    input_length: int | None = None,
    **hparams: Any,
) -> nn.Module:
    """Build registered model ``name``; unknown hyperparameters are a `RecipeError`."""
    allowed = model_hparams(name)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise RecipeError(
            f"model {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    return model_class(name)(
        in_channels=in_channels, out_size=out_size, input_length=input_length, **hparams
    )


def _import_all() -> None:
    """Import the model modules so their decorators run."""
    from physiodl.models import (  # noqa: F401
        cnn,
        crnn,
        detection,
        mlp,
        recurrent,
        resnet1d,
        unet1d,
    )
