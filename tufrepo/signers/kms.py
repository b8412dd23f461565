"""Cloud KMS online keys: ``awskms:``, ``gcpkms:`` and ``azurekms:`` signer URIs.

Signing goes through securesystemslib's own signers (``AWSSigner``, ``GCPSigner``,
``AzureSigner``, registered by securesystemslib for ``Signer.from_priv_key_uri``); this module
adds what tufrepo needs besides: the public key of a URI (``tufrepo delegate --online-key``,
``tufrepo key show``) and one-line errors that name the missing extra or credentials.

URIs (as securesystemslib reads them):

* ``awskms:<key id, ARN or alias>`` - boto3's usual credentials, region and endpoint settings
  (``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL_KMS``...);
* ``gcpkms:projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>/cryptoKeyVersions/<v>`` -
  Google application default credentials;
* ``azurekms://<vault>.vault.azure.net/keys/<key>[/<version>]`` - ``DefaultAzureCredential``.

The SDKs are the optional extra ``tufrepo[kms]``, imported only when such a URI is used.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from securesystemslib.exceptions import UnsupportedLibraryError
from securesystemslib.signer import Key

from tufrepo.errors import Error, InputError, SignerError

SCHEMES = {"awskms": "boto3", "gcpkms": "google-cloud-kms", "azurekms": "azure-identity"}
_EXTRA = "pip install 'tufrepo[kms]'"
# SDK exceptions that mean "no usable credentials / configuration" (matched by class name:
# the SDKs are optional, so their classes cannot be imported here)
_CREDENTIAL_ERRORS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "NoRegionError",
    "UnrecognizedClientException",
    "DefaultCredentialsError",
    "RefreshError",
    "CredentialUnavailableError",
    "ClientAuthenticationError",
}


def kms_error(uri: str, error: BaseException) -> Error:
    """The one-line tufrepo error for ``error`` raised while using KMS signer ``uri``."""
    scheme = uri.split(":", 1)[0]
    if isinstance(error, UnsupportedLibraryError):
        return InputError(f"{scheme}: keys need {SCHEMES[scheme]}: install it with {_EXTRA}")
    detail = (str(error).splitlines() or [type(error).__name__])[0]
    names = {cls.__name__ for cls in type(error).__mro__}
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    if names & _CREDENTIAL_ERRORS or code in _CREDENTIAL_ERRORS:
        return SignerError(f"{scheme}: no usable credentials for {uri}: {detail}")
    return SignerError(f"{scheme}: cannot use {uri}: {detail}")


def import_kms_key(uri: str) -> Key:
    """The public key of a KMS signer URI (read from the KMS).

    Raises:
        InputError: a malformed URI, or the SDK is not installed (naming the extra).
        SignerError: no credentials, or the KMS refused or could not be reached.
    """
    from securesystemslib.signer import AWSSigner, AzureSigner, GCPSigner

    scheme, _, rest = uri.partition(":")
    if not rest.strip("/"):
        raise InputError(f"{scheme}: the URI names no key: {uri!r}")
    try:
        if scheme == "awskms":
            _, key = AWSSigner.import_(rest)
        elif scheme == "gcpkms":
            _, key = GCPSigner.import_(rest)
        else:
            vault, key_name = _azure_names(uri)
            _, key = AzureSigner.import_(vault, key_name)
    except Error:
        raise
    except Exception as e:  # the SDKs raise their own trees; wrap at the boundary
        raise kms_error(uri, e) from e
    return key


def _azure_names(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    path = parts.path.strip("/").split("/")
    host = parts.hostname or ""
    if not host.endswith(".vault.azure.net") or len(path) < 2 or path[0] != "keys":
        raise InputError(
            f"azurekms: expected azurekms://<vault>.vault.azure.net/keys/<key>, not {uri!r}"
        )
    return host.split(".", 1)[0], path[1]


def register_kms() -> None:
    """Make ``import_public_key`` understand the KMS schemes (securesystemslib registers
    their signers itself)."""
    from tufrepo.signers import add_importer

    for scheme in SCHEMES:
        add_importer(scheme, import_kms_key)
