"""Models for ``(batch, channels, time)`` signals, built by name from the registry."""

from physiodl.models.registry import build_model, list_models, model_class, register_model

__all__ = ["build_model", "list_models", "model_class", "register_model"]
