"""Signing-event state: what changed against main, who must sign, and is it ready.

Pure: two :class:`MetadataView` (main, the event), the changed roles, the artifact changes
and the targets recomputed from the files, and a ``now``. Trust comes from main: a role's
signers are named by its delegator, and a changed delegator must itself be signed by main's
keys (root by the previous root too), so the event branch never decides who may sign.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from tuf.api.metadata import Metadata, Root, TargetFile, Targets

from tufrepo.importer import adopted_history_problems
from tufrepo.repository import HISTORY_DIR, MetadataView, signed_bytes
from tufrepo.roles import (
    EXPIRY_PERIOD,
    ONLINE_ROLES,
    SIGNING_PERIOD,
    EventState,
    RoleMap,
    canonical_keyid,
    delegated_role_names,
    key_material,
    keyowner,
    keys_of,
    periods,
    threshold_of,
)
from tufrepo.targets import ArtifactChange, diff_artifacts, mismatches
from tufrepo.text import plural
from tufrepo.validate import (
    bins_signer_problems,
    describe_key,
    signature_problem,
    unknown_signatures,
    verify_delegations,
)

EXPIRY_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class SignerState:
    """One key expected to sign a role, and whether it did."""

    name: str
    keyid: str
    signed: bool
    problem: str = ""  # why a signature that is present does not verify


@dataclass
class RoleStatus:
    """The state of one role changed by the event."""

    role: str
    old_version: int | None
    version: int
    expires: datetime
    threshold: int
    signers: list[SignerState]
    prev_threshold: int | None = None
    prev_signers: list[SignerState] = field(default_factory=list)
    invites: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    artifacts: list[ArtifactChange] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    bin_of: str | None = None  # the binned role whose hash bin this is

    @property
    def signed(self) -> int:
        return sum(s.signed for s in self.signers)

    @property
    def prev_signed(self) -> int:
        return sum(s.signed for s in self.prev_signers)

    @property
    def missing(self) -> list[str]:
        """Signers still to sign (new delegation and, for root, previous root's)."""
        names = [s.name for s in self.signers if not s.signed]
        names += [s.name for s in self.prev_signers if not s.signed and s.name not in names]
        return names

    @property
    def invalid(self) -> list[str]:
        """``name: reason`` for each signature present that does not verify."""
        found = [f"{s.name}: {s.problem}" for s in self.signers + self.prev_signers if s.problem]
        return list(dict.fromkeys(found))

    @property
    def ready(self) -> bool:
        prev_ok = self.prev_threshold is None or self.prev_signed >= self.prev_threshold
        return (
            not self.problems
            and not self.invites
            and self.threshold > 0
            and self.signed >= self.threshold
            and prev_ok
        )


@dataclass(frozen=True)
class Behind:
    """Main moved on since the event left it (the event is judged as merged with main)."""

    commits: int  # on main and not in the event
    main_changed: list[str]  # roles main changed since the event left it
    conflicts: list[str]  # roles (or artifacts) main and the event both change
    command: str  # what brings the event up to date
    outside: list[str] = field(default_factory=list)  # other files both change: git's to merge


@dataclass
class EventStatus:
    """The whole signing event."""

    name: str
    roles: list[RoleStatus]
    problems: list[str]
    invites: dict[str, list[str]]
    moved: dict[str, int] = field(default_factory=dict)
    """Per binned role re-laid out by the event: artifacts that only moved to another bin."""
    behind: Behind | None = None

    @property
    def ready(self) -> bool:
        return (
            bool(self.roles)
            and not self.problems
            and not any(self.invites.values())
            and all(r.ready for r in self.roles)
        )

    def role(self, name: str) -> RoleStatus | None:
        return next((r for r in self.roles if r.role == name), None)


def _signer_state(key: Any, md: Metadata[Any], payload: bytes | None = None) -> SignerState:
    problem = signature_problem(key, md, payload)
    name = keyowner(key) or describe_key(key)
    return SignerState(name, key.keyid, problem is None, problem or "")


def _signer_states(keys: list[Any], md: Metadata[Any]) -> list[SignerState]:
    signed = any(sig.signature for sig in md.signatures.values())
    payload = signed_bytes(md) if signed else None  # every signature over one encoding
    return [_signer_state(k, md, payload) for k in keys]


def delegation_changes(
    role: str, old: Root | Targets | None, new: Root | Targets | None, old_role: str = ""
) -> list[str]:
    """Signer, key and threshold changes of ``role``'s delegation (named ``old_role`` in
    ``old``, when it differs), in words."""
    old_role = old_role or role
    old_keys = {k.keyid: k for k in keys_of(old, old_role)} if old else {}
    new_keys = {k.keyid: k for k in keys_of(new, role)} if new else {}
    out = [f"signer added: {describe_key(new_keys[k])}" for k in new_keys if k not in old_keys]
    out += [f"signer removed: {describe_key(old_keys[k])}" for k in old_keys if k not in new_keys]
    old_t = threshold_of(old, old_role) if old else 0
    new_t = threshold_of(new, role) if new else 0
    if old_t != new_t:
        out.append(f"threshold: {old_t or '-'} -> {new_t}")
    return out


def _period_changes(old: Any, new: Any, label: str = "") -> list[str]:
    out = []
    for fld, name in ((EXPIRY_PERIOD, "expiry period"), (SIGNING_PERIOD, "signing period")):
        before = old.unrecognized_fields.get(fld) if old is not None else None
        after = new.unrecognized_fields.get(fld)
        if before != after:
            was = "-" if before is None else before
            out.append(f"{label}{name}: {was} -> {plural(after, 'day') if after else after}")
    return out


def _role_changes(role: str, base: MetadataView, event: MetadataView) -> list[str]:
    """What a signer should judge about ``role`` besides artifacts."""
    base_md, md = base.get(role), event.require(role)
    out = _period_changes(base_md.signed if base_md else None, md.signed)
    if role == "root":
        base_root = base.root() if base_md else None
        root = cast(Root, md.signed)
        for name in ("root", "targets", *ONLINE_ROLES):
            out += [f"{name} {c}" for c in delegation_changes(name, base_root, root)]
            if name in ONLINE_ROLES:
                old_role = base_root.roles[name] if base_root else None
                out += _period_changes(old_role, root.roles[name], f"{name} ")
    elif isinstance(md.signed, Targets):
        old_t = base.targets(role) if base_md else None
        new_t = md.signed
        for name in sorted(
            set(delegated_role_names(new_t)) | set(delegated_role_names(old_t) if old_t else [])
        ):
            out += [f"delegation {name} {c}" for c in delegation_changes(name, old_t, new_t)]
        out += _bin_changes(role, old_t, new_t)
    return out


def _bin_changes(role: str, old: Targets | None, new: Targets) -> list[str]:
    """Hash-bin delegation changes of ``role``: created, re-binned, signers of the bins."""
    before = old.delegations.succinct_roles if old and old.delegations else None
    after = new.delegations.succinct_roles if new.delegations else None
    if before is None and after is None:
        return []
    if after is None:
        return [f"hash bins removed (were {before.number_of_bins if before else 0})"]
    out = []
    if before is None or before.number_of_bins != after.number_of_bins:
        was = f"{before.number_of_bins} -> " if before else ""
        out.append(f"hash bins: {was}{after.number_of_bins} ({after.name_prefix}-*)")
    old_ref = old if before is not None else None
    old_name = next(before.get_roles()) if before else ""
    out += [
        f"hash bins {c}"
        for c in delegation_changes(next(after.get_roles()), old_ref, new, old_name)
    ]
    return out


def _version_problems(role: str, old: int | None, new: int) -> list[str]:
    if old is None:
        return [] if new == 1 or role != "root" else [f"{role}: a new root must be version 1"]
    if role == "root" and new != old + 1:
        return [f"root: version must be {old + 1} (main has {old}), not {new}"]
    if new <= old:
        return [f"{role}: version {new} does not grow (main has {old})"]
    return []


def _expiry_problems(role: str, md: Metadata[Any], root: Root, now: datetime) -> list[str]:
    expiry_days, _ = periods(role, root, md.signed)
    if md.signed.expires > now + timedelta(days=expiry_days) + EXPIRY_SLACK:
        return [f"{role}: expires further than {plural(expiry_days, 'day')} ahead"]
    if md.signed.is_expired(now):
        return [f"{role}: already expired"]
    return []


def _history_problems(base: MetadataView, event: MetadataView, root_changed: bool) -> list[str]:
    """root_history is append-only: main's entries unchanged, one new entry == root.json."""
    problems = []
    base_versions = base.history_versions()
    for v in base_versions:
        if event.history(v) != base.history(v):
            problems.append(f"root: {HISTORY_DIR}/{v}.root.json was changed or removed")
    new = [v for v in event.history_versions() if v not in base_versions]
    expected = [event.root().version] if root_changed else []
    if root_changed and not base_versions and base.get("root") is not None:
        # an imported repository (tufrepo import): main has root.json but no root_history;
        # the event adds the earlier roots found, main's root and the new one
        problems += adopted_history_problems(base, event, new)
        expected = [v for v in new if v < expected[0]] + expected
    if new != expected:
        problems.append(f"root: unexpected {HISTORY_DIR} entries {new} (expected {expected})")
    elif root_changed and event.history(expected[-1]) != event.raw("root.json"):
        problems.append(f"root: {HISTORY_DIR}/{expected[-1]}.root.json differs from root.json")
    return problems


def _new_key_problems(base: MetadataView, event: MetadataView, role: str) -> list[str]:
    """Keys added by the event must have canonical keyids."""
    old = base.get(role)
    old_keys = set()
    new_keys: dict[str, Any] = {}
    md = event.require(role)
    if role == "root":
        new_keys = dict(cast(Root, md.signed).keys)
        old_keys = set(base.root().keys) if old else set()
    elif isinstance(md.signed, Targets):
        dl = md.signed.delegations
        new_keys = dict(dl.keys) if dl else {}
        if old is not None:
            odl = base.targets(role).delegations
            old_keys = set(odl.keys) if odl else set()
    problems = [
        f"{role}: new key {keyid[:16]} does not have its canonical keyid"
        for keyid, key in new_keys.items()
        if keyid not in old_keys and canonical_keyid(key) != keyid
    ]
    # a kept keyid (legacy ones too, e.g. after an import added custom fields) must keep
    # its key material: only the custom fields may change
    old_material = _key_material(base, role) if old is not None and new_keys else {}
    problems += [
        f"{role}: key {keyid[:16]} changed its key material but kept its keyid"
        for keyid, key in new_keys.items()
        if keyid in old_material and old_material[keyid] != key_material(key)
    ]
    return problems


def _key_material(view: MetadataView, role: str) -> dict[str, Any]:
    if role == "root":
        keys = view.root().keys
    else:
        dl = view.targets(role).delegations
        keys = dl.keys if dl else {}
    return {k: key_material(key) for k, key in keys.items()}


def role_status(
    role: str,
    base: MetadataView,
    event: MetadataView,
    *,
    state: EventState,
    expected: dict[str, TargetFile] | None,
    now: datetime,
) -> RoleStatus:
    """The status of one changed role (see module doc for where trust comes from)."""
    md = event.require(role)
    base_md = base.get(role)
    root = event.root()
    delegator = event.delegator(role)
    keys = keys_of(delegator, role) if delegator else []
    status = RoleStatus(
        role=role,
        old_version=base_md.signed.version if base_md else None,
        version=md.signed.version,
        expires=md.signed.expires,
        threshold=threshold_of(delegator, role) if delegator else 0,
        signers=_signer_states(keys, md),
        invites=state.invitees(role),
    )
    if delegator is None:
        status.problems.append(f"{role}: its delegator is missing")
    elif not keys and not status.invites:
        status.problems.append(f"{role}: not delegated by {delegator.type}")
    if role == "root" and base_md is not None:
        prev = base.root()
        status.prev_threshold = threshold_of(prev, "root")
        owners = {s.keyid: s.name for s in status.signers}  # e.g. keys given owners by import
        status.prev_signers = [
            replace(s, name=owners.get(s.keyid, s.name))
            for s in _signer_states(keys_of(prev, "root"), md)
        ]
    if delegator is not None:
        trusted = [delegator] + ([base.root()] if role == "root" and base_md else [])
        unknown = [set(unknown_signatures(d, role, md)) for d in trusted]
        status.problems += sorted(set.intersection(*unknown)) if unknown else []
    status.problems += _version_problems(role, status.old_version, status.version)
    status.problems += _expiry_problems(role, md, root, now)
    status.problems += _new_key_problems(base, event, role)
    status.changes = _role_changes(role, base, event)
    if isinstance(md.signed, Targets):
        listed = md.signed.targets
        old_targets = base.targets(role).targets if base_md else {}
        status.artifacts = diff_artifacts(role, old_targets, listed)
        if expected is not None:
            status.problems += [f"{role}: {m}" for m in mismatches(expected, listed)]
        if delegator is not None:
            status.problems += bins_signer_problems(delegator, role, md.signed)
        if md.signed.delegations is not None:
            status.problems += verify_delegations(
                md.signed, role, lambda r: len(state.invitees(r))
            ).problems
    return status


def event_status(
    name: str,
    base: MetadataView,
    event: MetadataView,
    *,
    changed_roles: list[str],
    expected_targets: dict[str, dict[str, TargetFile]],
    now: datetime,
) -> EventStatus:
    """The status of the signing event ``name`` (pure)."""
    state = event.state()
    problems: list[str] = []
    roles = []
    online = [r for r in changed_roles if r in ONLINE_ROLES]
    if online:
        problems.append(f"signing events must not change online roles: {', '.join(online)}")
    offline = [r for r in changed_roles if r not in ONLINE_ROLES]
    retired = [r for r in offline if _retired(r, base, event)]
    for role in sorted(set(offline) - set(retired) | set(expected_targets), key=_role_order):
        if event.get(role) is None:
            problems.append(f"{role}: metadata/{role}.json is missing")
            continue
        roles.append(
            role_status(
                role, base, event, state=state, expected=expected_targets.get(role), now=now
            )
        )
    if event.get("root") is not None:
        problems += _history_problems(base, event, "root" in offline)
    if not roles and not problems:
        problems.append(f"{name} changes no role against main: nothing to sign")
    invited_roles = {r for rs in state.invites.values() for r in rs}
    for role in sorted(invited_roles - {r.role for r in roles}):
        problems.append(f"{role}: has open invitations but is not changed by the event")
    invites = {k: list(v) for k, v in state.invites.items()}
    return EventStatus(name, roles, problems, invites, moved=_regroup(roles, base, event))


def group_targets(view: MetadataView, rmap: RoleMap, group: str) -> dict[str, TargetFile]:
    """Every artifact listed by ``group`` (a named role or targets) and its hash bins."""
    pool: dict[str, TargetFile] = {}
    for role in [group, *rmap.bin_names(group)] if group in rmap else []:
        if view.get(role) is not None:
            pool.update(view.targets(role).targets)
    return pool


def _regroup(roles: list[RoleStatus], base: MetadataView, event: MetadataView) -> dict[str, int]:
    """Artifact changes of roles whose hash-bin layout changed, computed per group (a
    re-binning moves artifacts between bins: that is not an addition and a removal).
    Returns how many artifacts only moved, per group."""
    bmap, emap = base.role_map(), event.role_map()
    for r in roles:
        r.bin_of = emap.bin_owner(r.role)
    groups = {emap.group(r.role) for r in roles if bmap.layout(r.role) != emap.layout(r.role)}
    moved = {}
    for group in sorted(g for g in groups if g in emap):
        before, after = group_targets(base, bmap, group), group_targets(event, emap, group)
        changes = diff_artifacts(group, before, after)
        members = [r for r in roles if emap.group(r.role) == group]
        for r in members:
            r.artifacts = [replace(c, role=r.role) for c in changes if emap.owner(c.path) == r.role]
        moved[group] = sum(
            1
            for p in set(before) & set(after)
            if before[p] == after[p] and bmap.owner(p) != emap.owner(p)
        )
    return moved


def _retired(role: str, base: MetadataView, event: MetadataView) -> bool:
    """``role`` was a hash bin on main and the event removed it (re-binning): its file goes,
    snapshot keeps its last version (clients refuse a snapshot that drops a role)."""
    return (
        event.get(role) is None
        and base.role_map().bin_owner(role) is not None
        and role not in event.role_map()
    )


def _role_order(role: str) -> tuple[int, str]:
    return ({"root": 0, "targets": 1}.get(role, 2), role)
