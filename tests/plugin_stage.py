"""A plug-in stage installed for a test: the example stage of CONTRIBUTING.md ("A new stage,
end to end"), written into a temporary folder with a ``*.dist-info`` that registers it in
the entry-point group ``thresher.stages``, and put on ``sys.path``. No file of thresher is
edited: the stage reaches the CLI, recipes, preflight, ``report`` and ``why`` through the
registry alone.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"
SECTION = "## A new stage, end to end"
#: a code block whose first line names the file it is (``# turns_stage/stage.py``)
_FILE_BLOCK = re.compile(r"```python\n# (?P<path>[\w/]+\.py)\n(?P<body>.*?)```", re.S)
_TOML_BLOCK = re.compile(r"```toml\n(?P<body>.*?)```", re.S)


def contributing_example() -> tuple[dict[str, str], dict[str, str]]:
    """``(files, entry points)`` of the example in CONTRIBUTING.md: path -> source, and the
    registry lines of its ``[project.entry-points."thresher.stages"]`` table (name -> target)."""
    text = CONTRIBUTING.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.find("\n## ", len(SECTION))]
    files = {m["path"]: m["body"] for m in _FILE_BLOCK.finditer(section)}
    toml = next(m["body"] for m in _TOML_BLOCK.finditer(section) if '"thresher.stages"' in m["body"])
    entries = dict(re.findall(r'^(\w+)\s*=\s*"([\w.:]+)"', toml, re.M))
    return files, entries


def install(root: Path, files: dict[str, str], entries: dict[str, str], dist: str = "turns_stage") -> Path:
    """Write ``files`` (and their packages' ``__init__.py``) under ``root``, register ``entries``
    in a ``<dist>-0.1.dist-info`` there, and put ``root`` on ``sys.path``."""
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        init = path.parent / "__init__.py"
        if not init.exists():
            init.write_text("")
        path.write_text(body)
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[thresher.stages]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items()))
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    from thresher import registry

    registry.refresh()
    return root


def uninstall(root: Path, packages: set[str]) -> None:
    """Undo :func:`install`: off ``sys.path``, its modules forgotten, the registry read again."""
    from thresher import registry

    if str(root) in sys.path:
        sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[name]
    importlib.invalidate_caches()
    registry.refresh()


@pytest.fixture(scope="module")
def turns_plugin(tmp_path_factory):
    """The CONTRIBUTING.md example stage ``turns``, installed as a plug-in for this module."""
    files, entries = contributing_example()
    root = install(tmp_path_factory.mktemp("plugin"), files, entries)
    yield entries
    uninstall(root, {rel.split("/")[0] for rel in files})
