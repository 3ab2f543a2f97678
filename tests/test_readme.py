"""The README's Architecture section names every module, each under its package, and only those."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "kvruntime")


def named_modules() -> set[str]:
    """The modules the Architecture section names, as paths from the repository root.

    Each bullet opens with its package in bold (``- **`kvruntime/kernel/`**``); the
    file names in it are that package's, and a name with a slash is a path of its own.
    """
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Architecture\n(.*?)^## ", readme, re.M | re.S)
    assert match, "README.md has no Architecture section"
    named = set()
    for bullet in re.split(r"^- ", match.group(1), flags=re.M)[1:]:
        package = re.match(r"\*\*`([\w/]+?)/?`\*\*", bullet)
        for name in re.findall(r"`((?:[\w]+/)*[\w]+\.py)`", bullet):
            if "/" in name:
                named.add(name)
            elif package:
                named.add(f"{package.group(1)}/{name}")
    return {name for name in named if not name.startswith("tests/")}


def modules() -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    }


def test_the_architecture_section_names_every_module_under_its_package() -> None:
    missing = modules() - named_modules()
    assert not missing, f"modules the Architecture section does not name: {sorted(missing)}"


def test_the_architecture_section_names_no_module_that_is_gone() -> None:
    stale = named_modules() - modules()
    assert not stale, f"the Architecture section names modules that do not exist: {sorted(stale)}"
