"""The fault-injecting shim (tests/native/faultshim.c): built on demand, wrapped in a vendor profile, and the
fake checks that drive it. Used by test_faults.py to prove crash / hang / error isolation on a real module."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

SHIM_SOURCE = Path(__file__).resolve().parent / "native" / "faultshim.c"


def build_shim(directory: Path) -> Path:
    """Compile faultshim.c into directory/faultshim.so (the C compiler is the only requirement)."""
    return build_native(SHIM_SOURCE, directory / "faultshim.so")


def build_breaker(directory: Path) -> Path:
    """Compile breaker.c (a module breaking one rule at a time) into directory/breaker.so."""
    return build_native(SHIM_SOURCE.with_name("breaker.c"), directory / "breaker.so")


def build_native(source: Path, target: Path) -> Path:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise RuntimeError(f"no C compiler to build {source.name}; install one (apt-get install gcc)")
    proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(target), str(source), "-ldl",
                           "-lpthread"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"building {source.name} failed:\n{proc.stderr}")
    return target


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def faulty_profile(path: Path, shim: Path, real_module: str, faults: str = "", fault_file: Path | None = None,
                   name: str = "faulty") -> Path:
    """Write a profile for SoftHSM loaded through the shim (its own disposable token) and return its path.
    `faults` is CONFORMANCE_FAULTS; `fault_file`, if given, is CONFORMANCE_FAULT_FILE (re-read on every call)."""
    env = {"CONFORMANCE_FAULT_MODULE": real_module, "CONFORMANCE_FAULTS": faults}
    if fault_file is not None:
        env["CONFORMANCE_FAULT_FILE"] = str(fault_file)
    path.write_text(
        f'name = "{name}"\n'
        'description = "SoftHSM 2 behind the fault-injecting shim (tests/native/faultshim.c)"\n\n'
        "[module]\n"
        f"path = {_toml(str(shim))}\n"
        "env = { " + ", ".join(f"{k} = {_toml(v)}" for k, v in env.items()) + " }\n\n"
        "[token]\n"
        'label = "conformance"\n'
        'user_pin = "1234"\n'
        'so_pin = "12345678"\n'
        "disposable = true\n\n"
        "[provisioning]\n"
        'kind = "softhsm2"\n',
        encoding="utf-8",
    )
    return path


# The functions faulted below are ones the harness's own start-up never calls (preflight, executor child start,
# capability probe, per-check reset), so only the check that calls one is hit. Each check passes on a sound module.
FAULTS = ";".join([
    "C_GenerateRandom=segv",
    "C_SignInit=abort",
    "C_VerifyInit=exit:9",
    "C_SeedRandom=hang",
    "C_SetAttributeValue=rv:0x30",  # CKR_DEVICE_ERROR
    "C_CopyObject=rv:0x5",  # CKR_GENERAL_ERROR
    "C_DigestFinal=delay:0.5",  # slow, but well inside --check-timeout
])

FAULT_CHECKS = '''
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass


def data_object(session):
    return session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                                  Attribute.LABEL: "x", Attribute.VALUE: b"v"})


@pytest.mark.check("fake.random_segfaults", layer="module", spec="x")
def test_random(vendor):
    assert len(vendor.open_session(login=False).generate_random(128)) == 16


@pytest.mark.check("fake.sign_aborts", layer="module", spec="x")
def test_sign(vendor):
    key = vendor.open_session().generate_key(KeyType.AES, 128, store=False)
    assert key.sign(b"data", mechanism=Mechanism.AES_CMAC)


@pytest.mark.check("fake.verify_exits", layer="module", spec="x")
def test_verify(vendor):
    key = vendor.open_session().generate_key(KeyType.AES, 128, store=False)
    assert not key.verify(b"data", b"\\0" * 16, mechanism=Mechanism.AES_CMAC)  # a wrong MAC, rejected


@pytest.mark.check("fake.seed_hangs", layer="module", spec="x")
def test_seed(vendor):
    vendor.open_session(login=False).seed_random(b"entropy")


@pytest.mark.check("fake.set_attribute_device_error", layer="module", spec="x")
def test_set_attribute(vendor):
    obj = data_object(vendor.open_session())
    obj[Attribute.LABEL] = "y"
    assert obj[Attribute.LABEL] == "y"


@pytest.mark.check("fake.copy_general_error", layer="module", spec="x")
def test_copy(vendor):
    copy = data_object(vendor.open_session()).copy({Attribute.LABEL: "z"})
    assert copy[Attribute.LABEL] == "z"


@pytest.mark.check("fake.digest_slow", layer="module", spec="x")
def test_digest(vendor):
    assert len(vendor.open_session(login=False).digest([b"a", b"b"], mechanism=Mechanism.SHA256)) == 32


@pytest.mark.check("fake.runs_after", layer="module", spec="x")
def test_runs_after(vendor):
    session = vendor.open_session()
    assert data_object(session)[Attribute.VALUE] == b"v"
'''


class locked:
    """An exclusive flock on `path` for the with-block (xdist workers build and run things once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.fh = open(self.path, "w")
        fcntl.flock(self.fh, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def shared_dir(tmp_path_factory, name: str) -> Path:
    """A directory every xdist worker of this test run sees (beside the workers' own basetemps), for work made once
    under locked() and read by all."""
    base = tmp_path_factory.getbasetemp()
    directory = (base.parent if base.name.startswith("popen-gw") else base) / name
    directory.mkdir(exist_ok=True)
    return directory
