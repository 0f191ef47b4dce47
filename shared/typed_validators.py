"""Validators that check input exactly as a Pydantic model does, without building the model.

The collector validates every event on its hot path, and building model instances costs about
half of pydantic's time there. The same fields (annotations with their constraints and field
validators, required or not) and the model's config, as a TypedDict, validate to a plain dict
instead. The models stay the one definition: these are derived from them. Model validators
cannot be carried over, so a model with any is refused, never given a validator that checks
less."""

from __future__ import annotations

from typing import Any, NotRequired, Required

from pydantic import BaseModel, ConfigDict, TypeAdapter
from typing_extensions import TypedDict


def has_model_validators(model: type[BaseModel]) -> bool:
    return bool(model.__pydantic_decorators__.model_validators)


def fields_validator(model: type[BaseModel], **nested: Any) -> TypeAdapter[Any]:
    """A validator of `model`'s fields, with `nested` (name → annotation, e.g. another
    TypedDict) replacing or adding required fields."""
    return TypeAdapter(typed_dict(model, **nested))


def typed_dict(model: type[BaseModel], **nested: Any) -> Any:
    """`model`'s fields and config as a TypedDict; refused (TypeError) for a model with model
    validators, which it could not carry."""
    if has_model_validators(model):
        raise TypeError(f"{model.__name__} has model validators a TypedDict cannot carry")
    fields: dict[str, Any] = {
        name: (Required if field.is_required() else NotRequired)[field.rebuild_annotation()]
        for name, field in model.model_fields.items()
    }
    fields.update({name: Required[annotation] for name, annotation in nested.items()})
    td: Any = TypedDict(f"{model.__name__}Fields", fields)  # type: ignore[misc]
    td.__pydantic_config__ = ConfigDict(**model.model_config)  # type: ignore[attr-defined]
    return td
