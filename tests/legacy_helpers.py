"""A tuf-on-ci repository whose first roots were written by an older tool, generated here with
our own keys (no public repository is copied).

What older tools wrote and the TUF spec allows, as long-lived real repositories hold it:

* root 1: tab-indented JSON in the order the tool chose, ``expires`` with fractional seconds
  and a UTC offset (``2021-12-18T13:28:12.99008-06:00``), ``consistent_snapshot: false``,
  ECDSA keys in the old securesystemslib form (``ecdsa-sha2-nistp256`` key type,
  ``keyid_hash_algorithms``) whose keyids are not the sha256 of the key (legacy keyids);
* root 2: the same keys, 2-space indentation, an ``expires`` python-tuf can read but still
  ``consistent_snapshot: false``;
* root 3 onwards: tuf-on-ci's format (1-space indent, sorted keys, key owners, online key,
  periods, consistent snapshots), root 3 signed by root 2's legacy key as well;
* targets delegates to a role whose name contains dots (``registry.npmjs.org``).

Signatures cover the canonical JSON of ``signed`` exactly as written (not as python-tuf would
re-serialise it), as the older tool signed it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import MetaFile

from tufrepo.roles import EXPIRY_PERIOD, KEYOWNER, ONLINE_URI, SIGNING_PERIOD, delegated_paths

DOTTED = "registry.npmjs.org"
ROOT1_EXPIRES = "2021-12-18T13:28:12.99008-06:00"
LEGACY_ROOTS = (1, 2)
ARTIFACTS = {"readme.txt": b"legacy readme\n", f"{DOTTED}/pkg/app-1.0.tgz": b"app" * 50}


def _tuf_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _legacy_signer() -> CryptoSigner:
    """An ECDSA key in the old securesystemslib form, keyid = sha256 of its DER bytes."""
    base = CryptoSigner.generate_ecdsa()
    pem = base.public_key.keyval["public"]
    der = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = hashlib.sha256(der).hexdigest()
    fields = {"keyid_hash_algorithms": ["sha256", "sha512"]}
    pub = SSlibKey(keyid, "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", {"public": pem}, fields)
    return CryptoSigner(base._private_key, pub)  # our own key, re-described


def _file_signer(uri: str, fields: dict[str, Any]) -> CryptoSigner:
    """The signer of a ``file2:`` PEM key, its keyid covering ``fields`` (tuf-on-ci's rule)."""
    private = load_pem_private_key(Path(uri.removeprefix("file2:")).read_bytes(), None)
    key = CryptoSigner(private).public_key
    data = {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval, **fields}
    keyid = hashlib.sha256(encode_canonical(data).encode()).hexdigest()
    return CryptoSigner(private, SSlibKey(keyid, key.keytype, key.scheme, key.keyval, fields))


def _key(signer: CryptoSigner) -> dict[str, Any]:
    return signer.public_key.to_dict()


def _envelope(signed: dict[str, Any], *signers: CryptoSigner) -> dict[str, Any]:
    payload = encode_canonical(signed).encode()
    sigs = [s.sign(payload).to_dict() for s in signers]
    return {"signatures": sigs, "signed": signed}


def _tuf_on_ci(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode()


@dataclass
class LegacyRepo:
    """Writes the repository into ``path`` (a git checkout): metadata/ and targets/."""

    path: Path
    users: dict[str, str]  # @name -> file2: URI
    online_uri: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    legacy: list[CryptoSigner] = field(default_factory=list)
    signers: dict[str, CryptoSigner] = field(default_factory=dict)
    root3_expires: str | None = None  # e.g. a time python-tuf cannot parse in root 3 too

    def build(self) -> LegacyRepo:
        meta = self.path / "metadata"
        (meta / "root_history").mkdir(parents=True, exist_ok=True)
        self.legacy = [_legacy_signer(), _legacy_signer()]
        for user in ("@alice", "@bob"):
            self.signers[user] = _file_signer(self.users[user], {KEYOWNER: user})
        self.signers["online"] = _file_signer(self.online_uri, {ONLINE_URI: self.online_uri})
        history = {1: self._root1(), 2: self._root2(), 3: self._root3()}
        for version, data in history.items():
            (meta / "root_history" / f"{version}.root.json").write_bytes(data)
        (meta / "root.json").write_bytes(history[3])
        for rel, data in ARTIFACTS.items():
            dest = self.path / "targets" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        self._targets(meta)
        return self

    # -- roots ------------------------------------------------------------------------------
    def _legacy_roles(self) -> dict[str, Any]:
        k0, k1 = (s.public_key.keyid for s in self.legacy)
        return {
            "root": {"keyids": [k0], "threshold": 1},
            "targets": {"keyids": [k0], "threshold": 1},
            "snapshot": {"keyids": [k1], "threshold": 1},
            "timestamp": {"keyids": [k1], "threshold": 1},
        }

    def _root1(self) -> bytes:
        signed = {  # the older tool's order, not sorted
            "_type": "root",
            "spec_version": "1.0",
            "version": 1,
            "expires": ROOT1_EXPIRES,
            "keys": {s.public_key.keyid: _key(s) for s in self.legacy},
            "roles": self._legacy_roles(),
            "consistent_snapshot": False,
        }
        return json.dumps(_envelope(signed, self.legacy[0]), indent="\t").encode()

    def _root2(self) -> bytes:
        signed = {
            "_type": "root",
            "spec_version": "1.0",
            "version": 2,
            "expires": "2022-06-18T13:28:12Z",
            "keys": {s.public_key.keyid: _key(s) for s in self.legacy},
            "roles": self._legacy_roles(),
            "consistent_snapshot": False,
        }
        return json.dumps(_envelope(signed, self.legacy[0]), indent=2).encode()

    def _root3(self) -> bytes:
        people = [self.signers["@alice"], self.signers["@bob"]]
        online = self.signers["online"]
        periods = {"snapshot": (365, 60), "timestamp": (2, 1)}
        roles: dict[str, Any] = {
            "root": {"keyids": [s.public_key.keyid for s in people], "threshold": 1},
            "targets": {"keyids": [people[0].public_key.keyid], "threshold": 1},
        }
        for name, (expiry, signing) in periods.items():
            roles[name] = {
                "keyids": [online.public_key.keyid],
                "threshold": 1,
                EXPIRY_PERIOD: expiry,
                SIGNING_PERIOD: signing,
            }
        signed = {
            "_type": "root",
            "spec_version": "1.0.31",
            "version": 3,
            "expires": self.root3_expires or _tuf_time(self.now + timedelta(days=365)),
            "keys": {s.public_key.keyid: _key(s) for s in [*people, online]},
            "roles": roles,
            "consistent_snapshot": True,
            EXPIRY_PERIOD: 365,
            SIGNING_PERIOD: 60,
        }
        return _tuf_on_ci(_envelope(signed, self.legacy[0], people[0]))

    # -- targets, the dotted delegation, snapshot and timestamp -----------------------------
    def _targets_signed(self, version: int, targets: dict[str, bytes]) -> dict[str, Any]:
        return {
            "_type": "targets",
            "spec_version": "1.0.31",
            "version": version,
            "expires": _tuf_time(self.now + timedelta(days=365)),
            "targets": {
                path: {"length": len(data), "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}
                for path, data in targets.items()
            },
            EXPIRY_PERIOD: 365,
            SIGNING_PERIOD: 60,
        }

    def _targets(self, meta: Path) -> None:
        bob = self.signers["@bob"]
        top = self._targets_signed(4, {"readme.txt": ARTIFACTS["readme.txt"]})
        top["delegations"] = {
            "keys": {bob.public_key.keyid: _key(bob)},
            "roles": [
                {
                    "name": DOTTED,
                    "keyids": [bob.public_key.keyid],
                    "threshold": 1,
                    "terminating": True,
                    "paths": delegated_paths(DOTTED),
                }
            ],
        }
        dotted = self._targets_signed(
            2, {k: v for k, v in ARTIFACTS.items() if k.startswith(f"{DOTTED}/")}
        )
        files = {
            "targets.json": _tuf_on_ci(_envelope(top, self.signers["@alice"])),
            f"{DOTTED}.json": _tuf_on_ci(_envelope(dotted, bob)),
        }
        for name, data in files.items():
            (meta / name).write_bytes(data)
        online = self.signers["online"]
        snapshot = {
            "_type": "snapshot",
            "spec_version": "1.0.31",
            "version": 9,
            "expires": _tuf_time(self.now + timedelta(days=365)),
            "meta": {
                name: MetaFile.from_data(
                    json.loads(data)["signed"]["version"], data, ["sha256"]
                ).to_dict()
                for name, data in files.items()
            },
        }
        snap_data = _tuf_on_ci(_envelope(snapshot, online))
        timestamp = {
            "_type": "timestamp",
            "spec_version": "1.0.31",
            "version": 17,
            "expires": _tuf_time(self.now + timedelta(days=2)),
            "meta": {"snapshot.json": MetaFile.from_data(9, snap_data, ["sha256"]).to_dict()},
        }
        (meta / "snapshot.json").write_bytes(snap_data)
        (meta / "timestamp.json").write_bytes(_tuf_on_ci(_envelope(timestamp, online)))
