"""Finding vendor profiles by name and resolving --vendor / --vendor-file to profiles.

A name is looked up in the local directories first (--vendor-dir, the conformance_vendor_dirs ini key, ./vendors),
then among the profiles shipped with the package (conformance/profiles): a local NAME.toml overrides a shipped one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from .profile import ProfileError, VendorProfile, load_profile

ALL = "all"
# Files in a vendors directory that document the format rather than describe a setup.
NOT_PROFILES = {"TEMPLATE.toml"}
# The profiles (and TEMPLATE.toml, templates/) that ship inside the package.
SHIPPED = Path(str(resources.files("conformance.profiles")))
TEMPLATE = SHIPPED / "TEMPLATE.toml"


def search_dirs(local: Iterable[Path]) -> list[Path]:
    """Where profiles are looked up, first wins: the local directories in order, then the shipped profiles."""
    return [*dict.fromkeys(Path(d) for d in local), SHIPPED]


def is_shipped(path: Path) -> bool:
    return path.resolve().parent == SHIPPED.resolve()


@dataclass(frozen=True)
class Availability:
    """Whether a profile can run on this machine, and if not, why (safe to print)."""

    profile: VendorProfile | None
    name: str
    path: str
    available: bool
    why: str = ""
    version: str | None = None  # the owning package and its version, where the module is packaged


def profile_paths(dirs: Iterable[Path]) -> dict[str, Path]:
    """NAME -> path for every profile file in the directories (first directory wins)."""
    found: dict[str, Path] = {}
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            if path.name not in NOT_PROFILES:
                found.setdefault(path.stem, path)
    return found


def availability(name: str, path: Path, with_version: bool = False) -> Availability:
    try:
        profile = load_profile(path)
    except ProfileError as exc:
        return Availability(None, name, str(path), False, str(exc))
    if profile.module is None:
        return Availability(profile, name, str(path), False, f"module not found at {', '.join(profile.module_paths)}")
    from .provisioning.requirements import missing, package_version

    lacking = missing(profile.provisioning, profile.via)
    version = package_version(profile.module) if with_version else None
    if lacking:
        return Availability(profile, name, str(path), False, f"missing {', '.join(lacking)}", version)
    return Availability(profile, name, str(path), True, version=version)


def resolve(names: Sequence[str], files: Sequence[str], dirs: Sequence[Path]) -> list[VendorProfile]:
    """The profiles selected on the command line, in order, without duplicates; ProfileError names the fix."""
    known = profile_paths(dirs)
    selected: list[VendorProfile] = []
    for name in names:
        if name == ALL:
            usable = [a.profile for n, p in known.items() if (a := availability(n, p)).available and a.profile]
            # --vendor=all names what it leaves out, so a missing stack is never silent.
            for n, p in known.items():
                if not (a := availability(n, p)).available:
                    print(f"pkcs11-conformance: --vendor=all leaves out {n}: {a.why}", file=sys.stderr)
            if not usable:
                raise ProfileError(f"--vendor=all: no profile's module is present in {', '.join(map(str, dirs))}; "
                                   "run `pkcs11-conformance vendors` to see why")
            selected.extend(usable)
            continue
        if name not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise ProfileError(f"unknown vendor {name!r}; known vendors: {listing} (or pass --vendor-file=PATH)")
        selected.append(_usable(load_profile(known[name])))
    for file in files:
        selected.append(_usable(load_profile(file)))
    unique: dict[str, VendorProfile] = {}
    for profile in selected:
        if profile.name in unique and not _same_file(unique[profile.name].source, profile.source):
            raise ProfileError(f"two profiles are named {profile.name!r} ({unique[profile.name].source}, {profile.source}); rename one")
        unique.setdefault(profile.name, profile)
    return list(unique.values())


def _same_file(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def _usable(profile: VendorProfile) -> VendorProfile:
    if profile.module is None:
        raise ProfileError(f"{profile.source}: module not found at {', '.join(profile.module_paths)}; "
                           "install the module or fix module.path")
    from .provisioning.requirements import missing

    lacking = missing(profile.provisioning, profile.via)
    if lacking:
        raise ProfileError(f"{profile.source}: {profile.name} needs {', '.join(lacking)}")
    return profile
