"""YAML text to a validated ConfigDocument, with every error located by path and line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tocsin.configfile.errors import ConfigError, ConfigIssue
from tocsin.configfile.schema import ConfigDocument, line_of, section_spec

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
# pydantic puts schema names such as "function-after[_key(), str]" into some error locations.
_SCHEMA_LOC = re.compile(r"^[\w-]+\[.*\]$")


def load_config(text: str, source: str = "<config>") -> ConfigDocument:
    """Parse and validate a configuration file; raise ConfigError listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_issue(exc, source)], source) from None
    if root is None:
        return ConfigDocument().with_lines({}, source)
    if not isinstance(root, MappingNode):
        issue = ConfigIssue(
            source,
            "expected sections (severities:, users: …) at the top level",
            root.start_mark.line + 1,
        )
        raise ConfigError([issue], source)

    lines: dict[str, int] = {}
    issues: list[ConfigIssue] = []
    _walk(root, "", lines, issues, ancestors=set())
    try:
        data = yaml.SafeLoader("").construct_document(root)
    except yaml.YAMLError as exc:  # e.g. an unknown !tag, found only when constructing
        raise ConfigError([*issues, _yaml_issue(exc, source)], source) from None

    if isinstance(data, dict):
        issues.extend(_duplicates(data, lines))
    try:
        doc = ConfigDocument.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            path = _path(error["loc"])
            issues.append(ConfigIssue(path, _message(error), line_of(lines, path)))
    if issues:
        raise ConfigError(issues, source)
    return doc.with_lines(lines, source)


def _yaml_issue(exc: yaml.YAMLError, source: str) -> ConfigIssue:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot be read"
        if exc.context and exc.problem:
            problem = f"{exc.context}: {exc.problem}"
        return ConfigIssue(source, f"invalid YAML: {problem}", mark.line + 1 if mark else None)
    return ConfigIssue(source, f"invalid YAML: {exc}")


def _walk(
    node: Node, path: str, lines: dict[str, int], issues: list[ConfigIssue], ancestors: set[int]
) -> None:
    """Record the line of every path and report duplicate keys, which PyYAML silently merges."""
    if id(node) in ancestors:  # a recursive alias (&a [*a]); pydantic will reject the value
        return
    ancestors = ancestors | {id(node)}
    if isinstance(node, MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                _walk(value_node, path, lines, issues, ancestors)
                continue
            # Keys are names, always text: `on:` or `1:` would otherwise become true or 1.
            key_node.tag = _STR_TAG
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in first:
                message = f"duplicate key '{key}' (first at line {first[key]})"
                issues.append(ConfigIssue(child, message, line))
                continue
            first[key] = line
            lines[child] = line
            _walk(value_node, child, lines, issues, ancestors)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            lines[child] = item.start_mark.line + 1
            _walk(item, child, lines, issues, ancestors)


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _SCHEMA_LOC.match(part):
            out += f".{part}" if out else part
    return out


# Messages in the file's terms; pydantic's own wording ("Input should be …") is the fallback.
_TEMPLATES = {
    "missing": "required key is missing",
    "literal_error": "must be one of {expected}, got {got}",
    "string_type": "expected text, got {got}",
    "bool_type": "expected true or false, got {got}",
    "bool_parsing": "expected true or false, got {got}",
    "list_type": "expected a list, got {got}",
    "model_type": "expected a mapping (key: value), got {got}",
    "model_attributes_type": "expected a mapping (key: value), got {got}",
    "dict_type": "expected a mapping (key: value), got {got}",
    "string_too_short": "must not be empty",
    "string_too_long": "is too long (at most {max_length} characters)",
    "too_short": "needs at least {min_length} entry",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(error["loc"])
    if kind in ("value_error", "assertion_error"):
        return error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    template = _TEMPLATES.get(kind)
    if template is not None:
        return template.format(got=_describe(error.get("input")), **(error.get("ctx") or {}))
    message = error["msg"]
    return message[:1].lower() + message[1:]


def _unknown_key(loc: Sequence[int | str]) -> str:
    key = str(loc[-1])
    noun = "section" if len(loc) == 1 else "key"
    model = _model_at(loc[:-1])
    valid = list(model.model_fields) if model else []
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return f"unknown {noun} '{key}' (did you mean '{close[0]}'?)"
    return f"unknown {noun} '{key}'; valid: {', '.join(valid)}"


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """Return the model that validates the mapping at `loc`, to list its valid keys."""
    model: type[BaseModel] | None = ConfigDocument
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _inner_model(field.annotation) if field else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found:
            return found
    return None


def _describe(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "nothing", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "a mapping"
    return type(value).__name__


def _duplicates(data: dict[str, Any], lines: dict[str, int]) -> list[ConfigIssue]:
    """Report two entries with one key in a section, and problems inside an entry.

    This reads the raw data, not the validated model, so a file with both a typo and a
    duplicate gets both reported at once.
    """
    issues = []
    for section in ConfigDocument.model_fields:
        entries = data.get(section)
        if not isinstance(entries, list):
            continue
        spec = section_spec(section)
        first: dict[str, int] = {}
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            path = f"{section}[{index}]"
            for sub, message in spec.problems(entry):
                issues.append(
                    ConfigIssue(f"{path}.{sub}", message, line_of(lines, f"{path}.{sub}"))
                )
            key = entry.get(spec.key_field)
            if not isinstance(key, str):
                continue
            folded = key.casefold() if spec.keys_ignore_case else key
            key_path = f"{path}.{spec.key_field}"
            if folded in first:
                earlier = f"{section}[{first[folded]}]"
                message = f"duplicate {spec.noun} {spec.key_field} '{key}' (also at {earlier})"
                issues.append(ConfigIssue(key_path, message, line_of(lines, key_path)))
            else:
                first[folded] = index
    return issues
