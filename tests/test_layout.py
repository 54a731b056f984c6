"""The package's seams (STYLE habit 16): no fastwgan module uses another module's private name.

Read from the source with ``ast``: an import of a ``_name`` from a fastwgan module, or an attribute ``x._name``
reached through anything but ``self`` / ``cls`` / ``super()`` or a third-party module (``torch._dynamo`` is torch's
business, not ours). A name another module needs is part of an interface: make it public, name it well, document it.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "fastwgan", ROOT / "kernels"]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    ours = {p.stem for d in PACKAGES for p in d.glob("*.py")} | {"fastwgan", "kernels"}
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
    found = [hit for d in PACKAGES for p in sorted(d.glob("*.py")) for hit in private_uses(p)]
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
