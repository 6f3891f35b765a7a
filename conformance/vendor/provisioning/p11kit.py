"""The module under test behind p11-kit-proxy.so, alone: every package-registered module is switched off.

Why: p11-kit initialises the module with its own CK_C_INITIALIZE_ARGS (CKF_OS_LOCKING_OK, and pReserved from
`x-init-reserved`), which python-pkcs11 cannot pass. p11-kit reads module registrations from
/usr/share/p11-kit/modules (packages), /etc/pkcs11/modules (system) and, except as root, the user's
$XDG_CONFIG_HOME/pkcs11/modules. As root the registration must therefore be system config: we write it in the
stage's work directory and bind-mount it inside the vendor's private namespace — the host's /etc is never touched.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import ClassVar

from .base import ProvisioningError, Stage

PACKAGE_MODULES = Path("/usr/share/p11-kit/modules")
SYSTEM_CONFIG = Path("/etc/pkcs11")
PROXY_NAME = "p11-kit-proxy.so"
UNDER_TEST = "under-test"
HEADER = "# written by pkcs11-conformance for one pytest worker; removed with it\n"


def find_proxy() -> str:
    """The installed p11-kit-proxy.so; ProvisioningError naming the package when there is none."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    for directory in (f"/usr/lib/{multiarch}", "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        candidate = Path(directory) / PROXY_NAME
        if candidate.exists():
            return str(candidate)
    raise ProvisioningError(f"{PROXY_NAME} not found; install it (apt-get install p11-kit p11-kit-modules)")


def read_module_config(path: Path) -> dict[str, str]:
    """A p11-kit .module file as key -> value (pkcs11.conf(5): `key: value` lines, # comments)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def _same_library(registered: str, module: str) -> bool:
    # Package files often name the library relative to p11-kit's module directory ("libtpm2_pkcs11.so").
    if os.path.isabs(registered) and os.path.exists(registered) and os.path.exists(module):
        return os.path.realpath(registered) == os.path.realpath(module)
    return os.path.basename(registered) == os.path.basename(module)


def module_files(module: str, init_reserved: str | None = None,
                 package_dir: Path = PACKAGE_MODULES) -> dict[str, str]:
    """File name -> content of a modules directory that shows `module`, and nothing else, through the proxy.

    Every package registration gets a same-named file with `enable-in: p11-kit-none` (a same-named file in a
    later directory replaces it whole); the module under test takes the name of a package file that points at
    the same library, so that one is replaced rather than registered twice."""
    if init_reserved is not None and ("\n" in init_reserved or "\r" in init_reserved):
        raise ProvisioningError("module.init_reserved must be one line (p11-kit reads `x-init-reserved: ...`)")
    files: dict[str, str] = {}
    name = UNDER_TEST
    for path in sorted(package_dir.glob("*.module")) if package_dir.is_dir() else []:
        registered = read_module_config(path).get("module", "")
        if registered and _same_library(registered, module):
            name = path.stem
        # The module line stays: p11-kit skips a registration without one, and then the package's file wins.
        files[path.name] = f"{HEADER}module: {registered or path.stem}\nenable-in: p11-kit-none\n"
    # critical: an initialisation failure of the module under test fails C_Initialize of the proxy, instead of
    # the proxy silently showing no slots.
    body = f"{HEADER}module: {module}\ncritical: yes\n"
    if init_reserved is not None:
        body += f"x-init-reserved: {init_reserved}\n"
    files[f"{name}.module"] = body
    return files


def write_module_files(directory: Path, module: str, init_reserved: str | None = None,
                       package_dir: Path = PACKAGE_MODULES) -> Path:
    """Write module_files() into `directory` (made, and emptied of older .module files); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.module"):
        old.unlink()
    for name, text in module_files(module, init_reserved, package_dir).items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


class P11KitProxy:
    name: ClassVar[str] = "p11-kit"

    def apply(self, stage: Stage) -> None:
        proxy = find_proxy()
        wrapped = stage.module  # innermost first: this may already be another wrapper (pkcs11-spy)
        conf = stage.workdir / "p11-kit"
        reserved = stage.profile.init_reserved
        if os.geteuid() == 0:
            self._as_root(stage, conf, wrapped, reserved)
        else:
            # Not root: p11-kit reads the user's config, so no namespace is needed.
            xdg = stage.workdir / "xdg"
            write_module_files(xdg / "pkcs11" / "modules", wrapped, reserved)
            stage.env["XDG_CONFIG_HOME"] = str(xdg)
            stage.notes["p11-kit"] = f"{os.path.basename(wrapped)} alone behind {PROXY_NAME} (user config)"
        stage.module = proxy
        # p11-kit-proxy hands out a new instance per C_GetFunctionList: ground truth must use the tap.
        stage.tap = True

    @staticmethod
    def _as_root(stage: Stage, conf: Path, wrapped: str, reserved: str | None) -> None:
        # p11-kit skips user config in a program running as root.
        if not PACKAGE_MODULES.is_dir():
            raise ProvisioningError(f"{PACKAGE_MODULES} is missing; reinstall p11-kit-modules "
                                    "(apt-get install --reinstall p11-kit-modules)")
        modules = write_module_files(conf / "modules", wrapped, reserved)
        iso = stage.isolate()
        # Mount points must exist, and /etc/pkcs11 usually does not (creating it would change the host's /etc).
        # So the same private directory goes over the package directory, which exists whenever the proxy does;
        # the switch-off files stay in it for the case that the host has /etc/pkcs11/modules too.
        iso.bind(modules, str(PACKAGE_MODULES))
        if SYSTEM_CONFIG.is_dir():
            # Host system config (pkcs11.conf, admin registrations) replaced by ours: only `modules/` inside.
            etc = conf / "etc"
            write_module_files(etc / "modules", wrapped, reserved)
            iso.bind(etc, str(SYSTEM_CONFIG))
        stage.notes["p11-kit"] = (f"{os.path.basename(wrapped)} alone behind {PROXY_NAME}; the registration is "
                                  "bind-mounted in a private namespace (p11-kit ignores user config as root)")
