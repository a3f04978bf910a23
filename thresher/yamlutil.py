"""YAML loading that refuses duplicate keys (PyYAML silently keeps the last one) and alias bombs.

``name: a`` twice in a recipe or a mix spec is almost always an editing mistake; the error
names the key and both lines. Anchors and aliases are allowed, but a document whose aliases
expand to more than :data:`MAX_NODES` nodes (a "billion laughs" bomb) or refer to themselves
is refused before anything walks it.
"""

from __future__ import annotations

from typing import Any

import yaml

#: the most nodes a document may hold once its aliases are expanded
MAX_NODES = 100_000


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in ``root`` with every alias expanded (memoised: linear in the written nodes);
    raises ``yaml.YAMLError`` past :data:`MAX_NODES` or on an alias that contains itself."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            busy.discard(key)
            kids = _children(node)
            sizes[key] = min(1 + sum(sizes[id(k)] for k in kids), MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in busy:
            raise yaml.composer.ComposerError(None, None, "an alias refers to the node that contains it",
                                              node.start_mark)
        busy.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings must not repeat a key, and whose aliases must not
    expand past :data:`MAX_NODES` nodes."""

    def compose_document(self) -> yaml.Node | None:  # type: ignore[override]
        node = super().compose_document()
        if node is not None and _expanded_size(node) > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"its aliases expand to more than {MAX_NODES} values (an alias bomb?); "
                "write the values out or use fewer aliases", node.start_mark)
        return node


def _mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the base constructor reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {first + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` that raises ``yaml.YAMLError`` (with a line) on a duplicate key."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
