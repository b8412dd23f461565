"""People's changes to a signing event: delegations, invitations, signatures.

Operates on an :class:`EventRepository` (no git here); ``tufrepo.flows`` wraps these in a
git session. Every signature is verified with the key from the metadata before it is kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, cast

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Role, Root, Targets

from tufrepo.errors import InputError, MetadataError, SignerError
from tufrepo.repository import EventRepository, MetadataView, SignedPayload, signed_bytes
from tufrepo.roles import (
    EXPIRY_PERIOD,
    KEYOWNER,
    ONLINE_ROLES,
    ONLINE_URI,
    SIGNING_PERIOD,
    TOP_LEVEL,
    ensure_delegations,
    keyowner,
    keys_of,
    new_delegated_role,
    periods,
    same_key,
    threshold_of,
    with_keyid,
)
from tufrepo.signers import import_public_key, load_signer
from tufrepo.text import plural

DEFAULT_PERIODS = {"root": (365, 60), "targets": (365, 60), "snapshot": (365, 60)}
DEFAULT_PERIODS["timestamp"] = (2, 1)
DELEGATED_PERIODS = (365, 60)
_ROLE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class Actor:
    """The person acting: ``@name`` and the URI of their signer (None: cannot sign).

    The public key and the loaded signer are kept for the whole command, so a password,
    PIN or Sigstore sign-in is asked for once however many roles are signed.
    """

    user: str
    signer_uri: str | None
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def _uri(self) -> str:
        if self.signer_uri is None:
            raise InputError(f"{self.user} needs a signer: pass --signer URI or set TUFREPO_SIGNER")
        return self.signer_uri

    def _imported(self) -> Key:
        if "public" not in self._cache:
            self._cache["public"] = import_public_key(self._uri())
        key: Key = copy.deepcopy(self._cache["public"])
        return key

    def public_key(self) -> Key:
        """The actor's public key with their keyowner field and a canonical keyid."""
        return owned_key(self._imported(), self.user)

    def signer(self, key: Key, role: str) -> Signer:
        """The actor's signer for ``key`` (loaded once per key).

        Raises:
            SignerError: the actor's signer is not ``key``, or cannot be loaded.
        """
        if not same_key(self._imported(), key):
            raise SignerError(
                f"the signer {self.signer_uri} is not {self.user}'s key {key.keyid[:8]} in {role}"
            )
        signers: dict[str, Signer] = self._cache.setdefault("signers", {})
        if key.keyid not in signers:
            signers[key.keyid] = load_signer(self._uri(), key)
        return signers[key.keyid]


@dataclass(frozen=True)
class RoleConfig:
    """Requested changes to one role (None: keep what is there)."""

    signers: list[str] | None = None
    threshold: int | None = None
    expiry_period: int | None = None
    signing_period: int | None = None
    online_uri: str | None = None
    bins: int | None = None  # hash bins for the role; 0: choose from the artifact count

    def changes_delegation(self) -> bool:
        """Anything besides ``bins`` is asked for."""
        return any(
            v is not None
            for v in (
                self.signers,
                self.threshold,
                self.expiry_period,
                self.signing_period,
                self.online_uri,
            )
        )


def current_config(view: MetadataView, role: str) -> RoleConfig | None:
    """``role``'s signers (with invitees), threshold and periods in ``view``; None when the
    role is not delegated there."""
    delegator = view.delegator(role)
    if delegator is None:
        return None
    keys = keys_of(delegator, role)
    invitees = view.state().invitees(role)
    if not keys and not invitees:
        return None
    owners = [o for o in (keyowner(k) for k in keys) if o]
    md = view.get(role)
    expiry: int | None
    signing: int | None
    try:
        expiry, signing = periods(role, view.root(), md.signed if md else None)
    except MetadataError:
        expiry = signing = None
    return RoleConfig(
        owners + invitees or None, threshold_of(delegator, role), expiry, signing, None
    )


def check_role_name(role: str) -> str:
    if role in TOP_LEVEL:
        return role
    # dots inside a name are fine for clients (registry.npmjs.org); never at the ends or twice
    if (
        not role
        or not set(role) <= _ROLE_NAME_CHARS
        or role[0] in "-_."
        or role[-1] == "."
        or ".." in role
    ):
        raise InputError(
            f"invalid role name {role!r}: use lower-case letters, digits, '-', '_' and inner '.'"
        )
    return role


def _find_owner_key(repo: EventRepository, user: str) -> Key | None:
    """A key ``user`` already has in root or in targets' delegations."""
    keys: list[Key] = list(cast(Root, repo.open("root").signed).keys.values())
    if repo.exists("targets"):
        delegations = cast(Targets, repo.open("targets").signed).delegations
        keys += list(delegations.keys.values()) if delegations else []
    return next((k for k in keys if keyowner(k) == user), None)


def owned_key(key: Key, user: str) -> Key:
    """``key`` as the repository records a person's key: their keyowner field, and the keyid
    computed over it (what ``tufrepo key show --user`` prints)."""
    key = copy.deepcopy(key)
    key.unrecognized_fields[KEYOWNER] = user
    return with_keyid(key)


def online_key(uri: str, public: Key | None = None) -> Key:
    """The key of online signer ``uri`` (``public``, else imported) as the repository records
    it: the URI in ``x-tuf-on-ci-online-uri``, the keyid computed over it."""
    key = copy.deepcopy(public) if public is not None else import_public_key(uri)
    key.unrecognized_fields[ONLINE_URI] = uri
    return with_keyid(key)


def _set_periods(fields: dict[str, Any], expiry: int | None, signing: int | None) -> None:
    if expiry is not None:
        fields[EXPIRY_PERIOD] = expiry
    if signing is not None:
        fields[SIGNING_PERIOD] = signing
    exp = fields.get(EXPIRY_PERIOD)
    sig = fields.get(SIGNING_PERIOD)
    if isinstance(exp, int) and isinstance(sig, int) and not 0 < sig < exp:
        raise InputError(
            f"signing period ({plural(sig, 'day')}) must be between 0 and the expiry ({exp})"
        )


def _replace_keys(delegator: Root | Targets, role: str, keys: list[Key], threshold: int) -> None:
    """Make exactly ``keys`` sign ``role`` with ``threshold``; drop keys nobody uses."""
    if threshold > max(len(keys), 1) or threshold < 1:
        raise InputError(
            f"threshold {threshold} for {role} cannot be met by {plural(len(keys), 'signer')}"
        )
    for old in keys_of(delegator, role):
        delegator.revoke_key(old.keyid, role)
    for key in keys:
        delegator.add_key(key, role)
    delegator.get_delegated_role(role).threshold = threshold


def _add_delegation(repo: EventRepository, role: str) -> bool:
    """Delegate ``role`` from targets if it is not yet; True when it is new."""
    targets = cast(Targets, repo.open("targets").signed)
    rmap = repo.role_map()
    if (owner := rmap.bin_owner(role)) is not None:
        raise InputError(f"{role} is a hash bin: it has {owner}'s signers, change {owner}'s")
    if role in rmap:
        return False
    if rmap.bin_count("targets"):
        raise InputError(f"cannot delegate {role}: targets delegates to hash bins (TAP 15)")
    delegations = ensure_delegations(targets)
    roles = delegations.roles if delegations.roles is not None else {}
    if role in roles:
        return False
    roles[role] = new_delegated_role(role, [], 1)
    delegations.roles = roles
    return True


def _configure_periods(repo: EventRepository, role: str, cfg: RoleConfig) -> None:
    if role in ONLINE_ROLES:
        entry: Role = repo.delegator(role).get_delegated_role(role)
        _set_periods(entry.unrecognized_fields, cfg.expiry_period, cfg.signing_period)
        return
    fields = repo.open(role).signed.unrecognized_fields
    default = DEFAULT_PERIODS.get(role, DELEGATED_PERIODS)
    _set_periods(
        fields,
        cfg.expiry_period or (None if EXPIRY_PERIOD in fields else default[0]),
        cfg.signing_period or (None if SIGNING_PERIOD in fields else default[1]),
    )


def _configure_signers(
    repo: EventRepository, role: str, names: list[str], threshold: int, actor: Actor
) -> list[str]:
    """Make ``names`` the signers of ``role``: known keys are used, the others invited."""
    if not 1 <= threshold <= len(names):
        raise InputError(
            f"threshold {threshold} for {role} cannot be met by {plural(len(names), 'signer')}"
        )
    state = repo.event_state
    state.uninvite_role(role)
    keys, invited = [], []
    for name in names:
        mine = name == actor.user and actor.signer_uri is not None
        key = actor.public_key() if mine else _find_owner_key(repo, name)
        if key is None:
            state.invite(name, role)
            invited.append(name)
        else:
            keys.append(key)
    delegator = repo.delegator(role)
    for old in keys_of(delegator, role):
        delegator.revoke_key(old.keyid, role)
    for key in keys:
        delegator.add_key(key, role)
    delegator.get_delegated_role(role).threshold = threshold
    return invited


def configure_role(repo: EventRepository, role: str, cfg: RoleConfig, actor: Actor) -> list[str]:
    """Apply ``cfg`` to ``role`` in the event (creating a delegation); returns users invited."""
    role = check_role_name(role)
    is_new = role not in TOP_LEVEL and _add_delegation(repo, role)
    if role in ONLINE_ROLES and cfg.signers:
        raise InputError(f"{role} is an online role: use --online-key, not --signers")
    _configure_periods(repo, role, cfg)
    invited: list[str] = []
    delegator = repo.delegator(role)
    if cfg.signers is not None or is_new:
        names = cfg.signers or [actor.user]
        invited = _configure_signers(repo, role, names, cfg.threshold or 1, actor)
    elif cfg.threshold is not None:
        count = len(keys_of(delegator, role)) + len(repo.event_state.invitees(role))
        if not 1 <= cfg.threshold <= count:
            raise InputError(
                f"threshold {cfg.threshold} for {role}: it has {plural(count, 'signer')}"
            )
        delegator.get_delegated_role(role).threshold = cfg.threshold
    if cfg.online_uri is not None:
        if role != "root":
            raise InputError("--online-key changes root: use it with the root role")
        key = online_key(cfg.online_uri)
        for online in ONLINE_ROLES:
            _replace_keys(delegator, online, [key], 1)
    return invited


def init_repository(repo: EventRepository, actor: Actor, cfg: RoleConfig) -> list[str]:
    """Create root and targets (offline, the actor's) and online snapshot/timestamp keys."""
    if repo.view.get("root") is not None:
        raise InputError("the repository is already initialised")
    if cfg.online_uri is None:
        raise InputError("initialising needs --online-key URI for snapshot and timestamp")
    root = cast(Root, repo.open("root").signed)
    root.consistent_snapshot = True
    for online in ONLINE_ROLES:
        expiry, signing = DEFAULT_PERIODS[online]
        _set_periods(root.roles[online].unrecognized_fields, expiry, signing)
    signers = cfg.signers or [actor.user]
    root_cfg = RoleConfig(
        signers, cfg.threshold, cfg.expiry_period, cfg.signing_period, cfg.online_uri
    )
    invited = configure_role(repo, "root", root_cfg, actor)
    invited += configure_role(repo, "targets", RoleConfig(signers, cfg.threshold), actor)
    return invited


def accept_invitations(repo: EventRepository, actor: Actor) -> list[str]:
    """Add the actor's key to every role they were invited to; returns those roles."""
    roles = repo.event_state.invites.get(actor.user, [])
    if not roles:
        return []
    key = actor.public_key()
    for role in list(roles):
        delegator = repo.delegator(role)
        delegator.add_key(key, role)
    repo.event_state.accept(actor.user)
    return roles


def roles_in_order(changed: list[str]) -> list[str]:
    """Changed roles, in dependency order (delegated roles, targets, root)."""
    order = {"root": 2, "targets": 1}
    return sorted(set(changed), key=lambda r: (order.get(r, 0), r))


def close_roles(repo: EventRepository, roles: list[str]) -> None:
    """Close (version, expiry, placeholders) and stage each of ``roles``."""
    for role in roles_in_order(roles):
        if role in ONLINE_ROLES:
            continue
        repo.close(role, repo.open(role))


def needs_signature(repo: EventRepository, role: str, actor: Actor) -> Key | None:
    """The actor's key that should sign ``role`` and has not yet (None: nothing to do)."""
    md = repo.open(role)
    for key in repo.signing_keys(role):
        if keyowner(key) != actor.user:
            continue
        sig = md.signatures.get(key.keyid)
        if sig is not None and sig.signature:
            try:
                key.verify_signature(sig, signed_bytes(md))
                continue
            except UnverifiedSignatureError:
                pass
        return key
    return None


def sign_role(repo: EventRepository, role: str, actor: Actor, key: Key) -> None:
    """Sign ``role`` with the actor's signer for ``key``; verify the signature, then stage."""
    if actor.signer_uri is None:
        raise InputError(f"{actor.user} must sign {role}: pass --signer URI or set TUFREPO_SIGNER")
    signer = actor.signer(key, role)
    md: Metadata[Any] = repo.open(role)
    try:
        payload = SignedPayload(md)  # one encoding: signed, and the signature checked, over it
        sig = md.sign(signer, append=True, signed_serializer=payload)
        key.verify_signature(sig, payload.payload)
    except UnverifiedSignatureError as e:
        raise SignerError(f"{actor.user}'s signature of {role} does not verify: {e}") from e
    except UnsignedMetadataError as e:
        raise SignerError(f"signing {role} failed: {e.__cause__ or e}") from e
    repo.stage(role, md)


def sign_all(repo: EventRepository, roles: list[str], actor: Actor) -> list[str]:
    """Sign every role in ``roles`` that needs the actor's signature; returns them."""
    signed = []
    for role in roles_in_order(roles):
        if role in ONLINE_ROLES or not repo.exists(role):
            continue
        key = needs_signature(repo, role, actor)
        if key is not None:
            sign_role(repo, role, actor, key)
            signed.append(role)
    return signed
