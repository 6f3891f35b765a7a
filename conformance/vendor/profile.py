"""Vendor profiles: vendors/NAME.toml loaded into frozen dataclasses, every bad field reported with its fix."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ..outcomes import OUTCOMES
from ..pins import PinUnavailable, Secret
from .provisioning.kinds import PROVISIONERS, WRAPPERS

VERSION_KEYS = ("python-pkcs11", "library")
PIN_ENV = {"user_pin": "PKCS11_TOKEN_PIN", "so_pin": "PKCS11_TOKEN_SO_PIN"}


class ProfileError(ValueError):
    """A vendor profile cannot be used; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Deviation:
    """A declared, understood difference from the expected behaviour of one check."""

    check: str
    reason: str
    outcome: str | None = None
    observed: Any = None
    issue: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)

    def applies(self, versions: Mapping[str, str]) -> bool:
        """True when every version condition holds for the given component versions."""
        for key, spec in self.versions.items():
            have = versions.get(key)
            if have is None or have not in SpecifierSet(spec):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "reason": self.reason}
        if self.outcome is not None:
            out["outcome"] = self.outcome
        if self.observed is not None:
            out["observed"] = self.observed
        if self.issue is not None:
            out["issue"] = self.issue
        if self.versions:
            out["versions"] = dict(self.versions)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "deviation") -> Deviation:
        _no_unknown(data, {"check", "reason", "outcome", "observed", "issue", "versions", "model"}, where)
        check = _str(data, "check", where, required=True)
        reason = _str(data, "reason", where, required=True)
        outcome = _str(data, "outcome", where)
        if outcome is not None and outcome not in OUTCOMES:
            raise ProfileError(f"{where}.outcome: {outcome!r} is not an outcome; use one of {', '.join(OUTCOMES)}")
        observed = data.get("observed")
        if "model" in data:
            # Model parameters are measured on every run now (live/characterise.py), never declared.
            raise ProfileError(f"{where}.model: the engine's parameters are measured at the start of each run "
                               "(vendors.NAME.characterised in the results); remove `model` from the deviation")
        if outcome is None and observed is None:
            raise ProfileError(f"{where}: declare what is expected instead: set outcome = \"failed\" or observed = ...")
        issue = _str(data, "issue", where)
        if issue is not None and not issue.startswith(("http://", "https://")):
            raise ProfileError(f"{where}.issue: {issue!r} is not a URL; give the upstream issue's http(s) address")
        versions = data.get("versions", {})
        if not isinstance(versions, dict):
            raise ProfileError(f"{where}.versions: expected a table like {{ python-pkcs11 = \">=0.10\" }}")
        for key, spec in versions.items():
            if key not in VERSION_KEYS:
                raise ProfileError(f"{where}.versions: unknown component {key!r}; use one of {', '.join(VERSION_KEYS)}")
            try:
                SpecifierSet(str(spec))
            except InvalidSpecifier:
                raise ProfileError(f"{where}.versions.{key}: {spec!r} is not a version range; write e.g. \">=0.10,<0.11\"") from None
        return cls(check, reason, outcome, observed, issue, {k: str(v) for k, v in versions.items()})


@dataclass(frozen=True)
class VendorProfile:
    """One PKCS#11 setup to test: identity, module, token, PINs and what is known to differ."""

    name: str
    description: str
    module_paths: tuple[str, ...]
    token_label: str | None
    token_uri: str | None
    user_pin: Secret
    so_pin: Secret | None
    disposable: bool
    provisioning: str
    env: Mapping[str, str] = field(default_factory=dict)
    deviations: tuple[Deviation, ...] = ()
    source: str | None = None
    # Layers between the binding and the module, innermost first ("p11-kit", "spy"): conformance.vendor.provisioning.
    via: tuple[str, ...] = ()
    # CK_C_INITIALIZE_ARGS.pReserved for the module (NSS softokn's config string); python-pkcs11 cannot pass it,
    # p11-kit can (x-init-reserved), so it needs via = ["p11-kit"].
    init_reserved: str | None = None
    # Checks the profile does not run (fnmatch patterns of check ids), each with the reason shown as the skip.
    skip: Mapping[str, str] = field(default_factory=dict)

    def pin_values(self) -> list[str]:
        """Every PIN value the profile resolves to, for redaction (PINs that cannot be resolved are skipped)."""
        values = []
        for secret in (self.user_pin, self.so_pin):
            if secret is not None:
                try:
                    values.append(secret.reveal())
                except PinUnavailable:
                    pass
        return values

    @property
    def module(self) -> str | None:
        """The first module path that exists on this machine, or None."""
        for path in self.module_paths:
            if Path(path).exists():
                return path
        return None

    def to_dict(self) -> dict[str, Any]:
        token: dict[str, Any] = {"disposable": self.disposable, "user_pin": self.user_pin.spec}
        if self.token_label is not None:
            token["label"] = self.token_label
        if self.token_uri is not None:
            token["uri"] = self.token_uri
        if self.so_pin is not None:
            token["so_pin"] = self.so_pin.spec
        module: dict[str, Any] = {"path": list(self.module_paths)}
        if self.env:
            module["env"] = dict(self.env)
        if self.via:
            module["via"] = list(self.via)
        if self.init_reserved is not None:
            module["init_reserved"] = self.init_reserved
        out: dict[str, Any] = {
            "name": self.name,
            "module": module,
            "token": token,
            "provisioning": {"kind": self.provisioning},
        }
        if self.description:
            out["description"] = self.description
        if self.deviations:
            out["deviations"] = [d.to_dict() for d in self.deviations]
        if self.skip:
            out["skip"] = [{"check": k, "reason": v} for k, v in self.skip.items()]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> VendorProfile:
        where = source or "profile"
        _no_unknown(data, {"name", "description", "module", "token", "provisioning", "deviations", "skip"}, where)
        name = _str(data, "name", where, required=True)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
            raise ProfileError(f"{where}: name {name!r}: use letters, digits, '.', '_' and '-' only (it names files and results)")
        description = _str(data, "description", where) or ""

        module = _table(data, "module", where, required=True)
        _no_unknown(module, {"path", "env", "via", "init_reserved"}, f"{where}: module")
        raw_paths = module.get("path")
        paths = [raw_paths] if isinstance(raw_paths, str) else raw_paths
        if not paths or not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            raise ProfileError(f"{where}: module.path: give the PKCS#11 library's path, or a list of paths tried in order")
        env = module.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ProfileError(f"{where}: module.env: expected a table of strings, e.g. env = {{ VAR = \"value\" }}")
        via = module.get("via", [])
        if not isinstance(via, list) or not all(isinstance(v, str) and v in WRAPPERS for v in via) or len(set(via)) != len(via):
            raise ProfileError(f"{where}: module.via: expected a list of distinct layers from {', '.join(sorted(WRAPPERS))}, "
                               "innermost first, e.g. via = [\"p11-kit\"]")
        init_reserved = _str(module, "init_reserved", f"{where}: module")
        if init_reserved is not None and "p11-kit" not in via:
            raise ProfileError(f"{where}: module.init_reserved needs via = [\"p11-kit\"] (python-pkcs11 cannot pass it itself)")

        token = _table(data, "token", where, required=True)
        twhere = f"{where}: token"
        _no_unknown(token, {"label", "uri", "user_pin", "so_pin", "disposable"}, twhere)
        label = _str(token, "label", twhere)
        uri = _str(token, "uri", twhere)
        if (label is None) == (uri is None):
            raise ProfileError(f"{twhere}: set exactly one of label = \"...\" or uri = \"pkcs11:token=...\"")
        if uri is not None and not uri.startswith("pkcs11:"):
            raise ProfileError(f"{twhere}.uri: {uri!r} is not an RFC 7512 URI; write pkcs11:token=LABEL")
        disposable = token.get("disposable", False)
        if not isinstance(disposable, bool):
            raise ProfileError(f"{twhere}.disposable: expected true or false, got {disposable!r}")
        user_pin = _pin(token, "user_pin", twhere, disposable, required=True)
        so_pin = _pin(token, "so_pin", twhere, disposable, required=False)

        prov = _table(data, "provisioning", where) or {"kind": "none"}
        _no_unknown(prov, {"kind"}, f"{where}: provisioning")
        kind = _str(prov, "kind", f"{where}: provisioning") or "none"
        if kind not in PROVISIONERS:
            raise ProfileError(f"{where}: provisioning.kind: unknown kind {kind!r}; use one of {', '.join(sorted(PROVISIONERS))}")
        if kind != "none" and not disposable:
            raise ProfileError(f"{where}: provisioning.kind = {kind!r} creates tokens; it needs token.disposable = true")
        if kind in ("softhsm2", "opencryptoki", "tpm2") and so_pin is None:
            raise ProfileError(f"{where}: token.so_pin: provisioning a token needs an SO PIN")
        if kind != "none" and label is None:
            raise ProfileError(f"{where}: token.label: provisioning a token needs the label to give it")

        raw_devs = data.get("deviations", [])
        if not isinstance(raw_devs, list):
            raise ProfileError(f"{where}: deviations: write each as a [[deviations]] table")
        deviations = tuple(
            Deviation.from_dict(d if isinstance(d, dict) else {}, f"{where}: deviations[{i}]") for i, d in enumerate(raw_devs)
        )
        raw_skip = data.get("skip", [])
        skip: dict[str, str] = {}
        if not isinstance(raw_skip, list):
            raise ProfileError(f"{where}: skip: write each as a [[skip]] table with check = \"pattern\" and reason = \"...\"")
        for i, entry in enumerate(raw_skip):
            swhere = f"{where}: skip[{i}]"
            if not isinstance(entry, dict):
                raise ProfileError(f"{swhere}: expected a [[skip]] table with check and reason")
            _no_unknown(entry, {"check", "reason"}, swhere)
            skip[_str(entry, "check", swhere, required=True)] = _str(entry, "reason", swhere, required=True)  # type: ignore[index]
        return cls(
            name=name,
            description=description,
            module_paths=tuple(paths),
            token_label=label,
            token_uri=uri,
            user_pin=user_pin,
            so_pin=so_pin,
            disposable=disposable,
            provisioning=kind,
            env=dict(env),
            deviations=deviations,
            source=source,
            via=tuple(via),
            init_reserved=init_reserved,
            skip=skip,
        )


def load_profile(path: str | os.PathLike[str]) -> VendorProfile:
    """Read and validate one profile file; any problem raises ProfileError naming the fix."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{p}: cannot read vendor profile ({exc.strerror}); check the path") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{p}: not a text file (byte {exc.start} is not UTF-8); pass a TOML vendor profile, "
                           "see vendors/TEMPLATE.toml") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{p}: not valid TOML ({exc}); fix the syntax") from None
    if not data:
        raise ProfileError(f"{p}: the profile is empty; copy vendors/TEMPLATE.toml and fill it in")
    return VendorProfile.from_dict(data, source=str(p))


def _no_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in data:
        if key not in known:
            raise ProfileError(f"{where}: unknown key {key!r}; known keys are {', '.join(sorted(known))}")


def _str(data: Mapping[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ProfileError(f"{where}: {key} is missing; add {key} = \"...\"")
        return None
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{where}: {key}: expected a non-empty string")
    return value


def _table(data: Mapping[str, Any], key: str, where: str, required: bool = False) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ProfileError(f"{where}: the [{key}] table is missing; see vendors/TEMPLATE.toml")
        return None
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: {key}: expected a [{key}] table")
    return value


def _pin(token: Mapping[str, Any], key: str, where: str, disposable: bool, required: bool) -> Secret | None:
    raw = token.get(key)
    if raw is None:
        if required:
            raise ProfileError(f"{where}.{key} is missing; add {key} = \"env:VARIABLE\"")
        return None
    if not isinstance(raw, str) or not raw:
        raise ProfileError(f"{where}.{key}: expected a string (\"env:VARIABLE\", or a literal PIN on a disposable token)")
    if not raw.startswith("env:") and not disposable:
        # The PIN itself is never echoed, only the fix.
        raise ProfileError(f"{where}.{key}: literal PINs are allowed only on disposable tokens; write {key} = \"env:VARIABLE\"")
    return Secret(raw, override_env=PIN_ENV[key])
