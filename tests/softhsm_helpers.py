"""SoftHSM2 tokens for tests: a real PKCS#11 token standing in for a person's YubiKey.

``create_token(dir)`` makes a token in its own directory (its own ``SOFTHSM2_CONF``) with
an ECDSA P-256 key pair generated on the token by ``pkcs11-tool`` (opensc), and returns a
:class:`SoftHsmToken` with the signer URI and the environment a signer needs::

    token = create_token(tmp_path / "alice-yubikey", label="alice")
    subprocess.run([sys.executable, "-m", "tufrepo", "sign", ..., "--signer", token.uri],
                   env=token.run_env(), ...)

Several tokens created in the same directory share one ``SOFTHSM2_CONF`` and are told apart
by their labels (which the URI carries). In-process tests use the ``softhsm_token`` fixture:
it also sets the variables in ``os.environ`` and unloads python-pkcs11's cached module, so
that SoftHSM reads this test's configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
DEFAULT_PIN = "123456"
DEFAULT_SO_PIN = "12345678"
TIMEOUT = 60


def softhsm_module() -> str | None:
    """The SoftHSM2 PKCS#11 module on this machine (``SOFTHSM2_MODULE`` overrides)."""
    override = os.environ.get("SOFTHSM2_MODULE")
    if override:
        return override
    return next((m for m in MODULE_CANDIDATES if Path(m).is_file()), None)


def missing_tools() -> list[str]:
    """What is missing to create SoftHSM2 tokens (empty when everything is there)."""
    missing = [tool for tool in ("softhsm2-util", "pkcs11-tool") if shutil.which(tool) is None]
    if softhsm_module() is None:
        missing.append("libsofthsm2.so")
    return missing


@dataclass(frozen=True)
class SoftHsmToken:
    """A SoftHSM2 token with one ECDSA P-256 key pair, and how to use it."""

    directory: Path
    conf: Path
    module: str
    label: str
    keyid: int = 2
    pin: str = DEFAULT_PIN
    so_pin: str = field(default=DEFAULT_SO_PIN, repr=False)

    @property
    def uri(self) -> str:
        """The tufrepo signer URI of the key (``hsm:KEYID?label=LABEL``)."""
        return f"hsm:{self.keyid}?{urlencode({'label': self.label})}"

    @property
    def env(self) -> dict[str, str]:
        """The variables a signer needs: SoftHSM's config, the module, and the PIN."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "PYKCS11LIB": self.module,
            "TUFREPO_HSM_PIN": self.pin,
        }

    def run_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) plus :attr:`env`, for subprocesses."""
        return {**(os.environ if base is None else base), **self.env}


def _run(args: list[str], conf: Path) -> None:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")


def _hex_id(keyid: int) -> str:
    """``keyid`` as the even-length hex pkcs11-tool wants (python-pkcs11's big-endian bytes)."""
    digits = f"{keyid:x}"
    return digits.zfill(len(digits) + len(digits) % 2)


def create_token(
    directory: Path,
    *,
    label: str = "tufrepo-test",
    keyid: int = 2,
    pin: str = DEFAULT_PIN,
    so_pin: str = DEFAULT_SO_PIN,
) -> SoftHsmToken:
    """Create a SoftHSM2 token ``label`` under ``directory`` holding a new P-256 key pair.

    Raises RuntimeError when the tools are missing or fail.
    """
    missing = missing_tools()
    if missing:
        raise RuntimeError(
            f"SoftHSM2 tests need {', '.join(missing)} (apt packages softhsm2 and opensc)"
        )
    module = softhsm_module()
    assert module is not None
    directory.mkdir(parents=True, exist_ok=True)
    tokens = directory / "tokens"
    tokens.mkdir(exist_ok=True)
    conf = directory / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(
            f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
            "log.level = ERROR\nslots.removable = false\n"
        )
    _run(
        ["softhsm2-util", "--init-token", "--free", "--label", label,
         "--pin", pin, "--so-pin", so_pin],
        conf,
    )  # fmt: skip
    _run(
        ["pkcs11-tool", "--module", module, "--token-label", label, "--login", "--pin", pin,
         "--keypairgen", "--key-type", "EC:prime256v1", "--id", _hex_id(keyid),
         "--label", f"{label}-key"],
        conf,
    )  # fmt: skip
    return SoftHsmToken(
        directory=directory, conf=conf, module=module, label=label, keyid=keyid, pin=pin,
        so_pin=so_pin,
    )  # fmt: skip


def unload_module(module: str) -> None:
    """Forget python-pkcs11's loaded module, so the next use reads SOFTHSM2_CONF again."""
    import pkcs11

    pkcs11.unload(module)


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsmToken]:
    """A fresh SoftHSM2 token, with its variables set in this process's environment."""
    token = create_token(tmp_path / "softhsm")
    for name, value in token.env.items():
        monkeypatch.setenv(name, value)
    unload_module(token.module)
    yield token
    unload_module(token.module)
