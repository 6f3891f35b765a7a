"""A private NSS database per worker for NSS's software token (libsoftokn3.so), made with certutil.

softokn reads its database from the config string in CK_C_INITIALIZE_ARGS.pReserved, which python-pkcs11
cannot pass (it always calls C_Initialize(NULL): softokn answers CKR_ARGUMENTS_BAD). So the profile puts it
behind p11-kit (module.via = ["p11-kit"]), which passes module.init_reserved. That string names a RELATIVE
configdir ('sql:nssdb'): one registration then serves every worker, each process opening ./nssdb in its own
cwd, which is the stage's workdir. The user PIN is the database password; softokn has no SO PIN.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import ClassVar

from .base import ProvisioningError, Stage

NSS_TOKEN_LABEL = "NSS Certificate DB"  # the key slot's token; the other slot ("Generic Crypto Services") has no login
_CONFIGDIR = re.compile(r"configdir\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|(\S+))")


def database_dir(init_reserved: str | None, where: str) -> str:
    """The relative database directory named by configdir= in the init string ('sql:nssdb' -> 'nssdb')."""
    match = _CONFIGDIR.search(init_reserved or "")
    if match is None:
        raise ProvisioningError(f"{where}: module.init_reserved must name the database, e.g. "
                                "init_reserved = \"configdir='sql:nssdb' certPrefix='' keyPrefix='' "
                                "secmod='secmod.db' flags=\"")
    configdir = next(g for g in match.groups() if g is not None)
    path = configdir.split(":", 1)[1] if configdir.startswith(("sql:", "dbm:")) else configdir
    if not configdir.startswith("sql:"):
        raise ProvisioningError(f"{where}: module.init_reserved: configdir {configdir!r} is not an SQLite "
                                "database; write configdir='sql:nssdb' (certutil -N makes cert9.db/key4.db)")
    if not path or os.path.isabs(path) or ".." in path.split("/"):
        raise ProvisioningError(f"{where}: module.init_reserved: configdir {configdir!r} must be relative "
                                "(e.g. 'sql:nssdb'): each worker's process opens it in its own directory")
    return path


class NSSSoftokn:
    kind: ClassVar[str] = "nss"
    tool = "certutil"

    def prepare(self, stage: Stage) -> None:
        profile = stage.profile
        where = profile.source or profile.name
        exe = shutil.which(self.tool)
        if exe is None:
            raise ProvisioningError(f"{self.tool} not found; install it (apt-get install libnss3-tools)")
        if "p11-kit" not in profile.via:
            raise ProvisioningError(f"{where}: NSS softokn needs module.via = [\"p11-kit\"] and module.init_reserved "
                                    "(python-pkcs11 cannot pass softokn's config string; it gets CKR_ARGUMENTS_BAD)")
        if profile.token_label != NSS_TOKEN_LABEL:
            raise ProvisioningError(f"{where}: token.label must be {NSS_TOKEN_LABEL!r} (softokn's key slot; "
                                    "its label cannot be chosen)")
        db = stage.workdir / database_dir(profile.init_reserved, where)
        if db.exists():
            shutil.rmtree(db)  # a database left by an earlier run would keep its old password
        db.mkdir(parents=True)
        pin = profile.user_pin.reveal()
        if pin:
            self._create(stage, exe, str(db), pin)
        else:
            stage.run([exe, "-N", "-d", f"sql:{db}", "--empty-password"], what="apt-get install libnss3-tools")
        stage.cwd = str(stage.workdir)  # the relative configdir resolves here in every process that loads softokn
        stage.token_label = NSS_TOKEN_LABEL
        stage.created = True
        stage.notes["nss"] = f"NSS database {db} (user PIN = database password; no SO PIN)"
        stage.cleanups.append(lambda: shutil.rmtree(db, ignore_errors=True))

    @staticmethod
    def _create(stage: Stage, exe: str, db: str, pin: str) -> None:
        """certutil -N with the PIN in a 0600 file (never on a command line, where ps shows it), removed at once."""
        if "\n" in pin or "\r" in pin:
            raise ProvisioningError("the user PIN contains a line break; certutil reads only the first line "
                                    "of its password file: choose another PIN")
        pwfile = stage.workdir / "nss-password"
        pwfile.unlink(missing_ok=True)
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(pin + "\n")
            stage.run([exe, "-N", "-d", f"sql:{db}", "-f", str(pwfile)], what="apt-get install libnss3-tools")
        finally:
            pwfile.unlink(missing_ok=True)
