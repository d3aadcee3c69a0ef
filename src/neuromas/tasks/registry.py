"""Task names -> task classes, and checked construction from a config's parameters.

A config names a task and gives its parameters as plain YAML values, so `load` checks them
against the class's own signature before calling it: an unknown or misspelled parameter, a
missing required one, or a value of the wrong type fails with one line that names it and the
valid choices, instead of a TypeError from deep inside a constructor.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

from neuromas.errors import NeuromasError
from neuromas.tasks.base import Task

_TASKS: dict[str, type[Task]] = {}

TaskClass = typing.TypeVar("TaskClass", bound=type[Task])


def register(name: str) -> Callable[[TaskClass], TaskClass]:
    """Class decorator: make a Task subclass loadable as `load(name, **params)`."""

    def decorator(cls: TaskClass) -> TaskClass:
        if name in _TASKS and _TASKS[name] is not cls:
            raise ValueError(f"task name {name!r} is already registered to {_TASKS[name]}")
        _TASKS[name] = cls
        return cls

    return decorator


def names() -> list[str]:
    """Every registered task name, sorted."""
    return sorted(_TASKS)


def load(name: str, **params: Any) -> Task:
    """Build the task registered as `name` with `params`, after checking them."""
    if name not in _TASKS:
        raise NeuromasError(f"unknown task {name!r}; valid tasks: {', '.join(names())}")
    cls = _TASKS[name]
    signature = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    accepted = [p for p in signature.parameters.values() if p.name != "self"]
    valid = ", ".join(p.name for p in accepted)
    for key, value in params.items():
        if key not in signature.parameters or key == "self":
            raise NeuromasError(
                f"task {name!r} has no parameter {key!r}; valid parameters: {valid}")
        hint = hints.get(key, Any)
        if not _matches(value, hint):
            raise NeuromasError(
                f"task {name!r}: parameter {key!r} must be {_describe(hint)}, "
                f"got {type(value).__name__} {value!r}"
            )
    missing = [p.name for p in accepted if p.default is p.empty and p.name not in params]
    if missing:
        raise NeuromasError(
            f"task {name!r} needs parameter {missing[0]!r}; valid parameters: {valid}")
    return cls(**params)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML-ish value fits a type hint (the few shapes task signatures use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None) or hint is None:
        return value is None
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if origin in (list, tuple) or hint in (list, tuple):
        # YAML gives lists; Python callers may pass tuples. Both mean "a sequence of".
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) \
            if args else isinstance(value, (list, tuple))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # True is an int to Python, never to a config
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if hint is type(None):
        return "null"
    if origin in (list, tuple):
        return f"a list of {_describe(args[0])}" if args else "a list"
    return getattr(hint, "__name__", str(hint))
