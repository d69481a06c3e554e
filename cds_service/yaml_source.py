"""YAML loading that remembers where each value came from, so content errors can name file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


class ContentError(ValueError):
    """A content or card file that the service refuses to start with."""

    def __init__(self, file: Path, line: int | None, problem: str) -> None:
        self.file, self.line, self.problem = file, line, problem
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {problem}")


@dataclass
class YamlDocument:
    file: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """Line of the value at `path`, or of its nearest parent that has one (1-based)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def error(self, path: Path_, problem: str) -> ContentError:
        shown = ".".join(str(part) for part in path)
        return ContentError(self.file, self.line_of(path), f"{shown}: {problem}" if shown else problem)


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int], loader: yaml.SafeLoader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise ContentError(Path(loader.name), key_node.start_mark.line + 1, f"duplicate key {key!r}")
            result[key] = _build(value_node, (*path, key), lines, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), lines, loader) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(file: Path) -> YamlDocument:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContentError(file, None, f"cannot read: {exc.strerror}") from exc
    loader = yaml.SafeLoader(text)
    loader.name = str(file)
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        data = _build(node, (), lines, loader) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ContentError(file, mark.line + 1 if mark else None, f"not valid YAML: {exc.problem}") from exc
    finally:
        loader.dispose()
    return YamlDocument(file, data, lines)
