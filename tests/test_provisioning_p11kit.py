"""p11-kit wrapper, pure parts: the modules directory that shows only the module under test through the proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.vendor.profile import VendorProfile
from conformance.vendor.provisioning import ProvisioningError, Stage
from conformance.vendor.provisioning import p11kit
from conformance.vendor.provisioning.p11kit import P11KitProxy, find_proxy, module_files, read_module_config, write_module_files

SOFTHSM = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    """A package modules directory like Debian 12's /usr/share/p11-kit/modules."""
    d = tmp_path / "share"
    d.mkdir()
    (d / "softhsm2.module").write_text(f"# This file describes how to load the pk11 module\n\nmodule: {SOFTHSM}\n")
    (d / "tpm2_pkcs11.module").write_text("module: libtpm2_pkcs11.so\n\ncritical: no\n")
    (d / "p11-kit-trust.module").write_text("module: p11-kit-trust.so\npriority: 1\ndisable-in: p11-kit-proxy\n"
                                            "x-init-reserved:\n")
    (d / "README").write_text("not a module\n")
    return d


def test_read_module_config_skips_comments_and_blank_lines(packages: Path) -> None:
    assert read_module_config(packages / "softhsm2.module") == {"module": SOFTHSM}
    assert read_module_config(packages / "p11-kit-trust.module")["x-init-reserved"] == ""


def test_every_package_module_is_switched_off(packages: Path) -> None:
    files = module_files("/opt/vendor/libvendor.so", package_dir=packages)
    assert sorted(files) == ["p11-kit-trust.module", "softhsm2.module", "tpm2_pkcs11.module", "under-test.module"]
    for name in ("p11-kit-trust.module", "softhsm2.module", "tpm2_pkcs11.module"):
        config = _parse(files[name])
        assert config["enable-in"] == "p11-kit-none"
        assert config["module"]  # p11-kit skips a file without `module:`, and the package's file would win
    assert _parse(files["under-test.module"]) == {"module": "/opt/vendor/libvendor.so", "critical": "yes"}


def test_module_under_test_replaces_the_package_file_for_the_same_library(packages: Path) -> None:
    files = module_files(SOFTHSM, package_dir=packages)
    assert "under-test.module" not in files
    assert _parse(files["softhsm2.module"]) == {"module": SOFTHSM, "critical": "yes"}


def test_relative_package_registration_matches_by_file_name(packages: Path) -> None:
    files = module_files("/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so", package_dir=packages)
    assert _parse(files["tpm2_pkcs11.module"])["module"].endswith("/libtpm2_pkcs11.so")
    assert "enable-in" not in _parse(files["tpm2_pkcs11.module"])
    assert _parse(files["softhsm2.module"])["enable-in"] == "p11-kit-none"


def test_init_reserved_is_written_verbatim(packages: Path) -> None:
    reserved = "configdir='sql:nssdb' certPrefix='' keyPrefix='' secmod='secmod.db' flags="
    files = module_files("/usr/lib/x86_64-linux-gnu/libsoftokn3.so", reserved, package_dir=packages)
    assert f"x-init-reserved: {reserved}\n" in files["under-test.module"]


def test_init_reserved_must_be_one_line(packages: Path) -> None:
    with pytest.raises(ProvisioningError, match="one line"):
        module_files("/opt/x.so", "a\nmodule: /evil.so", package_dir=packages)


def test_no_package_directory_means_only_the_module(tmp_path: Path) -> None:
    assert list(module_files("/opt/x.so", package_dir=tmp_path / "missing")) == ["under-test.module"]


def test_write_replaces_older_module_files(packages: Path, tmp_path: Path) -> None:
    out = tmp_path / "modules"
    out.mkdir()
    (out / "stale.module").write_text("module: /old.so\n")
    write_module_files(out, SOFTHSM, package_dir=packages)
    assert sorted(p.name for p in out.iterdir()) == ["p11-kit-trust.module", "softhsm2.module", "tpm2_pkcs11.module"]


def test_missing_proxy_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(p11kit, "PROXY_NAME", "no-such-proxy.so")
    with pytest.raises(ProvisioningError, match="apt-get install p11-kit p11-kit-modules"):
        find_proxy()


def test_non_root_uses_private_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        proxy = find_proxy()
    except ProvisioningError as exc:
        pytest.skip(str(exc))
    monkeypatch.setattr(p11kit.os, "geteuid", lambda: 1000)
    stage = _stage(tmp_path, "/opt/vendor/libvendor.so")
    P11KitProxy().apply(stage)
    assert stage.module == proxy and stage.tap and stage.isolation is None
    assert stage.env["XDG_CONFIG_HOME"] == str(tmp_path / "xdg")
    registered = tmp_path / "xdg" / "pkcs11" / "modules" / "under-test.module"
    assert "module: /opt/vendor/libvendor.so\n" in registered.read_text()


def _stage(workdir: Path, module: str) -> Stage:
    profile = VendorProfile.from_dict({
        "name": "t", "module": {"path": module, "via": ["p11-kit"]},
        "token": {"label": "t", "user_pin": "1234", "so_pin": "12345678", "disposable": True},
        "provisioning": {"kind": "softhsm2"},
    })
    return Stage(profile=profile, workdir=workdir, module=module, real_module=module)


def _parse(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out
