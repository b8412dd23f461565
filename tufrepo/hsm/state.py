"""The service's state directory: key blobs, their policies, the public-key registry.

Layout (JSON, every file written atomically: temp file in the same directory + os.replace)::

    STATE/storage.json        the storage primary's public area (detects a cleared/other TPM)
    STATE/keys/<KEYID>.json   one TPM key: blobs, its authority's blobs, its quorum policies
    STATE/registry.json       public keys and verification certificates (a dumb store)

Nothing in here is secret: a key blob is only loadable by the TPM that made (or imported)
it, and only usable inside a policy session satisfied by the pinned file keys.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tufrepo.errors import Error, InputError, NotFoundError
from tufrepo.hsm.policy import Quorum
from tufrepo.hsm.tpm import Blob

KEY_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (never a half-written file).

    Raises:
        Error: the directory cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise Error(f"cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise Error(f"cannot write {path}: {e.strerror}") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise Error(f"unreadable state file {path}: {e}") from e


@dataclass(kw_only=True)
class KeyPolicy:
    """One quorum that may authorise signatures; index 0 is the key's own authPolicy,
    later ones were approved by the key's authority (``approval`` = its TPMT_SIGNATURE)."""

    signers: list[str]  # PEM public keys, in policy order
    templates: list[bytes]  # the pinned TPMT_PUBLIC of each signer
    threshold: int
    approval: bytes | None = None

    @property
    def quorum(self) -> Quorum:
        return Quorum(templates=tuple(self.templates), threshold=self.threshold)

    def to_json(self) -> dict[str, Any]:
        return {
            "signers": self.signers,
            "templates": [t.hex() for t in self.templates],
            "threshold": self.threshold,
            "approval": self.approval.hex() if self.approval else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeyPolicy:
        return cls(
            signers=list(d["signers"]),
            templates=[bytes.fromhex(t) for t in d["templates"]],
            threshold=int(d["threshold"]),
            approval=bytes.fromhex(d["approval"]) if d.get("approval") else None,
        )


@dataclass(kw_only=True)
class KeyRecord:
    """A TPM signing key and what authorises it."""

    key_id: str
    imported: bool
    key: Blob
    authority: Blob
    policies: list[KeyPolicy] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "imported": self.imported,
            "key": _blob_json(self.key),
            "authority": _blob_json(self.authority),
            "policies": [p.to_json() for p in self.policies],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeyRecord:
        return cls(
            key_id=d["key_id"],
            imported=bool(d["imported"]),
            key=_blob(d["key"]),
            authority=_blob(d["authority"]),
            policies=[KeyPolicy.from_json(p) for p in d["policies"]],
        )


def _blob_json(b: Blob) -> dict[str, str]:
    return {"public": b.public.hex(), "private": b.private.hex()}


def _blob(d: dict[str, str]) -> Blob:
    return Blob(public=bytes.fromhex(d["public"]), private=bytes.fromhex(d["private"]))


class State:
    """The state directory of one service."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            (root / "keys").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot use state directory {root}: {e.strerror}") from e

    def check_storage_key(self, storage_public: bytes) -> None:
        """Remember the storage primary, or refuse a TPM whose primary differs."""
        path = self.root / "storage.json"
        try:
            known = bytes.fromhex(read_json(path)["storage_public"])
        except FileNotFoundError:
            write_json_atomic(path, {"storage_public": storage_public.hex()})
            return
        if known != storage_public:
            raise Error(
                f"the TPM's storage key differs from the one recorded in {path}: "
                "this state belongs to another TPM, or the TPM was cleared"
            )

    def _key_path(self, key_id: str) -> Path:
        if not KEY_ID_RE.match(key_id):
            raise InputError(f"malformed key id {key_id!r} (32 hex digits expected)")
        return self.root / "keys" / f"{key_id}.json"

    def save_key(self, record: KeyRecord) -> None:
        write_json_atomic(self._key_path(record.key_id), record.to_json())

    def load_key(self, key_id: str) -> KeyRecord:
        try:
            data = read_json(self._key_path(key_id))
        except FileNotFoundError:
            raise NotFoundError(f"unknown key id {key_id}") from None
        try:
            return KeyRecord.from_json(data)
        except (KeyError, TypeError, ValueError) as e:
            raise Error(f"corrupt key record for {key_id}: {e}") from e

    def key_ids(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "keys").glob("*.json"))

    def load_registry(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = read_json(self.root / "registry.json")
        except FileNotFoundError:
            return {"keys": {}, "certificates": []}
        return data

    def save_registry(self, registry: dict[str, Any]) -> None:
        write_json_atomic(self.root / "registry.json", registry)
