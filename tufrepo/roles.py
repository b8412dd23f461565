"""Roles in the tuf-on-ci format: custom fields, periods, ownership of target paths, invites.

Everything here is pure: metadata objects in, values out. No files, git, clock or prompts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
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
    SuccinctRoles,
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
BIN_SUFFIX = "-bins"
"""Hash bins of role R are named ``R-bins-<hex>`` (python-tuf's ``SuccinctRoles`` naming)."""
MAX_ENTRIES = 1000
"""Entries a targets or snapshot file should not much exceed: tuf-js parses them in O(n^2)."""
MAX_BIT_LENGTH = 14
MIN_BINS = 16
SNAPSHOT_BINS = 1024


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


def delegated_role_names(targets: Targets | None) -> list[str]:
    """Names of the roles ``targets`` delegates to by name (empty when none or hash bins)."""
    if targets is None or targets.delegations is None or targets.delegations.roles is None:
        return []
    return list(targets.delegations.roles)


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


def bin_prefix(role: str) -> str:
    """The name prefix of ``role``'s hash bins: ``<role>-bins``."""
    return f"{role}{BIN_SUFFIX}"


def bit_length_for(bins: int) -> int:
    """log2 of ``bins``.

    Raises:
        InputError: ``bins`` is not a power of two between 2 and 2**MAX_BIT_LENGTH.
    """
    if bins < 2 or bins & (bins - 1) or bins > 2**MAX_BIT_LENGTH:
        raise InputError(f"--bins {bins}: use a power of two from 2 to {2**MAX_BIT_LENGTH}")
    return bins.bit_length() - 1


def bins_for(artifacts: int) -> int:
    """The number of bins for a role of ``artifacts`` entries.

    The smallest power of two, at least MIN_BINS, whose bins are at most half full
    (MAX_ENTRIES/2 on average, room to grow before re-binning), but no more than
    SNAPSHOT_BINS so that snapshot stays near MAX_ENTRIES entries; past
    SNAPSHOT_BINS * MAX_ENTRIES artifacts, as many bins as keep each under MAX_ENTRIES.
    """
    bins = MIN_BINS
    while bins < SNAPSHOT_BINS and artifacts > bins * (MAX_ENTRIES // 2):
        bins *= 2
    while bins < 2**MAX_BIT_LENGTH and artifacts > bins * MAX_ENTRIES:
        bins *= 2
    return bins


def _succinct(targets: Targets | None) -> SuccinctRoles | None:
    if targets is None or targets.delegations is None:
        return None
    return targets.delegations.succinct_roles


@dataclass(frozen=True)
class RoleMap:
    """Which targets-type roles exist, who delegates each, and which role owns a path.

    Named delegations follow tuf-on-ci's layout: ``targets/X`` belongs to ``targets``,
    ``targets/R/...`` (at most MAX_DEPTH levels) to the delegated role R. A *binned* role
    (top-level targets or a delegated R whose metadata holds ``succinct_roles``, TAP 15)
    lists no artifacts itself: each of its paths belongs to the hash bin the path hashes to.
    Built from metadata alone (pure), so main's and an event's maps can be compared. A
    delegated role's metadata is read (through ``get``) only when a question needs it, so
    questions about one role cost one role, whatever the number of roles.
    """

    named: tuple[str, ...] = ()
    top_bins: SuccinctRoles | None = None
    get: Callable[[str], Targets | None] = field(default=lambda _: None, compare=False, repr=False)
    _loaded: dict[str, SuccinctRoles | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, targets: Targets | None, get: Callable[[str], Targets | None]) -> RoleMap:
        """The map of ``targets`` (None: no targets yet) and its delegated roles, read with
        ``get(name)`` when needed (None when a delegated role has no metadata)."""
        return cls(tuple(delegated_role_names(targets)), _succinct(targets), get)

    @property
    def bins(self) -> list[tuple[str, SuccinctRoles]]:
        """(binned role, its bins) for every binned role (reads every delegated role)."""
        owners = ["targets", *self.named]
        return [(o, s) for o in owners if (s := self._bins_of(o)) is not None]

    def _bins_of(self, role: str) -> SuccinctRoles | None:
        if role == "targets":
            return self.top_bins
        if role not in self.named:
            return None
        if role not in self._loaded:
            self._loaded[role] = _succinct(self.get(role))
        return self._loaded[role]

    def bin_names(self, role: str) -> list[str]:
        """The hash bins of ``role`` (empty when it is not binned)."""
        succinct = self._bins_of(role)
        return list(succinct.get_roles()) if succinct else []

    def bin_count(self, role: str) -> int:
        succinct = self._bins_of(role)
        return succinct.number_of_bins if succinct else 0

    def bin_owner(self, role: str) -> str | None:
        """The role whose hash bin ``role`` is (None: not a bin). Bins of R are named
        ``R-bins-*``, so only R is read (and roles already read, for other prefixes)."""
        candidates = [role.rsplit(BIN_SUFFIX + "-", 1)[0]] if BIN_SUFFIX + "-" in role else []
        candidates += [o for o, s in self._loaded.items() if s is not None]
        if self.top_bins is not None:
            candidates.append("targets")
        for owner in dict.fromkeys(candidates):
            succinct = self._bins_of(owner)
            if succinct is not None and succinct.is_delegated_role(role):
                return owner
        return None

    def targets_roles(self) -> list[str]:
        """Every targets-type role: targets, the named delegations, then every bin (reads
        every delegated role)."""
        return ["targets", *self.named, *(b for _, s in self.bins for b in s.get_roles())]

    def signed_roles(self) -> list[str]:
        """The targets-type roles that hold artifacts (binned roles hold none)."""
        binned = {o for o, _ in self.bins}
        return [r for r in self.targets_roles() if r not in binned]

    def __contains__(self, role: object) -> bool:
        return isinstance(role, str) and (
            role == "targets" or role in self.named or self.bin_owner(role) is not None
        )

    def delegator(self, role: str) -> str:
        """Who delegates ``role``: root (top-level roles), targets, or a binned role.

        Raises:
            InputError: ``role`` is not in the map.
        """
        if role in TOP_LEVEL:
            return "root"
        if role in self.named:
            return "targets"
        owner = self.bin_owner(role)
        if owner is None:
            raise InputError(f"no role delegates {role}")
        return owner

    def group(self, role: str) -> str:
        """The named role (or targets) that ``role`` belongs to: itself, or a bin's owner."""
        return self.bin_owner(role) or role

    def top_owner(self, path: str) -> str:
        """targets or the named role whose layout covers ``path`` (before hash bins).

        Raises:
            InputError: no role owns the path (naming it).
        """
        parts = path.split("/")
        if len(parts) == 1 or self._bins_of("targets") is not None:
            return "targets"
        role = parts[0]
        if role not in self.named:
            raise InputError(f"no role owns targets/{path}: '{role}' is not a delegated role")
        if len(parts) - 1 > MAX_DEPTH:
            raise InputError(
                f"no role owns targets/{path}: more than {MAX_DEPTH} levels below targets/{role}"
            )
        return role

    def owner(self, path: str) -> str:
        """The role that lists target ``path`` (relative to targets/): the named role, or
        the hash bin of a binned role.

        Raises:
            InputError: no role owns the path (naming it).
        """
        top = self.top_owner(path)
        succinct = self._bins_of(top)
        return succinct.get_role_for_target(path) if succinct else top

    def covers(self, role: str) -> str:
        """The paths ``role`` lists, in words (for people and reports)."""
        if (owner := self.bin_owner(role)) is not None:
            return f"paths of {owner} that hash to this bin (1 of {self.bin_count(owner)})"
        if self._bins_of(role) is not None:
            return f"none itself: {self.bin_count(role)} hash bins {bin_prefix(role)}-*"
        return "targets/<file>" if role == "targets" else f"targets/{role}/ (up to 4 levels)"

    def layout(self, role: str) -> tuple[object, ...]:
        """A value equal in two maps exactly when ``role`` lists the same paths in both."""
        if (owner := self.bin_owner(role)) is not None:
            return ("bin", owner, self.bin_count(owner))
        if self._bins_of(role) is not None:
            return ("binned",)
        return ("named", role in self)

    def by_owner(self, paths: Iterable[str]) -> dict[str, list[str]]:
        """``paths`` grouped by owning role.

        Raises:
            InputError: a path that no role owns (naming it).
        """
        grouped: dict[str, list[str]] = {}
        for path in paths:
            grouped.setdefault(self.owner(path), []).append(path)
        return grouped


def role_map(targets: Targets | None, get: Callable[[str], Any]) -> RoleMap:
    """:meth:`RoleMap.build` over ``get(name)`` returning Targets, Metadata or None."""

    def signed(name: str) -> Targets | None:
        found = get(name)
        found = getattr(found, "signed", found)
        return found if isinstance(found, Targets) else None

    return RoleMap.build(targets, signed)
