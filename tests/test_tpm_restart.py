"""Restarts: of the service (state directory) and of the TPM (swtpm), and lost sessions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from tpm_helpers import Swtpm, new_file_keys, swtpm_available, swtpm_running

from tufrepo.errors import Error
from tufrepo.hsm import HsmClient, start_service
from tufrepo.hsm.client import authorize
from tufrepo.hsm.rpc import RpcError

pytestmark = [
    pytest.mark.tpm,
    pytest.mark.skipif(not swtpm_available(), reason="needs swtpm, tpm2-pytss and grpcio"),
]

DIGEST = hashlib.sha256(b"payload").digest()


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    with swtpm_running(tmp_path / "swtpm") as tpm:
        yield tpm


def _verify(public: ec.EllipticCurvePublicKey, der: bytes) -> None:
    public.verify(der, b"payload", ec.ECDSA(hashes.SHA256()))


def test_service_and_swtpm_restarts(swtpm: Swtpm, tmp_path: Path) -> None:
    keys = new_file_keys(3)
    state = tmp_path / "state"
    running = start_service(tcti=swtpm.tcti, state_dir=state, port=0)
    try:
        with HsmClient(f"127.0.0.1:{running.port}") as c:
            info = c.create_key([k.public_key() for k in keys], 2)
            _verify(info.public_key, c.sign_digest(info.key_id, DIGEST, keys[:2]))
    finally:
        running.stop()

    # a new service process on the same state directory
    running = start_service(tcti=swtpm.tcti, state_dir=state, port=0)
    try:
        with HsmClient(f"127.0.0.1:{running.port}") as c:
            _verify(info.public_key, c.sign_digest(info.key_id, DIGEST, keys[1:]))
            # the TPM restarts under the running service: it reconnects, the key still signs
            swtpm.restart()
            _verify(info.public_key, c.sign_digest(info.key_id, DIGEST, keys[:2]))
    finally:
        running.stop()


def test_lost_session_gives_clear_error_and_client_retries(swtpm: Swtpm, tmp_path: Path) -> None:
    keys = new_file_keys(1)
    running = start_service(tcti=swtpm.tcti, state_dir=tmp_path / "state", port=0)
    try:
        with HsmClient(f"127.0.0.1:{running.port}") as c:
            info = c.create_key([keys[0].public_key()], 1)
            prep = c.call("PrepareSign", {"key_id": info.key_id})
            swtpm.restart()  # the pending session dies with the TPM
            auths = authorize(keys, bytes.fromhex(prep["nonce"]), info.name, DIGEST)
            with pytest.raises(RpcError, match="session is gone") as e:
                c.call(
                    "Sign",
                    {
                        "key_id": info.key_id,
                        "session_id": prep["session_id"],
                        "digest": DIGEST.hex(),
                        "auths": auths,
                    },
                )
            assert e.value.session_lost

            # the client retries on its own when the session is lost between its two calls
            real_call = c.call
            restarted: list[bool] = []

            def call(method: str, request: dict[str, Any]) -> dict[str, Any]:
                if method == "Sign" and not restarted:
                    restarted.append(True)
                    swtpm.restart()
                return real_call(method, request)

            c.call = call  # type: ignore[method-assign]
            _verify(info.public_key, c.sign_digest(info.key_id, DIGEST, keys))
            assert restarted == [True]
    finally:
        running.stop()


def test_state_of_another_tpm_is_refused(swtpm: Swtpm, tmp_path: Path) -> None:
    state = tmp_path / "state"
    start_service(tcti=swtpm.tcti, state_dir=state, port=0).stop()
    with swtpm_running(tmp_path / "other") as other, pytest.raises(Error, match="storage key"):
        start_service(tcti=other.tcti, state_dir=state, port=0)


def test_unreachable_tpm(tmp_path: Path) -> None:
    with pytest.raises(Error, match="TPM"):
        start_service(tcti="swtpm:host=127.0.0.1,port=1", state_dir=tmp_path / "s", port=0)


def test_start_flushes_sessions_left_by_an_earlier_run(swtpm: Swtpm, tmp_path: Path) -> None:
    from tufrepo.hsm import Tpm

    crashed = Tpm(swtpm.tcti)  # a service that died with two sessions pending
    crashed.start_session()
    crashed.start_session()
    crashed.run(lambda ectx: ectx.create_primary(None, "ecc256"), "and an object loaded")
    crashed.close()
    tpm = Tpm(swtpm.tcti)
    try:
        assert tpm.flush_stale_sessions() == 3
        assert tpm.flush_stale_sessions() == 0
    finally:
        tpm.close()
