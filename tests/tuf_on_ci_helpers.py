"""Run the real tuf-on-ci signing tools (``tuf-on-ci-sign``, ``tuf-on-ci-delegate``) in a
:class:`~tests.git_helpers.World` clone.

The tools come from the PyPI package ``tuf-on-ci-sign`` (a test dependency) and run as
separate processes, exactly as a maintainer would run them:

- their settings file ``.tuf-on-ci-sign.ini`` is written at the clone's top level and listed
  in ``.git/info/exclude``, so the clone stays clean for tufrepo;
- stdin is not a terminal, so every prompt (menus, "press enter", PINs) is answered from the
  ``answers`` lines, in order;
- the daily PyPI version check is answered from a pre-written cache (no network), and the
  signer's key cache (``signing-keys.ini``) lives in a per-person temporary data directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.git_helpers import GIT_ENV, World
from tests.softhsm_helpers import SoftHsmToken, softhsm_module

VERSION = "0.21.0"
SETTINGS = ".tuf-on-ci-sign.ini"
TIMEOUT = 120

# tuf-on-ci-delegate's hidden online-key menu entry 0 ("a hidden test key") hard-codes an
# ed25519 public key; its private seed is published next to it, in a comment of
# tuf_on_ci_sign/delegate.py (_collect_online_key). The private key is read from the PEM file
# named by TUF_ON_CI_TEST_KEY.
TEST_KEY_SEED = "1d9a024348e413892aeeb8cc8449309c152f48177200ee61a02ae56f450c6480"
TEST_KEY_PUBLIC = "fa472895c9756c2b9bcd1440bf867d0fa5c4edee79e9792fa9822be3dd6fcbb3"
TEST_KEY_ENV = "TUF_ON_CI_TEST_KEY"


def write_test_online_key(path: Path) -> Path:
    """tuf-on-ci's published test online key as an unencrypted PEM at ``path``."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(TEST_KEY_SEED))
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if public.hex() != TEST_KEY_PUBLIC:
        raise AssertionError("tuf-on-ci's test key seed does not match its public key")
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def requested_roles(stdout: str) -> set[str]:
    """The roles tuf-on-ci asked the user to sign ("... for role(s) {'root', 'targets'}")."""
    found = re.search(r"signature is (?:requested|required) for role\(s\) \{([^}]*)\}", stdout)
    return set(re.findall(r"'([^']+)'", found.group(1))) if found else set()


def tool(name: str) -> Path:
    """The console script ``name``: next to this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    return Path(found) if found else beside


@dataclass
class TufOnCi:
    """Runs tuf-on-ci's tools as ``user`` in ``world``'s clones."""

    world: World

    def __post_init__(self) -> None:
        cache = self.world.root / "xdg-cache"
        (cache / "tuf-on-ci-sign").mkdir(parents=True, exist_ok=True)
        # a fresh cache entry means "checked PyPI less than a day ago": no network
        (cache / "tuf-on-ci-sign" / "pypi_release_version").write_text(VERSION)

    def configure(self, clone: str, user: str, signing_keys: dict[str, str] | None = None) -> Path:
        """Write ``.tuf-on-ci-sign.ini`` for ``user`` in ``clone`` (git-excluded)."""
        path = self.world.clone(clone)
        lines = [
            "[settings]",
            f"user-name = {user}",
            "push-remote = origin",
            "pull-remote = origin",
            # tuf-on-ci-sign insists on a PKCS#11 module even for file keys
            f"pykcs11lib = {softhsm_module() or '/nonexistent/libykcs11.so'}",
        ]
        if signing_keys:
            lines.append("[signing-keys]")
            lines += [f"{keyid} = {uri}" for keyid, uri in signing_keys.items()]
        (path / SETTINGS).write_text("\n".join(lines) + "\n")
        exclude = path / ".git" / "info" / "exclude"
        text = exclude.read_text() if exclude.exists() else ""
        if SETTINGS not in text.splitlines():
            exclude.parent.mkdir(parents=True, exist_ok=True)
            exclude.write_text(text + SETTINGS + "\n")
        return path

    def run(
        self,
        clone: str,
        command: str,
        *args: str,
        answers: list[str],
        token: SoftHsmToken | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command ARGS`` (``tuf-on-ci-sign``/``-delegate``) in ``clone``; must succeed.

        ``answers`` are the lines typed at the prompts (PINs included), in order.
        """
        path = self.world.clone(clone)
        if not (path / SETTINGS).exists():
            raise AssertionError(f"configure() {clone} before running {command}")
        full_env = {
            **os.environ,
            **GIT_ENV,
            "XDG_CACHE_HOME": str(self.world.root / "xdg-cache"),
            "XDG_DATA_HOME": str(self.world.root / "xdg-data" / clone),
            **(token.env if token else {}),
            **(env or {}),
        }
        if token is None:
            full_env.pop("PYKCS11LIB", None)
        done = subprocess.run(
            [str(tool(command)), *args],
            cwd=path,
            env=full_env,
            input="".join(f"{a}\n" for a in answers),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{command} {' '.join(args)}: exit {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done
