"""The schema toolkit every file format is declared with (architecture configs, recipes, search
spaces): pydantic field types that say what is valid, and the formatter that turns pydantic's
errors into one line per problem naming the key path, the bad value and what would be valid."""

from __future__ import annotations

import difflib
import json
import reprlib
import types
from typing import Annotated, Any, ClassVar, Literal, Self, Union, get_args, get_origin

from annotated_types import Interval
from pydantic import BaseModel, ConfigDict, Strict, Tag, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from threshsearch.errors import UserError

_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 2, 40, 40
_SHORT_REPR.maxlist = _SHORT_REPR.maxdict = _SHORT_REPR.maxtuple = 4


def show(value: Any) -> str:
    """A short, bounded repr for error messages: safe on huge, deep or odd values."""
    try:
        text = _SHORT_REPR.repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return " ".join(text.split())[:80]


def join_path(path: str, key: str) -> str:
    if not path:
        return key
    if not key:
        return path
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


class SchemaError(UserError, ValueError):
    """Invalid input to a schema: ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


# ---------------------------------------------------------------- field types
def expect(text: str, whole: bool = False) -> WrapValidator:
    """Report a value this field refuses as ``expected <text>``. Problems inside its items
    keep their own paths unless ``whole``."""

    def check(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            if whole or all(not item["loc"] for item in error.errors()):
                raise expected(text) from None
            raise

    return WrapValidator(check)


def expected(text: str) -> PydanticCustomError:
    """A value refused by a validator: reported as ``<value> is invalid; expected <text>``."""
    return PydanticCustomError("expected", "{text}", {"text": text})


def problem(text: str, where: str = "") -> PydanticCustomError:
    """A problem found by a model validator, at ``where`` below the model's own path."""
    return PydanticCustomError("problem", "{text}", {"text": text, "where": where})


def Int(low: int, high: int) -> Any:
    return Annotated[int, Strict(), Interval(ge=low, le=high),
                     expect(f"an integer from {low} to {high}")]


def Number(low: float, high: float, low_open: bool = False, high_open: bool = False
           ) -> Any:
    interval = Interval(**{"gt" if low_open else "ge": low, "lt" if high_open else "le": high})
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    return Annotated[float, Strict(), interval,
                     expect(f"a number in {left}{low}, {high}{right}")]


def Choice(*values: str) -> Any:
    return Annotated[Literal[values], expect(f"one of {', '.join(values)}")]


Bool = Annotated[bool, Strict(), expect("true or false")]


# ----------------------------------------------------------------- the models
class Schema(BaseModel):
    """A frozen, validated record of a file format. ``parse`` (plain data, key paths under
    ``path``) and ``replace`` raise ``error`` for bad values; constructing one directly raises
    pydantic's ValidationError."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=False)
    error: ClassVar[type[SchemaError]] = SchemaError
    what: ClassVar[str] = "config"  # what the top of a file is called in messages
    unknown: ClassVar[str] = "unknown key"
    keys_are: ClassVar[str] = "valid keys"

    @classmethod
    def parse(cls, data: Any, path: str = "") -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise cls.error(problems(error, cls, path)) from None

    @classmethod
    def json_schema(cls) -> str:
        """The JSON Schema of the file format (what editors complete and check from)."""
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  **cls.model_json_schema()}
        return json.dumps(schema, indent=2, allow_nan=False) + "\n"

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes``."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        try:
            copy = type(self)(**fields | changes)
        except ValidationError as error:
            raise self.error(problems(error, type(self))) from None
        copy.__pydantic_private__ = self.__pydantic_private__
        return copy


# ------------------------------------------------------------ the formatter
def problems(error: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """One line per problem in ``error`` (raised validating ``model``), paths under
    ``prefix``."""
    lines = []
    items = error.errors(include_url=False)
    for item in items:
        loc, ctx, value = item["loc"], item.get("ctx") or {}, item.get("input")
        if item["type"] == "too_short" and any(
                other["loc"][:len(loc)] == loc and len(other["loc"]) > len(loc)
                for other in items):
            continue  # a list counts only its valid items: the items' own problems say why
        path, parent, here = _locate(model, loc)
        where = join_path(prefix, path)
        kind = item["type"]
        if kind == "extra_forbidden":
            lines.append(_unknown_key(join_path(prefix, _locate(model, loc[:-1])[0]), loc[-1],
                                      parent))
        elif kind == "missing":
            lines.append(f"{where}: missing (required)")
        elif kind == "expected":
            lines.append(f"{where}: {show(value)} is invalid; expected {item['msg']}")
        elif kind == "problem":
            lines.append(f"{join_path(where, ctx['where'])}: {ctx['text']}")
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            keys = ", ".join(_key(here, name) for name in here.model_fields) \
                if _is_model(here) else ""
            lines.append(f"{where or getattr(model, 'what', 'config')}: expected a mapping"
                         f"{' with keys ' + keys if keys else ''}, got {show(value)}")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            key = ctx.get("discriminator", "").strip("'")
            tags = ctx.get("expected_tags", "").replace("'", "")
            found = show(ctx["tag"]) if "tag" in ctx else "missing"
            lines.append(f"{join_path(where, key)}: {found} is invalid; expected one of {tags}")
        else:
            lines.append(f"{where}: {show(value)} is invalid; {item['msg'].lower()}")
    return lines


def _unknown_key(path: str, key: Any, model: Any) -> str:
    valid = [_key(model, name) for name, field in model.model_fields.items()
             if not _is_tag(field.annotation)] if _is_model(model) else []
    name = " ".join((key if isinstance(key, str) else show(key)).split())[:40] or repr(key)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    unknown = getattr(model, "unknown", "unknown key")
    keys_are = getattr(model, "keys_are", "valid keys")
    return f"{join_path(path, name)}: {unknown}; {hint}{keys_are}: {', '.join(valid) or 'none'}"


def _is_tag(annotation: Any) -> bool:
    """A field that only names its model's kind in a tagged union."""
    return get_origin(annotation) is Literal and len(get_args(annotation)) == 1


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _key(model: type[BaseModel], name: str) -> str:
    return model.model_fields[name].alias or name


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _tag_member(union: Any, tag: Any) -> Any:
    """The member of a tagged union that ``tag`` (a ``Tag`` or a ``Literal`` field) names."""
    for member in get_args(union):
        if get_origin(member) is Annotated and any(
                isinstance(meta, Tag) and meta.tag == tag for meta in member.__metadata__):
            return member
        if _is_model(member) and any(get_origin(field.annotation) is Literal
                                     and tag in get_args(field.annotation)
                                     for field in member.model_fields.values()):
            return member
    return None


def _locate(model: Any, loc: tuple[Any, ...]) -> tuple[str, Any, Any]:
    """(the key path of ``loc`` without union tags, the model holding its last key, the type
    found at it)."""
    path, parent, here = "", None, model
    for key in loc:
        here, member = _strip(here), None
        while get_origin(here) in (Union, types.UnionType) and member is None:
            member = _tag_member(here, key)
            options = [arg for arg in get_args(here) if arg is not type(None)]
            if member is None and len(options) == 1:  # an optional field
                here = _strip(options[0])
            elif member is None:
                break
        if member is not None:
            here = member
            continue
        if _is_model(here):
            parent = here
            field = next((f for name, f in here.model_fields.items()
                          if key in (name, f.alias)), None)
            path = join_path(path, str(key))
            here = field.annotation if field else None
        elif isinstance(key, int):
            path = join_path(path, f"[{key}]")
            here = (get_args(here) or (None,))[0]
        else:
            path = join_path(path, str(key))
            args = get_args(here)
            here = args[-1] if args else None
    here = _strip(here)
    if get_origin(here) in (Union, types.UnionType):
        here = next((arg for arg in get_args(here) if arg is not type(None)), None)
    return path, parent, _strip(here)
