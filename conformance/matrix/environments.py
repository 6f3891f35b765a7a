"""One Python environment per python-pkcs11 version, for the binding matrix.

Each is a virtualenv that holds only python-pkcs11 (and what that release needs), layered over the environment the
harness runs in (a .pth file adds its site-packages after the venv's own): the harness, pytest and the rest are the
running ones, so every column of the matrix runs the same harness and differs only in the binding. Made once in the
cache directory and reused; 0.7.0 is an sdist that pip builds (Cython) the first time.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ..binding import binding_version

SUPPORTED = (Version("0.7.0"), Version("0.11"))  # 0.7.0 to 0.10.x
INSTALL_TIMEOUT_S = 900.0


class BindingUnavailable(RuntimeError):
    """A binding environment cannot be made; the message is one line naming the fix."""


@dataclass(frozen=True)
class BindingEnvironment:
    version: str
    python: str  # the interpreter to run pytest with

    def to_dict(self) -> dict[str, str]:
        return {"version": self.version, "python": self.python}


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pkcs11-conformance"


def check_version(text: str) -> str:
    """The version as given, if it is one the harness supports; BindingUnavailable naming the range otherwise."""
    try:
        version = Version(text)
    except InvalidVersion:
        raise BindingUnavailable(f"--binding {text!r} is not a version; write e.g. --binding 0.9.3") from None
    if not SUPPORTED[0] <= version < SUPPORTED[1]:
        raise BindingUnavailable(f"--binding {text}: the harness supports python-pkcs11 0.7.0 to 0.10.x; pick one of "
                                "those (pip index versions python-pkcs11)")
    return text


def environment(version: str, cache: Path) -> BindingEnvironment:
    """The environment running python-pkcs11 `version`: this one if it already has it, else the cached venv
    (made now if needed)."""
    if Version(version) == Version(binding_version()):
        return BindingEnvironment(version, sys.executable)
    root = cache / "bindings" / f"python-pkcs11-{version}-py{sys.version_info.major}{sys.version_info.minor}"
    python = root / "bin" / "python"
    if _has(python, version):
        return BindingEnvironment(version, str(python))
    _make(root, version)
    if not _has(python, version):
        raise BindingUnavailable(f"{root}: python-pkcs11 {version} did not install; remove the directory and retry")
    return BindingEnvironment(version, str(python))


def _has(python: Path, version: str) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", "import importlib.metadata as m, pkcs11; print(m.version('python-pkcs11'))"],
                           capture_output=True, text=True, timeout=60)
    return probe.returncode == 0 and probe.stdout.strip() == version


def _make(root: Path, version: str) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, text=True, timeout=300)
    if made.returncode != 0:
        raise BindingUnavailable(f"cannot make a virtualenv at {root} ({_last(made.stderr)}); "
                                "install python3-venv or pass another --cache")
    python = root / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    # After the venv's own site-packages: its python-pkcs11 wins, everything else is the harness's environment.
    layers = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(own) / "zz-pkcs11-conformance-harness.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in layers), encoding="utf-8")
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              f"python-pkcs11=={version}"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    if install.returncode != 0:
        raise BindingUnavailable(f"cannot install python-pkcs11=={version} ({_last(install.stderr)}); check that PyPI is "
                                "reachable and, for 0.7.0 (an sdist), that gcc and the Python headers are installed")


def _last(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
