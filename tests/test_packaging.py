"""The product layout installs as one `leukedge` namespace, as a wheel and as an editable install."""

from __future__ import annotations

import configparser
import importlib.util
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "leukedge": "sdk",
    "leukedge.trainer": "trainer",
    "leukedge.converters": "converters",
    "leukedge.device": "device",
}


def _declared_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}


def _packages_on_disk() -> set[str]:
    found = set()
    for name, folder in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    # leukedge.trainer etc. are found both as sdk-relative and as their own folders; keep real ones
    return found


def test_every_package_folder_is_declared() -> None:
    assert _packages_on_disk() == _declared_packages()


def test_pyproject_holds_only_the_build_system() -> None:
    text = (REPO / "pyproject.toml").read_text()
    tables = [line for line in text.splitlines() if line.startswith("[")]
    assert tables == ["[build-system]"]


def _venv(path: Path) -> Path:
    """A fresh venv that builds with this interpreter's setuptools and wheel.

    It sees the base interpreter's packages (system site packages), whose
    setuptools may be too old for pyproject's ``setuptools>=69`` and lack
    ``wheel`` (a fresh clone's Debian Python does): builds without isolation
    then fail.  A ``.pth`` puts links to exactly this venv's setuptools and
    wheel ahead of them, and nothing else of this venv (not its leukedge).
    """
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(path)
    py = path / "bin" / "python"
    tools = path.parent / (path.name + "-build-tools")
    tools.mkdir()
    for name in BUILD_TOOLS:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        src = origin.parent if origin.name == "__init__.py" else origin
        (tools / src.name).symlink_to(src)
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    (Path(purelib) / "leukedge-test-build-tools.pth").write_text(str(tools) + "\n")
    return py


BUILD_TOOLS = ("setuptools", "pkg_resources", "_distutils_hack", "wheel")


def test_build_tools_are_new_enough() -> None:
    """pyproject asks for setuptools>=69 and wheel; tools/test.sh installs them into .venv."""
    import setuptools

    assert int(setuptools.__version__.split(".")[0]) >= 69, setuptools.__version__
    assert importlib.util.find_spec("wheel") is not None


def _pip(py: Path, *args: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(py),
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]


def _where(py: Path) -> str:
    code = "import leukedge, leukedge.trainer, leukedge.device, leukedge.converters, leukedge.cli; print(leukedge.__file__, leukedge.device.__file__)"
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.slow
def test_wheel_holds_the_namespace_and_installs(tmp_path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("leukedge-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in [
        "leukedge/__init__.py",
        "leukedge/cli/__init__.py",
        "leukedge/trainer/__init__.py",
        "leukedge/converters/__init__.py",
        "leukedge/device/__init__.py",
        "leukedge/segment.py",
    ]:
        assert module in names, module
    assert not any(n.startswith(("sdk/", "tests/", "trainer/")) for n in names)
    ref = REPO / "sdk" / "models" / "reference"
    for f in sorted(ref.glob("*")) if ref.is_dir() else []:
        assert f"leukedge/models/reference/{f.name}" in names
    py = _venv(tmp_path / "venv")
    _pip(py, str(wheel))
    where = _where(py)
    assert str(tmp_path / "venv") in where.split()[0]
    script = tmp_path / "venv" / "bin" / "leukedge"
    ver = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert ver.returncode == 0 and "leukedge, version" in ver.stdout


@pytest.mark.slow
def test_editable_install_maps_the_folders(tmp_path) -> None:
    py = _venv(tmp_path / "venv")
    _pip(py, "-e", str(REPO))
    lk, dev = _where(py).split()
    assert Path(lk) == REPO / "sdk" / "__init__.py"
    assert Path(dev) == REPO / "device" / "__init__.py"


def test_readme_says_what_the_test_command_costs_and_gitignore_has_the_demo() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("./tools/test.sh") - 900 : readme.index("./tools/test.sh")]
    for fact in ("Debian packages", "3 GB", "10 minutes"):
        assert fact in block, fact
    assert "/leukedge-demo/" in (REPO / ".gitignore").read_text().splitlines()
