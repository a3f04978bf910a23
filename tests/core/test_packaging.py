"""The installed namespace: every package folder is listed in pyproject, and the stage
folders cannot be imported as top-level modules."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {"thresher": "thresher", "curate": "thresher.curate", "distill": "thresher.distill",
          "train": "thresher.train", "evaluate": "thresher.evaluate"}


def _folders_with_init() -> set[str]:
    found = set()
    for top, pkg in MAPPED.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    return found


def test_pyproject_lists_every_package():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    assert listed == _folders_with_init(), "pyproject [tool.setuptools] packages out of date"
    for pkg in listed:
        if pkg.split(".")[1:2] and pkg.split(".")[1] in ("curate", "distill", "train", "evaluate"):
            assert pkg in cfg["package-dir"], f"{pkg} has no package-dir entry"
            assert (ROOT / cfg["package-dir"][pkg] / "__init__.py").exists()


@pytest.mark.parametrize("name", ["curate", "distill", "train", "evaluate"])
def test_top_level_import_fails_with_hint(name):
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"use `import thresher.{name}`" in proc.stderr


def test_namespace_imports_from_another_directory(tmp_path):
    code = "import thresher.curate, thresher.distill, thresher.train, thresher.io; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.slow
def test_wheel_contains_every_package(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("thresher-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for pkg in _folders_with_init():
        assert "/".join(pkg.split(".")) + "/__init__.py" in names, pkg


def _printed_after_help(expr: str) -> str:
    """What ``print(expr)`` shows in a fresh interpreter after ``thresher --help`` and
    ``thresher curate --help`` ran there."""
    code = ("import sys\nfrom click.testing import CliRunner\nfrom thresher.cli.main import cli\n"
            "for args in (['--help'], ['curate', '--help']):\n"
            "    r = CliRunner().invoke(cli, args)\n    assert r.exit_code == 0, r.output\n"
            f"print({expr})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_help_does_not_import_torch():
    heavy = "[m for m in ('torch', 'transformers', 'vllm', 'datasketch') if m in sys.modules]"
    assert _printed_after_help(heavy) == "[]"


def test_help_lists_command_groups():
    proc = subprocess.run([sys.executable, "-m", "thresher.cli.main", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for group in ("distill", "curate", "train", "run", "report", "convert", "stats", "why"):
        assert f"  {group} " in proc.stdout


def test_help_imports_no_stage_module():
    """The command lists come from the registry's static facts: no stage module (nor polars,
    which every stage pulls in) is imported to print them."""
    assert _printed_after_help("sorted(m for m in sys.modules if m.endswith('.stage') or m == 'polars')") == "[]"


def test_static_facts_match_the_classes():
    """What --help reads from the source is what the imported classes say."""
    from thresher import registry

    for name, target in registry.targets().items():
        found = registry.static_facts(target)
        if found is None:
            continue
        cls = registry.stage_class(name)
        for key in registry.LISTING:
            if key in found:
                assert found[key] == getattr(cls, key), (name, key)
