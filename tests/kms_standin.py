"""A local stand-in for AWS KMS at boto3's HTTP boundary.

It speaks the KMS JSON protocol (``POST /``, ``X-Amz-Target: TrentService.<Operation>``,
``application/x-amz-json-1.1``) for the two operations securesystemslib's ``AWSSigner``
uses - ``GetPublicKey`` and ``Sign`` (``MessageType=DIGEST``) - with local EC P-256 keys, on
127.0.0.1. boto3 is pointed at it with ``AWS_ENDPOINT_URL_KMS`` and dummy credentials; the
request signature (SigV4) is not checked, but a request without one is refused as AWS would.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

_SPEC = "ECC_NIST_P256"
_ALGORITHM = "ECDSA_SHA_256"


@dataclass
class KmsStandIn:
    """Keys by id; ``requests`` records the operations served (for the tests)."""

    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def create_key(self, key_id: str) -> str:
        self.keys[key_id] = ec.generate_private_key(ec.SECP256R1())
        return key_id

    def env(self) -> dict[str, str]:
        """What boto3 needs to talk to the stand-in (no real credentials)."""
        return {
            "AWS_ENDPOINT_URL_KMS": self.url,
            "AWS_ACCESS_KEY_ID": "AKIDSTANDIN",
            "AWS_SECRET_ACCESS_KEY": "standin-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def handle(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append(operation)
        key = self.keys.get(str(body.get("KeyId")))
        if key is None:
            return 400, {"__type": "NotFoundException", "message": "key not found"}
        arn = f"arn:aws:kms:us-east-1:000000000000:key/{body['KeyId']}"
        if operation == "GetPublicKey":
            der = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return 200, {
                "KeyId": arn,
                "PublicKey": base64.b64encode(der).decode(),
                "KeySpec": _SPEC,
                "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": [_ALGORITHM],
            }
        if operation == "Sign":
            if body.get("MessageType") != "DIGEST" or body.get("SigningAlgorithm") != _ALGORITHM:
                return 400, {"__type": "ValidationException", "message": "unsupported request"}
            digest = base64.b64decode(body["Message"])
            sig = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            return 200, {
                "KeyId": arn,
                "Signature": base64.b64encode(sig).decode(),
                "SigningAlgorithm": _ALGORITHM,
            }
        return 400, {"__type": "UnsupportedOperationException", "message": operation}


def _handler(standin: KmsStandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            target = self.headers.get("X-Amz-Target", "")
            if not self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
                status, reply = 400, {"__type": "MissingAuthenticationTokenException"}
            else:
                status, reply = standin.handle(target.removeprefix("TrentService."), body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def aws_kms_standin() -> Iterator[KmsStandIn]:
    """A running stand-in on 127.0.0.1 (stopped on exit)."""
    standin = KmsStandIn()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    standin.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
