"""Fulcio of the stand-in: a two-level CA that issues short-lived code-signing certificates.

Each leaf certificate carries what sigstore-python checks at sign and verify time: the
identity as SAN, the OIDC issuer in extensions 1.3.6.1.4.1.57264.1.1 (raw bytes) and .1.8
(DER UTF8String), digitalSignature + codeSigning, an AuthorityKeyIdentifier, and an embedded
precertificate SCT (RFC 6962) signed by the stand-in's CT log key.
"""

from __future__ import annotations

import datetime
import hashlib
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
LEAF_LIFETIME = datetime.timedelta(minutes=10)


def spki_sha256(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 key ID: sha256 of the DER SubjectPublicKeyInfo."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _u24(n: int) -> bytes:
    return struct.pack("!I", n)[1:]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


class StandinFulcio:
    """A root CA, an intermediate CA and a CT log key, all created fresh in memory."""

    def __init__(self, name: str = "tufrepo-standin") -> None:
        start = _now() - datetime.timedelta(days=1)
        end = start + datetime.timedelta(days=30)
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self._root_key = ec.generate_private_key(ec.SECP384R1())
        self._inter_key = ec.generate_private_key(ec.SECP384R1())
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root"),
            ]
        )
        inter_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} intermediate"),
            ]
        )
        ca_usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        root_pub = self._root_key.public_key()
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(ca_usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_pub), critical=False)
            .sign(self._root_key, hashes.SHA384())
        )
        inter_pub = self._inter_key.public_key()
        self.intermediate = (
            x509.CertificateBuilder()
            .subject_name(inter_name)
            .issuer_name(root_name)
            .public_key(inter_pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(ca_usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_pub), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_pub), critical=False
            )
            .sign(self._root_key, hashes.SHA384())
        )
        self.valid_from = start

    @property
    def chain(self) -> list[x509.Certificate]:
        """The CA chain from the intermediate to the root (as the trusted root lists it)."""
        return [self.intermediate, self.root]

    def issue(
        self, public_key: ec.EllipticCurvePublicKey, san: x509.GeneralName, issuer: str
    ) -> x509.Certificate:
        """A leaf certificate for ``public_key`` with an embedded precertificate SCT."""
        start = _now() - datetime.timedelta(seconds=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + LEAF_LIFETIME)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._inter_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_OID, issuer.encode()), critical=False
            )
            .add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_V2_OID, _der(0x0C, issuer.encode())),
                critical=False,
            )
        )
        # The SCT signs the certificate's TBS without the SCT list: build that first, then
        # the same certificate with the SCT list appended (tbs_precertificate_bytes of the
        # final certificate is then exactly what the log signed).
        pre_tbs = builder.sign(self._inter_key, hashes.SHA384()).tbs_certificate_bytes
        sct = self._sct(pre_tbs)
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        cert = builder.add_extension(
            x509.UnrecognizedExtension(SCT_LIST_OID, _der(0x04, sct_list)), critical=False
        ).sign(self._inter_key, hashes.SHA384())
        if cert.tbs_precertificate_bytes != pre_tbs:  # pragma: no cover - a stand-in bug
            raise RuntimeError("stand-in Fulcio: precertificate TBS mismatch")
        return cert

    def _sct(self, pre_tbs: bytes) -> bytes:
        """A TLS-encoded v1 SCT over a precertificate entry (RFC 6962 §3.2)."""
        timestamp = int(_now().timestamp() * 1000)
        issuer_key_hash = spki_sha256(self._inter_key.public_key())
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)  # v1, certificate_timestamp, precert
            + issuer_key_hash
            + _u24(len(pre_tbs))
            + pre_tbs
            + struct.pack("!H", 0)  # no extensions
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", 0)
            + spki_sha256(self.ct_key.public_key())
            + struct.pack("!Q", timestamp)
            + struct.pack("!H", 0)
            + struct.pack("!BB", 4, 3)  # sha256, ecdsa
            + struct.pack("!H", len(signature))
            + signature
        )
