"""swtpm and TPM HSM service helpers for the TPM tests and the benchmark.

swtpm is a real TPM 2.0 (libtpms) on 127.0.0.1: started with a temporary state directory,
waited for with a bounded loop, stopped by the tests. No mock of the TPM anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tufrepo.hsm import HsmClient, RunningService, start_service
from tufrepo.hsm.client import KeyInfo, authorize
from tufrepo.hsm.policy import name_of, policy_authorize
from tufrepo.hsm.tpm import Blob, Tpm

STARTUP_TIMEOUT = 10.0


def swtpm_available() -> bool:
    try:
        import grpc  # noqa: F401
        import tpm2_pytss  # noqa: F401
    except ImportError:
        return False
    return shutil.which("swtpm") is not None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port P such that P and P+1 are free on 127.0.0.1 (swtpm's server and control).

    Picked below the ephemeral range: the swtpm TCTI opens a connection per command, so
    ephemeral ports next to a kernel-chosen one are often in TIME_WAIT.
    """
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32000, 2)
        if _port_free(port) and _port_free(port + 1):
            return port
    raise RuntimeError("no free pair of ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {STARTUP_TIMEOUT} s")


class Swtpm:
    """One swtpm process with a state directory that survives :meth:`restart`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port_pair()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self) -> Swtpm:
        self.proc = subprocess.Popen(
            [
                "swtpm",
                "socket",
                "--tpm2",
                "--server",
                f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                "--ctrl",
                f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
                "--tpmstate",
                f"dir={self.state_dir}",
                "--flags",
                "not-need-init,startup-clear",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        # the ports may linger briefly after the process is gone
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _port_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start()


def new_file_keys(n: int) -> list[ec.EllipticCurvePrivateKey]:
    return [ec.generate_private_key(ec.SECP256R1()) for _ in range(n)]


@contextlib.contextmanager
def swtpm_running(state_dir: Path) -> Iterator[Swtpm]:
    tpm = Swtpm(state_dir).start()
    try:
        yield tpm
    finally:
        tpm.stop()


# --- shared fixtures of the TPM service tests (import them by name into a test module) ------

DIGEST = hashlib.sha256(b"payload").digest()


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    with swtpm_running(tmp_path_factory.mktemp("swtpm")) as tpm:
        yield tpm


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hsm-state")


@pytest.fixture(scope="module")
def service(swtpm: Swtpm, state_dir: Path) -> Iterator[RunningService]:
    running = start_service(tcti=swtpm.tcti, state_dir=state_dir, port=0)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(service: RunningService) -> Iterator[HsmClient]:
    with HsmClient(f"127.0.0.1:{service.port}", timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def fks() -> list[ec.EllipticCurvePrivateKey]:
    return new_file_keys(3)


@pytest.fixture(scope="module")
def key_1of1(client: HsmClient, fks: list[ec.EllipticCurvePrivateKey]) -> KeyInfo:
    return client.create_key([fks[0].public_key()], 1)


@pytest.fixture(scope="module")
def key_2of3(client: HsmClient, fks: list[ec.EllipticCurvePrivateKey]) -> KeyInfo:
    return client.create_key([k.public_key() for k in fks], 2)


@pytest.fixture
def tpm(swtpm: Swtpm) -> Iterator[Tpm]:
    """A second ESAPI connection: the attacker's or a malicious server's view of the TPM."""
    t = Tpm(swtpm.tcti)
    yield t
    t.close()


def verify(info: KeyInfo, der: bytes, data: bytes = b"payload") -> None:
    info.public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))


def sign_raw(
    client: HsmClient,
    info: KeyInfo,
    keys: list[ec.EllipticCurvePrivateKey],
    *,
    digest: bytes = DIGEST,
    authorized_digest: bytes | None = None,
    expiration: int = -60,
    before_sign: Any = None,
) -> dict[str, Any]:
    """PrepareSign + Sign without the client's checks (what a bypassed client sends)."""
    prep = client.call("PrepareSign", {"key_id": info.key_id})
    auths = authorize(
        keys, bytes.fromhex(prep["nonce"]), info.name, authorized_digest or digest, expiration
    )
    if before_sign is not None:
        before_sign()
    return client.call(
        "Sign",
        {
            "key_id": info.key_id,
            "session_id": prep["session_id"],
            "digest": digest.hex(),
            "policy": 0,
            "auths": auths,
        },
    )


def key_record(service: RunningService, key_id: str) -> Any:
    return service.service.state.load_key(key_id)


def password_sign(tpm: Tpm, blob: Blob, auth: bytes) -> None:
    """TPM2_Sign with a password session (authValue ``auth``), as an attacker would."""
    import tpm2_pytss as t

    def op(ectx: Any) -> None:
        with tpm.loaded(ectx, blob) as handle:
            ectx.tr_set_auth(handle, auth)
            ectx.sign(
                handle,
                t.TPM2B_DIGEST(DIGEST),
                t.TPMT_SIG_SCHEME(scheme=t.TPM2_ALG.NULL),
                None,
                session1=t.ESYS_TR.PASSWORD,
            )

    tpm.run(op, "password sign")


def authorize_digest(record: Any) -> bytes:
    """The digest of the PolicyAuthorize branch of a key (its authority's name)."""
    return policy_authorize(name_of(record.authority.public[2:]))
