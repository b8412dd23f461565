"""Which Sigstore instance tufrepo trusts: the Sigstore trust configuration, resolved offline.

A *trust configuration* is a Sigstore ``ClientTrustConfig`` JSON document: a trusted root
(Fulcio CA certificates, Rekor and CT log keys, timestamp authorities) plus a signing config
(the Fulcio, Rekor and OIDC URLs to sign with). A bare ``TrustedRoot`` document is accepted
too; it is enough to verify, not to sign.

Resolution, first match wins (nothing is ever fetched from the network):

1. the path given to :func:`set_trust_config_path` (the ``--sigstore-trust-config`` option);
2. the file named by the environment variable ``TUFREPO_SIGSTORE_TRUST_CONFIG``;
3. ``.tufrepo/sigstore-trust-config.json`` as committed on the managed repository's **main**
   branch (the trusted state; the CLI reads it from git objects and hands it over with
   :func:`set_repository_trust_config`) - never from a signing-event branch or the working
   tree, which would let an event choose the Sigstore instance it is verified against;
4. the pinned copy of the Sigstore production trust configuration shipped in
   ``tufrepo/data/sigstore/`` (its origin is recorded in ``provenance.json`` there).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tufrepo.errors import InputError

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore.verify import Verifier

__all__ = [
    "PINNED_DIR",
    "REPOSITORY_TRUST_CONFIG",
    "TRUST_CONFIG_ENV",
    "TrustConfigSource",
    "load_trust_config",
    "load_trusted_root",
    "resolve_trust_config",
    "set_repository_trust_config",
    "set_trust_config_path",
    "update_pinned",
    "verifier",
]

TRUST_CONFIG_ENV = "TUFREPO_SIGSTORE_TRUST_CONFIG"
REPOSITORY_TRUST_CONFIG = Path(".tufrepo") / "sigstore-trust-config.json"
PINNED_DIR = Path(__file__).resolve().parent / "data" / "sigstore"
PINNED_NAME = "trust-config.json"
PROVENANCE_NAME = "provenance.json"

CLIENT_TRUST_CONFIG_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
TRUSTED_ROOT_PREFIX = "application/vnd.dev.sigstore.trustedroot+json"
SIGNING_CONFIG_PREFIX = "application/vnd.dev.sigstore.signingconfig"

_explicit_path: Path | None = None
_repository_config: tuple[bytes, str] | None = None
_cache: dict[tuple[str, int, int], _Loaded] = {}


@dataclass(frozen=True)
class TrustConfigSource:
    """Where the trust configuration in use comes from (for messages and ``status``)."""

    path: Path
    origin: str  # "option", "environment", "repository" or "pinned"
    data: bytes | None = None  # the content, when it comes from git rather than a file

    def __str__(self) -> str:
        return f"{self.path} ({self.origin})"


@dataclass(frozen=True)
class _Loaded:
    trusted_root: TrustedRoot
    config: ClientTrustConfig | None
    verifier: Verifier


def set_trust_config_path(path: str | os.PathLike[str] | None) -> None:
    """Use this trust configuration file (the CLI's ``--sigstore-trust-config``); None resets."""
    global _explicit_path  # noqa: PLW0603 - process-wide setting made by the CLI once
    _explicit_path = Path(path) if path is not None else None


def set_repository_trust_config(data: bytes | None, label: str = "") -> None:
    """The repository's own trust configuration as committed on main (None: it has none).

    ``label`` says where it came from (e.g. ``.tufrepo/sigstore-trust-config.json at main
    1a2b3c4d``), for messages.
    """
    global _repository_config  # noqa: PLW0603 - process-wide setting made by the CLI once
    _repository_config = (data, label) if data is not None else None


def resolve_trust_config() -> TrustConfigSource:
    """The trust configuration file that applies now (see the module documentation).

    Raises:
        InputError: an explicitly named file (option or environment) does not exist.
    """
    if _explicit_path is not None:
        if not _explicit_path.is_file():
            raise InputError(f"Sigstore trust config {_explicit_path} does not exist")
        return TrustConfigSource(_explicit_path, "option")
    env = os.environ.get(TRUST_CONFIG_ENV)
    if env:
        if not Path(env).is_file():
            raise InputError(
                f"Sigstore trust config {env} (from {TRUST_CONFIG_ENV}) does not exist"
            )
        return TrustConfigSource(Path(env), "environment")
    if _repository_config is not None:
        data, label = _repository_config
        return TrustConfigSource(Path(label or str(REPOSITORY_TRUST_CONFIG)), "repository", data)
    return TrustConfigSource(PINNED_DIR / PINNED_NAME, "pinned")


def _load(source: TrustConfigSource) -> _Loaded:
    if source.data is not None:
        mem_key = (f"git:{_sha256(source.data)}", 0, len(source.data))
        if mem_key not in _cache:
            _cache.clear()
            _cache[mem_key] = _parse(source, source.data)
        return _cache[mem_key]
    try:
        stat = source.path.stat()
    except OSError as e:
        raise InputError(f"cannot read Sigstore trust config {source}: {e.strerror}") from e
    key = (str(source.path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _cache:
        _cache.clear()
        _cache[key] = _parse(source, source.path.read_bytes())
    return _cache[key]


def _parse(source: TrustConfigSource, raw: bytes) -> _Loaded:
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore.verify import Verifier

    try:
        doc = json.loads(raw)
        media_type = str(doc.get("mediaType", ""))
    except (ValueError, AttributeError) as e:
        raise InputError(f"Sigstore trust config {source} is not a JSON object") from e
    if media_type != CLIENT_TRUST_CONFIG_TYPE and not media_type.startswith(TRUSTED_ROOT_PREFIX):
        raise InputError(
            f"Sigstore trust config {source}: unknown mediaType {media_type!r} "
            "(expected a ClientTrustConfig or a TrustedRoot)"
        )
    try:
        config: ClientTrustConfig | None = None
        if media_type == CLIENT_TRUST_CONFIG_TYPE:
            config = ClientTrustConfig.from_json(raw.decode())
            root = config.trusted_root
        else:
            root = TrustedRoot(_trusted_root_model(raw))
        return _Loaded(root, config, Verifier(trusted_root=root))
    except Exception as e:  # sigstore/pydantic raise many types for bad documents
        raise InputError(f"Sigstore trust config {source} is not valid: {e}") from e


def _trusted_root_model(raw: bytes) -> Any:
    from sigstore_models.trustroot import v1 as trustroot_v1

    return trustroot_v1.TrustedRoot.from_json(raw)


def load_trusted_root() -> TrustedRoot:
    """The trusted root to verify with. Raises InputError if it cannot be loaded."""
    return _load(resolve_trust_config()).trusted_root


def verifier() -> Verifier:
    """A sigstore Verifier for the trusted root in use (cached while the file is unchanged)."""
    return _load(resolve_trust_config()).verifier


def load_trust_config() -> ClientTrustConfig:
    """The full trust configuration, needed to sign.

    Raises:
        InputError: it cannot be loaded, or is a bare trusted root (no signing config).
    """
    source = resolve_trust_config()
    loaded = _load(source)
    if loaded.config is None:
        raise InputError(
            f"Sigstore trust config {source} is a trusted root only: signing needs a "
            "ClientTrustConfig with a signing config (Fulcio, Rekor and OIDC URLs)"
        )
    return loaded.config


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_json(path: Path, what: str) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from e
    except ValueError as e:
        raise InputError(f"{what} {path} is not JSON") from e
    if not isinstance(doc, dict):
        raise InputError(f"{what} {path} is not a JSON object")
    return raw, doc


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        Path(tmp).chmod(0o644)  # shipped data, readable by everyone like the package
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_pinned(
    trust_file: Path,
    *,
    signing_config: Path | None = None,
    source: str,
    data_dir: Path = PINNED_DIR,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Replace the pinned trust configuration and record where it came from.

    ``trust_file`` is a ClientTrustConfig, or a TrustedRoot combined with ``signing_config``
    (or, without it, with the signing config pinned so far). The result is validated before
    anything is written; both files are written atomically. Returns the new provenance.

    Raises:
        InputError: unreadable or invalid input.
    """
    raw, doc = _read_json(trust_file, "trust file")
    inputs = {trust_file.name: _sha256(raw)}
    media_type = str(doc.get("mediaType", ""))
    if media_type == CLIENT_TRUST_CONFIG_TYPE:
        if signing_config is not None:
            raise InputError(f"{trust_file} already holds a signing config")
        combined = doc
    elif media_type.startswith(TRUSTED_ROOT_PREFIX):
        if signing_config is not None:
            sc_raw, sc_doc = _read_json(signing_config, "signing config")
            inputs[signing_config.name] = _sha256(sc_raw)
        else:
            _, current = _read_json(data_dir / PINNED_NAME, "pinned trust config")
            sc_doc = current["signingConfig"]
        if not str(sc_doc.get("mediaType", "")).startswith(SIGNING_CONFIG_PREFIX):
            raise InputError("the signing config has no signing config mediaType")
        combined = {
            "mediaType": CLIENT_TRUST_CONFIG_TYPE,
            "trustedRoot": doc,
            "signingConfig": sc_doc,
        }
    else:
        raise InputError(f"{trust_file}: unknown mediaType {media_type!r}")
    data = (json.dumps(combined, indent=2, sort_keys=True) + "\n").encode()
    # Validate as a whole (and that signing with it is configured) before writing.
    loaded = _parse(TrustConfigSource(trust_file, "update"), data)
    if loaded.config is not None:
        try:
            loaded.config.signing_config.get_fulcio()
        except Exception as e:  # sigstore raises its own Error for unusable configs
            raise InputError(f"the signing config is not usable: {e}") from e

    prov_path = data_dir / PROVENANCE_NAME
    previous: dict[str, Any] = {}
    if prov_path.is_file():
        previous = _read_json(prov_path, "provenance")[1]
    history = list(previous.get("history", []))
    if previous:
        history.append({k: v for k, v in previous.items() if k != "history"})
    when = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    provenance = {
        "version": int(previous.get("version", 0)) + 1,
        "updated": when,
        "source": source,
        "inputs": inputs,
        "sha256": _sha256(data),
        "history": history,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(data_dir / PINNED_NAME, data)
    _atomic_write(prov_path, (json.dumps(provenance, indent=2) + "\n").encode())
    _cache.clear()
    return provenance


def pinned_provenance(data_dir: Path = PINNED_DIR) -> dict[str, Any]:
    """The provenance record of the pinned trust configuration."""
    return _read_json(data_dir / PROVENANCE_NAME, "provenance")[1]
