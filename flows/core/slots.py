"""Positional pickling of slotted classes: the layout that snapshots store per object."""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T")


def restore_slots(
    cls: type[_T],
    fields: tuple[str, ...],
    layout: int,
    known: int,
    values: tuple[object, ...],
    *,
    nones: tuple[str, ...] = (),
) -> _T:
    """Rebuild an instance of `cls` from slot values pickled in the order `fields`.

    Args:
        cls: the slotted class.
        fields: its slot names, in the pickled order of layout `known`.
        layout: the layout version the pickle was written with.
        known: the layout version `fields` describes.
        values: the pickled slot values.
        nones: slots set to None first, for fields that are properties over them.

    Raises:
        ValueError: the pickle's layout or its number of values is not `known`'s.
    """
    if layout != known or len(values) != len(fields):
        msg = f"{cls.__name__} snapshot layout {layout} with {len(values)} fields is not known"
        raise ValueError(msg)
    # `cls.__new__`, not `object.__new__`: a compiled class refuses the latter.
    obj = cls.__new__(cls)
    for name in nones:
        object.__setattr__(obj, name, None)
    for name, value in zip(fields, values, strict=True):
        object.__setattr__(obj, name, value)
    return obj
