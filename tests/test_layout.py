"""The package's architecture, read from its source with ``ast`` (STYLE habits 11, 15-17; issue 23):

* public seams: no fastwgan module uses another module's private name (an import of a ``_name`` from a fastwgan
  module, or an attribute ``x._name`` reached through anything but ``self`` / ``cls`` / ``super()`` or a third-party
  module: ``torch._dynamo`` is torch's business, not ours);
* imports point one way, down the layers ``cli -> uses -> eval -> gan -> data -> core -> ops -> kernels`` (a module
  imports its own layer or lower ones; the package's ``__init__`` and ``__main__`` gather the public names);
* files small enough to read in one sitting (at most ~400 lines);
* one outer training loop: ``fastwgan.core.engine`` is the only module that runs the steps of a fit.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "fastwgan", ROOT / "kernels"]
LAYERS = ("kernels", "ops", "core", "data", "gan", "eval", "uses", "cli")  # lowest first (fastwgan.kernels: Triton)
MAX_LINES = 420  # "~400": a file over it holds two jobs


def modules():
    return sorted(p for d in PACKAGES for p in d.rglob("*.py") if "__pycache__" not in p.parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    ours = {p.stem for p in modules()} | {"fastwgan", "kernels"}
    third_party = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            third_party |= {
                (a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] != "fastwgan"
            }
        elif isinstance(node, ast.ImportFrom):
            ours_mod = node.level > 0 or (node.module or "").split(".")[0] == "fastwgan"
            for a in node.names:
                if ours_mod and _private(a.name):
                    found.append(
                        f"{path.name}:{node.lineno}: from {'.' * node.level}{node.module or ''} import {a.name}"
                    )
                elif not ours_mod:
                    third_party.add(a.asname or a.name)
    third_party -= ours
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                continue
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and (base.id in ("self", "cls") or base.id in third_party):
                continue
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return sorted(found, key=lambda s: int(s.split(":")[1]))


def test_no_module_uses_another_modules_private_names():
    found = [f"{p.relative_to(ROOT)}: {hit.split(': ', 1)[1]}" for p in modules() for hit in private_uses(p)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_check_sees_what_it_forbids(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "import torch\nfrom .data import _image_files, load\nfrom . import trainer\n"
        "def f(t, self):\n    torch._dynamo.reset()\n    self._x = t._sample_with(1)\n"
        "    return trainer._helper\n"
    )
    assert private_uses(src) == [
        "m.py:2: from .data import _image_files",
        "m.py:6: t._sample_with",
        "m.py:7: trainer._helper",
    ]


def layer_of(dotted: str) -> str | None:
    """The layer of a module ``fastwgan.<layer>...`` (None: the package root)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every fastwgan import in ``path`` (relative imports resolved), lazy ones too."""
    rel = path.relative_to(ROOT / "fastwgan").with_suffix("")
    pkg = ["fastwgan", *rel.parts[:-1]] if rel.name != "__init__" else ["fastwgan", *rel.parts[:-1]]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "fastwgan":
                for a in node.names:
                    if mod == "fastwgan" and a.name.startswith("__"):  # the package's metadata (__version__)
                        continue  # `from fastwgan.gan import trainer`: the module imported is gan.trainer
                    out.append((node.lineno, f"{mod}.{a.name}" if layer_of(mod) is None and a.name in LAYERS else mod))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "fastwgan"]
    return out


def test_imports_point_down_the_layers():
    bad = []
    for p in sorted((ROOT / "fastwgan").rglob("*.py")):
        rel = p.relative_to(ROOT / "fastwgan")
        if len(rel.parts) == 1:  # fastwgan/__init__.py, __main__.py: the public surface gathers every layer
            continue
        mine = LAYERS.index(rel.parts[0])
        for line, mod in imports_of(p):
            theirs = layer_of(mod)
            if theirs is None or LAYERS.index(theirs) > mine:
                bad.append(f"{rel}:{line}: {rel.parts[0]} imports {mod}")
    assert not bad, "imports that point up the layers (" + " -> ".join(reversed(LAYERS)) + "):\n" + "\n".join(bad)


def test_every_module_is_small_enough_to_read():
    big = [f"{p.relative_to(ROOT)}: {n} lines" for p in modules() if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not big, f"modules over {MAX_LINES} lines (two jobs in one file?):\n" + "\n".join(big)


def test_one_outer_training_loop():
    # a loop's signatures: stepping a trainer until its target, under the signal guard; only the engine may
    import re

    loops = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "fastwgan").rglob("*.py"))
        if p.name != "guards.py" and re.search(r"while\s+\w+\.step\s*<|catch_signals\(", p.read_text())
    ]
    assert loops == ["fastwgan/core/engine.py"], loops


def test_every_package_folder_is_installed():
    import re

    block = re.search(r"^packages = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    listed = set(re.findall(r'"([\w.]+)"', block))
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fastwgan").rglob("__init__.py")} | {
        "fastwgan.assets",
        "fastwgan.kernels",
    }
    assert listed == folders, f"pyproject.toml packages differ from the package folders: {sorted(listed ^ folders)}"
