"""gRPC transport: unary JSON calls on service ``tufrepo.hsm.v1.Hsm``.

No protobuf code generation: generic method handlers with JSON (de)serialisers. Errors
travel as gRPC status codes; a TPM refusal also carries its response code in the trailing
metadata ``tpm-rc`` (hex), so a client can show (and tests can assert) the TPM's own error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent import futures
from typing import TYPE_CHECKING, Any

from tufrepo.errors import Error, InputError, NotFoundError, SignerError
from tufrepo.hsm.tpm import SessionLostError, TpmError

if TYPE_CHECKING:
    from tufrepo.hsm.registry import RegistryService
    from tufrepo.hsm.service import HsmService

log = logging.getLogger(__name__)

SERVICE = "tufrepo.hsm.v1.Hsm"
MAX_MESSAGE = 1 << 20


def load_grpc() -> Any:
    try:
        import grpc
    except ImportError as e:
        raise SignerError("the TPM HSM needs grpcio: pip install 'tufrepo[tpm]'") from e
    return grpc


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


def _loads(data: bytes) -> Any:
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise InputError("request is not JSON") from e
    return obj


def _as_object(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        raise InputError("request must be a JSON object")
    return request


Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _wrap(grpc: Any, name: str, fn: Handler) -> Callable[[Any, Any], Any]:
    def call(request: Any, context: Any) -> Any:
        try:
            return fn(_as_object(request))
        except SessionLostError as e:
            context.set_trailing_metadata((("session-lost", "1"),))
            context.abort(grpc.StatusCode.ABORTED, str(e))
        except TpmError as e:
            log.warning("%s refused: %s", name, e)  # an audit line for every TPM refusal
            if e.rc is not None:
                context.set_trailing_metadata((("tpm-rc", f"{e.rc:#x}"),))
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except NotFoundError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except InputError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except Error as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except Exception:
            log.exception("internal error")
            context.abort(grpc.StatusCode.INTERNAL, "internal error (see the service log)")
        return None  # pragma: no cover - abort raises

    return call


def make_server(
    service: HsmService,
    registry: RegistryService,
    host: str,
    port: int,
    *,
    tls: tuple[bytes, bytes] | None = None,
    workers: int = 8,
) -> tuple[Any, int]:
    """A started gRPC server for ``service``; returns (server, bound port).
    ``tls`` is (PEM private key, PEM certificate chain) to serve over TLS."""
    grpc = load_grpc()
    methods: dict[str, Handler] = {
        "StoragePublic": lambda _r: service.storage_public(),
        "CreateKey": service.create_key,
        "BeginImport": service.begin_import,
        "ImportKey": service.import_key,
        "KeyInfo": service.key_info,
        "ListKeys": service.list_keys,
        "PrepareSign": service.prepare_sign,
        "Sign": service.sign,
        "AddTrusted": service.add_trusted,
        "RegistryPut": registry.put,
        "RegistryCertify": registry.certify,
        "RegistryGet": registry.get,
        "RegistryList": registry.list,
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _wrap(grpc, name, fn), request_deserializer=_loads, response_serializer=_dumps
        )
        for name, fn in methods.items()
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ],
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    address = f"{host}:{port}"
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([tls]))
    if bound == 0:
        raise InputError(f"cannot listen on {host}:{port}")
    server.start()
    return server, bound


class RpcError(SignerError):
    """A call to the HSM service failed; ``code`` is the gRPC status name."""

    def __init__(self, message: str, *, code: str, tpm_rc: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.tpm_rc = tpm_rc

    @property
    def session_lost(self) -> bool:
        return self.code == "ABORTED"


class Channel:
    """A client connection to one HSM service."""

    def __init__(self, address: str, timeout: float = 30.0, ca: bytes | None = None) -> None:
        """Plaintext, or TLS when ``ca`` (PEM root certificates to trust) is given."""
        grpc = load_grpc()
        self.address = address
        self.timeout = timeout
        self._grpc = grpc
        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        if ca is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
            self._channel = grpc.secure_channel(address, credentials, options=options)

    def close(self) -> None:
        self._channel.close()

    def call(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        """Call ``method``; raise RpcError (SignerError) with a one-line reason."""
        stub = self._channel.unary_unary(
            f"/{SERVICE}/{method}", request_serializer=_dumps, response_deserializer=_loads
        )
        try:
            response: dict[str, Any] = stub(request, timeout=self.timeout)
        except self._grpc.RpcError as e:
            code = e.code()
            if code == self._grpc.StatusCode.UNAVAILABLE:
                raise RpcError(
                    f"TPM HSM service at {self.address} is unreachable", code=code.name
                ) from None
            if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
                raise RpcError(
                    f"TPM HSM service at {self.address} did not answer in {self.timeout:.0f} s",
                    code=code.name,
                ) from None
            meta = dict(e.trailing_metadata() or ())
            rc = meta.get("tpm-rc")
            raise RpcError(
                f"TPM HSM {method}: {e.details()}",
                code=code.name,
                tpm_rc=int(rc, 16) if rc else None,
            ) from None
        return response
