"""Roles in the tuf-on-ci format: custom fields, periods, ownership of target paths, invites.

Everything here is pure: metadata objects in, values out. No files, git, clock or prompts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from securesystemslib.formats import encode_canonical
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Key,
    Root,
    Signed,
    Targets,
)

from tufrepo.errors import InputError, MetadataError

KEYOWNER = "x-tuf-on-ci-keyowner"
ONLINE_URI = "x-tuf-on-ci-online-uri"
EXPIRY_PERIOD = "x-tuf-on-ci-expiry-period"
SIGNING_PERIOD = "x-tuf-on-ci-signing-period"

TOP_LEVEL = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES = ("snapshot", "timestamp")
MAX_DEPTH = 4
"""Delegated role R owns R/*, R/*/*, R/*/*/*, R/*/*/*/* (tuf-on-ci's layout)."""

STATE_FILE = ".signing-event-state"


def canonical_keyid(key: Key) -> str:
    """sha256 of the canonical JSON of the key, custom fields included (tuf-on-ci's rule)."""
    canonical = encode_canonical(key.to_dict())
    if canonical is None:  # only None when writing to a callback
        raise MetadataError("key cannot be canonicalised")
    return hashlib.sha256(canonical.encode()).hexdigest()


def with_keyid(key: Key) -> Key:
    """A copy of ``key`` whose keyid is its canonical keyid."""
    data = key.to_dict()
    return Key.from_dict(canonical_keyid(key), data)


def key_material(key: Key) -> tuple[str, str, dict[str, Any]]:
    """What makes two keys the same key: type, scheme and value (not custom fields)."""
    return (key.keytype, key.scheme, key.keyval)


def same_key(a: Key, b: Key) -> bool:
    """``a`` and ``b`` are the same key, whatever their keyids and custom fields."""
    return key_material(a) == key_material(b)


def keyowner(key: Key) -> str | None:
    """The ``@name`` of the person holding ``key`` (None for online or legacy keys)."""
    owner = key.unrecognized_fields.get(KEYOWNER)
    return owner if isinstance(owner, str) else None


def normalize_user(name: str) -> str:
    """``alice`` / ``@Alice`` -> ``@alice`` (tuf-on-ci lower-cases names)."""
    name = name.strip().lower()
    if not name.startswith("@"):
        name = f"@{name}"
    if len(name) < 2 or not all(c.isalnum() or c in "-_." for c in name[1:]):
        raise InputError(f"invalid user name {name!r}: use @name with letters, digits, -, _ or .")
    return name


def delegator_name(role: str) -> str:
    """Who delegates ``role``: root for top-level roles, targets for the rest."""
    return "root" if role in TOP_LEVEL else "targets"


def delegated_paths(role: str) -> list[str]:
    """The path patterns a delegated role owns: ``R/*`` ... ``R/*/*/*/*``."""
    return ["/".join([role, *(["*"] * depth)]) for depth in range(1, MAX_DEPTH + 1)]


def periods(role: str, root: Root, signed: Signed | None) -> tuple[int, int]:
    """(expiry_days, signing_days) of ``role``.

    Online roles keep theirs on root's role entries, offline roles in their own ``signed``.
    A missing signing period is half the expiry period.

    Raises:
        MetadataError: the expiry period is missing or not a whole number of days.
    """
    if role in ONLINE_ROLES:
        fields = root.roles[role].unrecognized_fields
    else:
        if signed is None:
            raise MetadataError(f"{role}: no metadata")
        fields = signed.unrecognized_fields
    expiry = fields.get(EXPIRY_PERIOD)
    if not isinstance(expiry, int) or isinstance(expiry, bool) or expiry < 1:
        raise MetadataError(f"{role}: {EXPIRY_PERIOD} missing or not a positive whole number")
    signing = fields.get(SIGNING_PERIOD)
    if signing is None:
        signing = expiry // 2
    if not isinstance(signing, int) or isinstance(signing, bool) or signing < 0:
        raise MetadataError(f"{role}: {SIGNING_PERIOD} is not a whole number of days")
    return expiry, signing


def in_signing_period(expires: datetime, signing_days: int, now: datetime) -> bool:
    """True when ``now`` is within ``signing_days`` of ``expires`` (time to re-sign)."""
    return now >= expires - timedelta(days=signing_days)


def delegated_role_names(targets: Targets) -> list[str]:
    """Names of the roles ``targets`` delegates to (empty when none)."""
    if targets.delegations is None or targets.delegations.roles is None:
        return []
    return list(targets.delegations.roles)


def role_for_target(path: str, delegated: set[str] | list[str]) -> str:
    """The role that owns target ``path`` (relative to targets/).

    ``X`` -> targets; ``R/...`` -> R when R is delegated and the depth fits.

    Raises:
        InputError: no role owns the path (naming it).
    """
    parts = path.split("/")
    if len(parts) == 1:
        return "targets"
    role = parts[0]
    if role not in delegated:
        raise InputError(f"no role owns targets/{path}: '{role}' is not a delegated role")
    if len(parts) - 1 > MAX_DEPTH:
        raise InputError(
            f"no role owns targets/{path}: more than {MAX_DEPTH} levels below targets/{role}"
        )
    return role


def keys_of(delegator: Root | Targets, role: str) -> list[Key]:
    """The keys ``delegator`` trusts for ``role`` (empty when the role is not delegated)."""
    try:
        drole = delegator.get_delegated_role(role)
    except ValueError:
        return []
    keys = []
    for keyid in drole.keyids:
        try:
            keys.append(delegator.get_key(keyid))
        except ValueError:
            continue
    return keys


def threshold_of(delegator: Root | Targets, role: str) -> int:
    """The delegator's threshold for ``role`` (0 when not delegated)."""
    try:
        return delegator.get_delegated_role(role).threshold
    except ValueError:
        return 0


def new_delegated_role(name: str, keyids: list[str], threshold: int) -> DelegatedRole:
    """A terminating delegation of ``name`` with tuf-on-ci's path patterns."""
    return DelegatedRole(name, keyids, threshold, terminating=True, paths=delegated_paths(name))


def ensure_delegations(targets: Targets) -> Delegations:
    """``targets.delegations``, created empty if missing."""
    if targets.delegations is None:
        targets.delegations = Delegations(keys={}, roles={})
    if targets.delegations.roles is None:
        targets.delegations.roles = {}
    return targets.delegations


@dataclass
class EventState:
    """The ``metadata/.signing-event-state`` file: open invitations by user."""

    invites: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, data: bytes | None) -> EventState:
        """Parse the state file (None: no file).

        Raises:
            CorruptMetadataError: the file is not the expected JSON.
        """
        if data is None:
            return cls()
        from tufrepo.errors import CorruptMetadataError

        try:
            invites = json.loads(data).get("invites", {})
        except (ValueError, AttributeError) as e:
            raise CorruptMetadataError(f"metadata/{STATE_FILE} is not valid JSON") from e
        if not isinstance(invites, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(r, str) for r in v)
            for k, v in invites.items()
        ):
            raise CorruptMetadataError(f"metadata/{STATE_FILE}: invites must map @user to roles")
        return cls({k: list(v) for k, v in invites.items()})

    def to_bytes(self) -> bytes | None:
        """Serialized state, or None when there is nothing to keep (the file is removed)."""
        invites = {k: sorted(v) for k, v in sorted(self.invites.items()) if v}
        if not invites:
            return None
        return json.dumps({"invites": invites}, indent=1, sort_keys=True).encode()

    def invitees(self, role: str) -> list[str]:
        """Users invited to sign ``role``."""
        return sorted(user for user, roles in self.invites.items() if role in roles)

    def invite(self, user: str, role: str) -> None:
        """Invite ``user`` to become a signer of ``role``."""
        roles = self.invites.setdefault(user, [])
        if role not in roles:
            roles.append(role)

    def uninvite_role(self, role: str) -> None:
        """Drop every invitation to ``role``."""
        for roles in self.invites.values():
            if role in roles:
                roles.remove(role)
        self.invites = {u: r for u, r in self.invites.items() if r}

    def accept(self, user: str) -> list[str]:
        """Remove and return the roles ``user`` was invited to."""
        return self.invites.pop(user, [])


def delegation_in(name: str, roles: Mapping[str, Any]) -> tuple[list[Key], int]:
    """Keys and threshold of ``name`` as its delegator among ``roles`` (name -> Metadata,
    root included) states them; no keys when no loaded role delegates it."""
    root = roles["root"].signed
    if name in root.roles:
        role = root.roles[name]
        return [root.keys[k] for k in role.keyids if k in root.keys], role.threshold
    for md in roles.values():
        delegations = getattr(md.signed, "delegations", None)
        if delegations is None:
            continue
        try:  # a named delegation or a hash bin
            role = md.signed.get_delegated_role(name)
        except ValueError:
            continue
        return [delegations.keys[k] for k in role.keyids if k in delegations.keys], role.threshold
    return [], 0


def owners_of(name: str, roles: Mapping[str, Any]) -> list[str]:
    """The @names holding ``name``'s keys (online roles: root's, whose signers set the
    online key)."""
    keys, _ = delegation_in("root" if name in ONLINE_ROLES else name, roles)
    return [o for o in (keyowner(k) for k in keys) if o]
