"""The TPM HSM: signing keys that never leave a TPM, authorised by file keys.

Server side: :func:`start_service` (``tufrepo hsm serve``) runs :class:`HsmService` over
gRPC in front of one TPM (``tpm``) and one state directory (``state``). Client side:
:class:`HsmClient` (``client``), used by the ``tpmhsm:`` signer. Policy digests, cpHashA
and aHash are computed in plain Python in ``policy`` by both sides. tpm2-pytss and grpcio
are imported lazily, only when a service is started or a client connects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tufrepo.errors import InputError
from tufrepo.hsm.client import HsmClient, KeyInfo
from tufrepo.hsm.policy import Quorum
from tufrepo.hsm.registry import RegistryService, fingerprint, make_certificate, verify_chain
from tufrepo.hsm.service import HsmService
from tufrepo.hsm.state import State
from tufrepo.hsm.tpm import SessionLostError, Tpm, TpmError

log = logging.getLogger(__name__)

DEFAULT_PORT = 50051


@dataclass(kw_only=True)
class RunningService:
    """A started service: stop it with :meth:`stop`."""

    server: Any
    port: int
    service: HsmService

    def stop(self, grace: float = 1.0) -> None:
        self.server.stop(grace).wait(grace + 1)
        self.service.tpm.close()


def start_service(
    *,
    tcti: str,
    state_dir: Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> RunningService:
    """Open the TPM and the state directory and start serving on ``host:port``.

    Raises:
        TpmError: the TPM cannot be reached or refuses.
        Error: the state directory belongs to another TPM, or is unreadable.
        InputError: cannot listen on ``host:port``, or unreadable TLS key/certificate.
    """
    from tufrepo.hsm.rpc import make_server

    tls = None
    if (tls_cert is None) != (tls_key is None):
        raise InputError("TLS needs both a certificate and its private key")
    if tls_cert is not None and tls_key is not None:
        try:
            tls = (tls_key.read_bytes(), tls_cert.read_bytes())
        except OSError as e:
            raise InputError(f"cannot read TLS key or certificate: {e}") from e
    state = State(state_dir)
    tpm = Tpm(tcti)
    try:
        tpm.flush_stale_sessions()
        service = HsmService(tpm, state)
        server, bound = make_server(service, RegistryService(state), host, port, tls=tls)
    except BaseException:
        tpm.close()
        raise
    return RunningService(server=server, port=bound, service=service)


__all__ = [
    "HsmClient",
    "HsmService",
    "KeyInfo",
    "Quorum",
    "RunningService",
    "SessionLostError",
    "State",
    "Tpm",
    "TpmError",
    "fingerprint",
    "make_certificate",
    "start_service",
    "verify_chain",
]
