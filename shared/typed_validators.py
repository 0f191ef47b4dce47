"""Validators that check input exactly as a Pydantic model does, without building the model.

The collector validates every event on its hot path, and building model instances costs about
half of pydantic's time there. The same fields (annotations with their constraints and field
validators, required or not) and the model's config, as a TypedDict, validate to a plain dict
instead. The models stay the one definition: these are derived from them. Model validators
cannot be carried over, so a model with any gets no such validator (None), never one that
checks less."""

from __future__ import annotations

from typing import Any, NotRequired, Required

from pydantic import BaseModel, ConfigDict, TypeAdapter
from typing_extensions import TypedDict


def has_model_validators(model: type[BaseModel]) -> bool:
    return bool(model.__pydantic_decorators__.model_validators)


def fields_validator(model: type[BaseModel], **nested: Any) -> TypeAdapter[Any] | None:
    """A validator of `model`'s fields, with `nested` (name → annotation, e.g. another
    TypedDict) replacing or adding required fields; None when the model has model validators."""
    if has_model_validators(model):
        return None
    return TypeAdapter(typed_dict(model, **nested))


def typed_dict(model: type[BaseModel], **nested: Any) -> Any:
    """`model`'s fields and config as a TypedDict (see `fields_validator`; the caller checks
    `has_model_validators`)."""
    fields: dict[str, Any] = {
        name: (Required if field.is_required() else NotRequired)[field.rebuild_annotation()]
        for name, field in model.model_fields.items()
    }
    fields.update({name: Required[annotation] for name, annotation in nested.items()})
    td: Any = TypedDict(f"{model.__name__}Fields", fields)  # type: ignore[misc]
    td.__pydantic_config__ = ConfigDict(**model.model_config)  # type: ignore[attr-defined]
    return td
