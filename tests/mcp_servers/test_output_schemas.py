"""The output schemas the servers publish are rewritten to validate faster (serving.light_output_schemas): these
tests check that the rewritten schema accepts and rejects exactly what pydantic's original does, on answers
built from every tool's schema and on every one-value corruption of them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp.server import MCPServer
from pydantic import BaseModel

from mcp_servers.memory.server import build as build_memory
from mcp_servers.project.server import build as build_project
from mcp_servers.quality.server import build as build_quality
from mcp_servers.serving import flat_schema, light_output_schemas, without_excluded

WRONG: list[Any] = [None, 7, 2.5, "x", True, [], {}, ["x"], {"x": 1}]


def _original(server: MCPServer) -> dict[str, dict[str, Any]]:
    """Each tool's output schema as pydantic writes it (the output model's schema, before the rewrite)."""
    found = {}
    for tool in server._tool_manager.list_tools():
        meta = tool.fn_metadata
        if meta.output_schema is not None:
            schema = meta._output_adapter(meta.output_model).json_schema()
            if isinstance(meta.output_model, type) and issubclass(meta.output_model, BaseModel):
                schema = without_excluded(schema, meta.output_model.model_json_schema(mode="serialization"))
            found[tool.name] = schema
    return found


def test_fields_a_model_never_sends_are_not_in_its_schema() -> None:
    from mcp_servers.core.memory_models import Hit, SearchResult

    schema = without_excluded(SearchResult.model_json_schema(), SearchResult.model_json_schema(mode="serialization"))
    hit = schema["$defs"]["Hit"]
    assert {"id", "kind", "created", "score", "source", "stale", "snippet"} == set(hit["properties"])
    assert set(hit["required"]) <= set(hit["properties"])
    assert "session" in Hit.model_fields and "session" not in Hit(
        id=1, kind="note", created="", score=0.5, source="agent", stale=False, snippet="", session="s"
    ).model_dump()


def _servers() -> list[tuple[str, MCPServer]]:
    return [("quality", build_quality()), ("project", build_project()), ("memory", build_memory())]


SCALARS: dict[Any, Any] = {"string": "text", "integer": 3, "number": 0.5, "boolean": False, "null": None}


def _instances(node: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Iterator[Any]:
    """Valid answers for a pydantic schema node: one per branch of each choice, every property present."""
    if "$ref" in node:
        yield from _instances(defs[node["$ref"].rsplit("/", 1)[1]], defs, depth)
    elif "anyOf" in node:
        for branch in node["anyOf"]:
            yield from _instances(branch, defs, depth)
    elif "const" in node or "enum" in node:
        yield from node.get("enum", [node.get("const")])
    elif node.get("type") == "object":
        yield from _objects(node, defs, depth)
    elif node.get("type") == "array":
        yield from _arrays(node, defs, depth)
    else:
        yield SCALARS.get(node.get("type"), "anything")


def _objects(node: dict[str, Any], defs: dict[str, Any], depth: int) -> Iterator[Any]:
    props = node.get("properties", {})
    if not props:
        extra = node.get("additionalProperties", True)
        if isinstance(extra, dict):
            yield from ({"k": v} for v in list(_instances(extra, defs, depth + 1))[:3])
        yield {"k": "v"} if extra is True else {}
        return
    variants = {name: list(_instances(sub, defs, depth + 1))[:3] for name, sub in props.items()}
    for i in range(max(len(v) for v in variants.values())):
        yield {name: v[min(i, len(v) - 1)] for name, v in variants.items() if v}


def _arrays(node: dict[str, Any], defs: dict[str, Any], depth: int) -> Iterator[Any]:
    items, least = node.get("items", {}), node.get("minItems", 0)
    if not least:
        yield []
    if depth < 6 or least:
        some = list(_instances(items, defs, depth + 1))[:2] if items else ["x"]
        yield (some * max(1, least))[: max(2, least)]


def _corruptions(value: Any) -> Iterator[Any]:
    """`value` with one place replaced by each wrong value, or one key removed."""
    yield from WRONG
    if isinstance(value, dict):
        for key in value:
            rest = {k: v for k, v in value.items() if k != key}
            yield rest
            for bad in _corruptions(value[key]):
                yield {**rest, key: bad}
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for bad in _corruptions(item):
                changed = copy.copy(value)
                changed[i] = bad
                yield changed


@pytest.mark.parametrize(("name", "server"), _servers(), ids=lambda x: x if isinstance(x, str) else "")
def test_rewritten_schemas_accept_and_reject_what_the_originals_do(name: str, server: MCPServer) -> None:
    originals = _original(server)
    published = {t.name: t.fn_metadata.output_schema for t in server._tool_manager.list_tools()}
    assert originals, f"the {name} server has no tool with structured output"
    checked = 0
    for tool, original in originals.items():
        rewritten = published[tool]
        assert rewritten is not None
        assert "$ref" not in repr(rewritten) and "'null'}]" not in repr(rewritten), tool
        before, after = Draft202012Validator(original), Draft202012Validator(rewritten)
        valid = list(_instances(original, original.get("$defs", {})))
        assert valid and all(before.is_valid(v) for v in valid), tool
        for answer in valid:
            for candidate in [answer, *_corruptions(answer)]:
                assert before.is_valid(candidate) == after.is_valid(candidate), (tool, candidate)
                checked += 1
    assert checked > 100


def test_nullable_choices_keep_null_in_their_enum() -> None:
    schema = {"type": "object", "properties": {"s": {"anyOf": [{"enum": ["a", "b"], "type": "string"},
                                                               {"type": "null"}], "default": None}}}  # fmt: skip
    flat = Draft202012Validator(flat_schema(schema))
    assert flat.is_valid({"s": None}) and flat.is_valid({"s": "a"}) and not flat.is_valid({"s": "c"})
    assert not flat.is_valid({"s": 1})


class Node(BaseModel):
    children: list[Node]


def test_a_recursive_model_is_refused_with_its_name() -> None:
    server = MCPServer("t")

    @server.tool()
    def tree() -> Node:
        return Node(children=[])

    with pytest.raises(ValueError, match="'Node'"):
        light_output_schemas(server)
