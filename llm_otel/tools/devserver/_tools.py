"""Tool calls of the development stand-in server (chat, Responses and Anthropic tool shapes)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def _tool_specs(tools: object) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, JSON schema) of chat, Responses and Anthropic tool definitions."""
    specs: list[tuple[str, Mapping[str, Any]]] = []
    for tool in tools if isinstance(tools, Sequence) else ():
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        spec = function if isinstance(function, Mapping) else tool
        name = spec.get("name")
        schema = spec.get("parameters", spec.get("input_schema"))
        if isinstance(name, str):
            specs.append((name, schema if isinstance(schema, Mapping) else {}))
    return specs


def _forced_tool(tool_choice: object) -> str | None:
    """The tool name a ``tool_choice`` forces, "*" for "any tool", "" for none, None for auto."""
    if tool_choice in ("required", "any"):
        return "*"
    if tool_choice == "none":
        return ""
    if isinstance(tool_choice, Mapping):
        kind = tool_choice.get("type")
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if isinstance(name, str) and kind in ("function", "tool"):
            return name
        if kind in ("any", "none"):
            return _forced_tool(kind)
    return None


def _placeholder(schema: object, user_text: str) -> object:
    if not isinstance(schema, Mapping):
        return user_text
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    defaults: dict[object, object] = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}
    return defaults.get(kind, user_text)


def tool_arguments(schema: Mapping[str, Any], user_text: str) -> str:
    """JSON arguments filling every required property: strings get the user's text."""
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    names = required if isinstance(required, list) else list(properties)
    args = {str(name): _placeholder(properties.get(name), user_text) for name in names}
    return json.dumps(args)


def choose_tool(
    tools: object, tool_choice: object, *, wanted: str, answered_by_tool: bool
) -> tuple[str, Mapping[str, Any]] | None:
    """The (name, schema) of the tool to call, or None to answer with text.

    Automatic choice calls a tool until a tool result follows the last user
    message; ``wanted`` (a marker) names the tool or, as "none", declines.
    """
    specs = _tool_specs(tools)
    forced = _forced_tool(tool_choice)
    if not specs or forced == "" or (forced is None and (answered_by_tool or wanted == "none")):
        return None
    by_name = dict(specs)
    name = forced if forced not in (None, "*") else wanted
    if name in by_name:
        return name, by_name[name]
    return specs[0]
