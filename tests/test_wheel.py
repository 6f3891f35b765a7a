"""The package works installed, outside the repository (issue 10: "A test builds the wheel, installs it into a fresh
virtualenv outside the repository, and from an empty temporary directory runs a disposable profile and a
non-disposable one").

One test, in steps (one function, so `pytest tests -n 2` builds and installs once, not once per worker):

1. The wheel of the working tree (`pip wheel --no-deps`, build isolation: setuptools>=77 from the index) is built
   from a copy of the tree under tmp_path, so the build writes no build/ or egg-info into the checkout.
2. A fresh virtualenv under tmp_path gets the wheel and its dependencies from the package index, pinned to the
   versions the development venv has (the shipped profiles declare deviations by python-pkcs11 version, so the run
   must see the binding the profiles were written for); pip's own cache is used as usual. About 2-3 s each here.
3. The package imported there is the wheel's (`conformance.__file__` in that venv's site-packages), and the wheel
   carries every data file a run reads: report templates, results schema, binding declarations, the tap's C
   source, the shipped profiles (and every module of the package).
4. From an empty directory, with an environment that names nothing in the repository (no PYTEST_* variables of
   this run, no PYTHONPATH, no PATH entry into the checkout) and a private XDG cache (so the tap is compiled from
   the installed tap.c), that venv's own `pytest`, with no test path argument:
   a. `--vendor=softhsm`: the shipped disposable profile, 80 results, nothing failed, a finished results JSON and
      the HTML report in ./reports;
   b. `--vendor=<local>`: a SoftHSM token made here by hand with objects on it, described by ./vendors/NAME.toml
      (disposable = false, provisioning none, PIN from the environment): exit 0, "token left exactly as found", the
      results' integrity record intact, and the token's objects and flags read again afterwards unchanged;
   c. `pkcs11-conformance vendors` there lists the shipped profiles ([shipped]) and the local one (its path).

It skips only when something outside the harness is missing: SoftHSM, a C compiler (the tap), `venv`, or the
network to the package index.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from fnmatch import fnmatchcase
from importlib import metadata
from pathlib import Path

import pytest

from test_nondestructive import LIST, PIN, SO_PIN, SOFTHSM, softhsm_findings

REPO = Path(__file__).resolve().parent.parent
PROFILE_NAME = "local-partition"
PIN_VARIABLE = "WHEEL_PARTITION_PIN"
CHECKS = 220  # the shipped checks, per vendor (README: "220 per vendor")

# What a run needs besides the code, as paths inside the wheel (the package-data of pyproject.toml).
DATA = ("conformance/report/templates/*.j2", "conformance/results/*.json", "conformance/vendor/binding.toml",
        "conformance/vendor/provider.toml",
        "conformance/vendor/provisioning/native/tap.c", "conformance/profiles/*.toml",
        "conformance/profiles/templates/*.toml", "conformance/reproduce/recipes/*.py", "conformance/bench/*.json",
        "conformance/bench/templates/*.j2")
# Top-level entries of the checkout that the build does not read (and that may be large or busy).
NOT_SOURCE = {".git", ".venv", "build", "dist", "reports", "tests", ".hypothesis", ".pytest_cache", ".ci"}

# Objects a production partition might hold; none carries the harness's label prefix, so none may go.
SEED = """
import pkcs11, sys
from pkcs11 import Attribute, KeyType, ObjectClass
token = pkcs11.lib(sys.argv[1]).get_token(token_label="partition")
with token.open(rw=True, user_pin=sys.argv[2]) as s:
    s.generate_key(KeyType.AES, 256, store=True, label="production-aes", id=b"\\x01")
    s.generate_keypair(KeyType.RSA, 2048, store=True, label="production-rsa", id=b"\\x02")
    s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.LABEL: "production-data",
                     Attribute.VALUE: b"v"})
"""
CONFORMANCE_FILE = "import conformance, sysconfig; print(conformance.__file__); print(sysconfig.get_paths()['purelib'])"

# pip's words for an index it could not reach (then the test skips: the network is outside the harness).
OFFLINE = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
           "Name or service not known", "Network is unreachable", "ConnectTimeoutError", "Read timed out",
           "ProxyError", "Could not fetch URL", "No route to host", "SSLError")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment less everything that could lead a child to the checkout or to this run: PYTEST_*
    (xdist worker ids, PYTEST_CURRENT_TEST, PYTEST_ADDOPTS), PYTHONPATH/PYTHONHOME/VIRTUAL_ENV, PATH entries into
    the repository, any variable naming the repository, and the variables that would choose a token or PIN."""
    repo = str(REPO)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "PKCS11_")) and repo not in v and k != "PATH"
           and k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SOFTHSM2_CONF", "PWD", "OLDPWD"}}
    env["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", os.defpath).split(os.pathsep)
                                  if p and not p.startswith(repo))
    env.update(extra)
    return env


def matches(name: str, pattern: str) -> bool:
    """NAME (a path in the wheel) matches PATTERN part by part: `*` never crosses a `/`."""
    parts, wanted = name.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(fnmatchcase(p, w) for p, w in zip(parts, wanted))


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def pip(python: Path, args: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run `python -m pip ARGS`; skip if the index could not be reached, fail with pip's output on anything else."""
    proc = run([str(python), "-m", "pip", *args, "--timeout", "30", "--retries", "2"], cwd, env)
    if proc.returncode == 0:
        return
    output = proc.stdout + proc.stderr
    if any(marker in output for marker in OFFLINE) and "ResolutionImpossible" not in output:
        line = next((ln for ln in output.splitlines() if any(m in ln for m in OFFLINE)), "")
        pytest.skip(f"pip could not reach the package index (no network?): {line.strip()[:300]}")
    pytest.fail(f"pip {' '.join(args)} failed ({proc.returncode}):\n{output}", pytrace=False)


def copy_source(into: Path) -> Path:
    """A copy of the checkout's source (what the build reads), so that building writes nothing into the checkout."""
    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == REPO
        return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))
                or (top and n in NOT_SOURCE)}

    return Path(shutil.copytree(REPO, into, symlinks=True, ignore=ignore))


def dev_pins(into: Path) -> Path:
    """Constraints: the versions of this (development) environment's distributions, the package itself left out."""
    ours = {"pkcs11-conformance", "pip", "setuptools", "wheel"}
    pins = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                   if d.metadata["Name"] and d.metadata["Name"].lower().replace("_", "-") not in ours})
    into.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return into


def make_partition(root: Path, python: Path, env: dict[str, str]) -> Path:
    """A SoftHSM token labelled 'partition' in its own token directory, with a few objects; returns its conf."""
    (root / "tokens").mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    token_env = {**env, "SOFTHSM2_CONF": str(conf)}
    proc = run(["softhsm2-util", "--init-token", "--free", "--label", "partition", "--pin", PIN, "--so-pin", SO_PIN],
               root, token_env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run([str(python), "-c", SEED, str(SOFTHSM), PIN], root, token_env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return conf


def token_contents(python: Path, conf: Path, env: dict[str, str]) -> tuple[list[tuple[str, str]], str]:
    """The token's (class, label) objects and its flags, read with the fresh venv's python-pkcs11."""
    proc = run([str(python), "-c", LIST, str(SOFTHSM), PIN], conf.parent, {**env, "SOFTHSM2_CONF": str(conf)}, 60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    objects, flags = proc.stdout.splitlines()
    return ast.literal_eval(objects), flags


def console(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def check_results(path: Path, vendor: str) -> dict:
    assert path.is_file(), f"no results JSON at {path}"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["run"]["finished"], doc["run"]
    assert {r["vendor"] for r in doc["results"]} == {vendor}, doc["results"]
    bad = [(r["check"], r["outcome"], r.get("reason")) for r in doc["results"]
           if r["outcome"] in ("failed", "error", "crashed", "hung")]
    assert not bad, bad
    assert (path.parent / "report.html").is_file(), "no report.html beside the results"
    return doc


def test_installed_wheel_runs_disposable_and_non_disposable_profiles_from_an_empty_directory(tmp_path: Path) -> None:
    """Build the wheel, install it into a fresh venv outside the repository, and from an empty directory run the
    shipped disposable softhsm profile and a local non-disposable profile on a hand-made token (issue 10)."""
    if SOFTHSM is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM 2 is not installed (softhsm2-util, libsofthsm2.so): apt-get install softhsm2")
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the non-disposable run builds the tap from its source (apt-get install gcc)")
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    env = clean_env()
    work = tmp_path / "work"
    work.mkdir()

    # 1. The wheel of the working tree.
    source = copy_source(tmp_path / "source")
    wheelhouse = tmp_path / "wheel"
    pip(Path(sys.executable), ["wheel", "--no-deps", "--wheel-dir", str(wheelhouse), str(source)], work, env)
    wheels = list(wheelhouse.glob("pkcs11_conformance-*.whl"))
    assert len(wheels) == 1, list(wheelhouse.iterdir())
    wheel = wheels[0]
    lap("build wheel")

    # 3 (the wheel's side). Every data file a run reads, and every module of the package, is in the wheel.
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    in_tree = {p.relative_to(source).as_posix() for p in (source / "conformance").rglob("*") if p.is_file()}
    for pattern in DATA:
        in_wheel = {n for n in shipped if matches(n, pattern)}
        assert in_wheel, f"the wheel has no {pattern}"
        assert {n for n in in_tree if matches(n, pattern)} <= in_wheel, (pattern, sorted(in_wheel))
    modules = {n for n in in_tree if n.endswith(".py")}
    assert not modules - shipped, f"modules missing from the wheel: {sorted(modules - shipped)}"

    # 2. A fresh virtualenv outside the repository, the wheel and its dependencies in it.
    venv = tmp_path / "venv"
    proc = run([sys.executable, "-m", "venv", str(venv)], work, env)
    if proc.returncode != 0 and ("ensurepip" in proc.stdout + proc.stderr):
        pytest.skip(f"python cannot make a virtualenv with pip here: {proc.stderr.strip()[:300]}")
    assert proc.returncode == 0, console(proc)
    python = venv / "bin" / "python"
    lap("create venv")
    pip(python, ["install", "--constraint", str(dev_pins(tmp_path / "pins.txt")), str(wheel)], work, env)
    lap("install wheel + dependencies")

    # The run's directory: empty, outside the repository; the run's environment names nothing of the repository.
    here = tmp_path / "empty"
    here.mkdir()
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", XDG_CACHE_HOME=str(tmp_path / "cache"))

    # 3 (the venv's side). The package imported there is the wheel's, not the checkout.
    proc = run([str(python), "-c", CONFORMANCE_FILE], here, env, timeout=60)
    assert proc.returncode == 0, console(proc)
    module_file, purelib = (Path(line) for line in proc.stdout.splitlines())
    assert module_file.is_relative_to(purelib) and purelib.is_relative_to(venv), (module_file, purelib)
    assert not module_file.resolve().is_relative_to(REPO), module_file
    for pattern in DATA:  # installed, beside the code that reads them
        assert list(purelib.glob(pattern)), f"{pattern} not installed in {purelib}"

    # 4a. The shipped disposable profile, the shipped checks collected by the plugin itself (no test path).
    # --step-timeout=3 as in .ci/run: under `pytest tests -n 2` a slow call must not be taken for a hang.
    pytest_args = [str(venv / "bin" / "pytest"), "-p", "no:cacheprovider", "--step-timeout=3"]
    proc = run([*pytest_args, "--vendor=softhsm"], here, env)
    assert proc.returncode == 0, console(proc)
    assert f"rootdir: {here}" in proc.stdout and f"collected {CHECKS} items" in proc.stdout, console(proc)
    doc = check_results(here / "reports" / "results.json", "softhsm")
    assert len(doc["results"]) == CHECKS, [r["check"] for r in doc["results"]]
    lap("run softhsm (disposable)")

    # 4b. A non-disposable token made by hand, described by a local profile in ./vendors.
    conf = make_partition(tmp_path / "partition", python, env)
    before = token_contents(python, conf, env)
    assert len(before[0]) == 4, before  # AES key, RSA key pair, data object
    (here / "vendors").mkdir()
    local = here / "vendors" / f"{PROFILE_NAME}.toml"
    local.write_text(
        f'name = "{PROFILE_NAME}"\n'
        'description = "a hand-made SoftHSM token standing in for a production partition"\n'
        f'[module]\npath = "{SOFTHSM}"\nenv = {{ SOFTHSM2_CONF = "{conf}" }}\n'
        f'[token]\nlabel = "partition"\nuser_pin = "env:{PIN_VARIABLE}"\ndisposable = false\n'
        '[provisioning]\nkind = "none"\n' + softhsm_findings(), encoding="utf-8")
    shutil.rmtree(here / "reports")
    proc = run([*pytest_args, f"--vendor={PROFILE_NAME}"], here, {**env, PIN_VARIABLE: PIN})
    assert proc.returncode == 0, console(proc)
    assert f"{PROFILE_NAME}: token left exactly as found" in proc.stdout, console(proc)
    doc = check_results(here / "reports" / "results.json", PROFILE_NAME)
    assert doc["vendors"][PROFILE_NAME]["integrity"]["intact"] is True, doc["vendors"][PROFILE_NAME]
    assert token_contents(python, conf, env) == before
    assert list((tmp_path / "cache" / "pkcs11-conformance").glob("tap-*.so")), "the tap was not built from tap.c"
    lap("run local profile (non-disposable)")

    # 4b'. The benchmark from the installed package, on the same non-disposable token: session objects only, the
    # token as found afterwards; its page and schema come from the wheel.
    proc = run([str(venv / "bin" / "pkcs11-conformance"), "bench", f"--vendor={PROFILE_NAME}", "--mechanism",
                "rsa2048_sign", "--mechanism", "search", "--strategy", "per_thread", "--threads", "1", "--trials", "2",
                "--trial-seconds", "0.05", "-o", "bench"], here, {**env, PIN_VARIABLE: PIN}, timeout=300)
    assert proc.returncode == 0, console(proc)
    bench = json.loads((here / "bench" / "bench.json").read_text(encoding="utf-8"))
    assert [r["outcome"] for r in bench["rows"]] == ["measured", "measured"], bench["rows"]
    assert (here / "bench" / "bench.html").stat().st_size > 0
    assert token_contents(python, conf, env) == before
    lap("bench (non-disposable)")

    # 4c. The console script lists the shipped profiles and the local one.
    proc = run([str(venv / "bin" / "pkcs11-conformance"), "vendors"], here, env, timeout=120)
    assert proc.returncode == 0, console(proc)
    listed = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    profiles = {Path(n).stem for n in shipped if matches(n, "conformance/profiles/*.toml")} - {"TEMPLATE"}
    assert profiles and profiles <= listed.keys(), proc.stdout
    for name in profiles:
        assert "[shipped]" in listed[name], listed[name]
    assert f"[{local}]" in listed[PROFILE_NAME] and "[shipped]" not in listed[PROFILE_NAME], proc.stdout
    lap("vendors")
    print("timings (s):", timings, "total", round(sum(timings.values()), 1))
