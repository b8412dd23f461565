"""``tufrepo import``: adopt an existing plain TUF repository committed on main.

The existing repository (``metadata/root.json``, ``targets.json``, delegated roles,
``snapshot.json``, ``timestamp.json``, artifacts under ``targets/``) is checked first - it must
verify, use consistent snapshots, have tuf-on-ci shaped delegations and match its files - and
then a signing event adds what tuf-on-ci's format needs: key owners, the online key's signer
URI, expiry and signing periods, and ``metadata/root_history`` (the earlier roots found, the
current one, and the new one). Root and the offline roles get version+1 and signature
placeholders; their current signers sign them in the event as in any other event, so the new
root is signed by the old root's keys and trust continues from the adopted repository.

Keyids are kept as they are: adding custom fields changes a key's canonical keyid, but
renaming keys would break the signature chain from the adopted root. ``verify`` warns about
such legacy keyids; the event status accepts them because the keyid and key material are the
ones main already trusts (see :func:`tufrepo.event.role_status`).

Everything here is pure: metadata in, adopted metadata or an
:class:`~tufrepo.errors.InputError` (one line) out; ``tufrepo.flows.import_repository`` runs
it inside a signing event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from tuf.api.metadata import Key, Metadata, Root, Targets

from tufrepo.errors import Error, InputError
from tufrepo.repository import HISTORY_DIR, MetadataView, parse
from tufrepo.roles import (
    EXPIRY_PERIOD,
    KEYOWNER,
    ONLINE_ROLES,
    ONLINE_URI,
    SIGNING_PERIOD,
    TOP_LEVEL,
    delegated_role_names,
    keyowner,
    normalize_user,
    same_key,
)
from tufrepo.signing import check_role_name
from tufrepo.validate import check_signed, verify_artifacts, verify_delegations

ONLINE_PERIODS = {"timestamp": (2, 1), "snapshot": (365, 60)}


@dataclass(frozen=True)
class ImportConfig:
    """What the maintainer tells the import: key owners, online signer, periods."""

    owners: dict[str, str] = field(default_factory=dict)  # keyid (or unique prefix) -> @name
    online_uri: str | None = None
    expiry_period: int = 365
    signing_period: int = 60


@dataclass
class Adoption:
    """The checked existing repository: its roots (version -> bytes) and offline roles."""

    roots: dict[int, bytes]
    delegated: list[str]


def parse_owner(value: str) -> tuple[str, str]:
    """``KEYID=@name`` -> (keyid, @name)."""
    keyid, sep, name = value.partition("=")
    keyid = keyid.strip().lower()
    if not sep or not keyid or not all(c in "0123456789abcdef" for c in keyid):
        raise InputError(f"--owner {value!r}: expected KEYID=@name (KEYID in hex)")
    return keyid, normalize_user(name)


def _signed_by_self(md: Metadata[Any], what: str) -> None:
    problems = check_signed(cast(Root, md.signed), "root", md, what)
    if problems:
        raise InputError(f"cannot import: {problems[0]}")


def find_roots(view: MetadataView) -> dict[int, bytes]:
    """The current root and the earlier ones found, checked as a chain: version -> bytes.

    Earlier root N is read from ``metadata/N.root.json`` (consistent-snapshot copies); the
    search stops at the first version not found.

    Raises:
        InputError: a root that does not verify (naming it).
    """
    root_md = view.require("root")
    if not isinstance(root_md.signed, Root):
        raise InputError("cannot import: metadata/root.json is not root metadata")
    current = root_md.signed.version
    _signed_by_self(root_md, f"root v{current}")
    roots = {current: view.raw("root.json") or b""}
    newer = root_md
    for version in range(current - 1, 0, -1):
        name = f"{version}.root.json"
        data = view.raw(name)
        if data is None:
            break
        try:
            md = parse(name, data)
        except Error as e:
            raise InputError(f"cannot import: {e.diagnostics()}") from e
        if not isinstance(md.signed, Root) or md.signed.version != version:
            raise InputError(f"cannot import: metadata/{name} is not root version {version}")
        _signed_by_self(md, f"root v{version}")
        problems = check_signed(md.signed, "root", newer, f"root v{version}")
        if problems:
            raise InputError(f"cannot import: root v{version + 1} is not trusted by {name}")
        roots[version] = data
        newer = md
    return dict(sorted(roots.items()))


def check_adoptable(view: MetadataView, scanned: dict[str, Any] | Error) -> Adoption:
    """Refuse (one line) what tufrepo cannot continue; else the roots and delegated roles.

    ``scanned`` is the artifacts under targets/ grouped by role (or the scan's error).
    """
    if view.get("root") is None:
        raise InputError(
            "cannot import: metadata/root.json not found on main: not a TUF repository"
        )
    if view.history_versions():
        raise InputError(f"cannot import: metadata/{HISTORY_DIR} exists: already tuf-on-ci format")
    for name in ("targets", *ONLINE_ROLES):
        if view.get(name) is None:
            raise InputError(f"cannot import: metadata/{name}.json not found on main")
    root = view.root()
    for name, role in root.roles.items():
        missing = [k for k in role.keyids if k not in root.keys]
        if missing:
            raise InputError(f"cannot import: root: role {name} names missing key {missing[0]}")
    roots = find_roots(view)
    if not root.consistent_snapshot:
        raise InputError("cannot import: root has consistent_snapshot false (tufrepo needs true)")
    try:
        targets = view.targets()
    except Error as e:
        raise InputError(f"cannot import: {e.diagnostics()}") from e
    _check(check_signed(root, "targets", view.require("targets"), "root"))
    delegated = _check_delegated(view, targets)
    for name in ONLINE_ROLES:
        _check(check_signed(root, name, view.require(name), "root"))
    _check(verify_artifacts(view, scanned).problems)
    return Adoption(roots, delegated)


def _check(problems: list[str]) -> None:
    if problems:
        raise InputError(f"cannot import: {problems[0]}")


def _check_delegated(view: MetadataView, targets: Targets) -> list[str]:
    """Delegated roles are tuf-on-ci shaped, named as tufrepo allows and signed by targets."""
    if targets.delegations is not None and targets.delegations.succinct_roles is not None:
        raise InputError("cannot import: succinct (hash-bin) delegations are not supported")
    _check(verify_delegations(targets).problems)
    delegated = delegated_role_names(targets)
    for name in delegated:
        try:
            check_role_name(name)
        except InputError as e:
            raise InputError(f"cannot import: {e}") from e
        if name in TOP_LEVEL:
            raise InputError(f"cannot import: a delegated role is named {name}")
        md = view.get(name)
        if md is None or not isinstance(md.signed, Targets):
            raise InputError(f"cannot import: metadata/{name}.json missing or not targets metadata")
        _check(check_signed(targets, name, md, "targets"))
        if md.signed.delegations is not None:
            raise InputError(f"cannot import: {name} delegates further (tufrepo allows one level)")
    return delegated


def _offline_keys(root: Root, targets: Targets) -> dict[str, list[Key]]:
    """Every copy of every key that signs an offline role, by keyid (root's and targets')."""
    keys: dict[str, list[Key]] = {}
    for name in ("root", "targets"):
        for keyid in root.roles[name].keyids:
            keys.setdefault(keyid, []).append(root.keys[keyid])
    if targets.delegations is not None:
        for role in (targets.delegations.roles or {}).values():
            for keyid in role.keyids:
                keys.setdefault(keyid, []).append(targets.delegations.keys[keyid])
    return keys


def _resolve_owners(
    owners: dict[str, str], keyids: list[str], existing: dict[str, str]
) -> dict[str, str]:
    """Full keyid -> @name; every offline key needs one (given, or already in the
    metadata: ``existing``), prefixes must be unique."""
    resolved: dict[str, str] = dict(existing)
    for given, name in owners.items():
        matches = [k for k in keyids if k.startswith(given)]
        if len(matches) != 1:
            what = "matches no" if not matches else "matches more than one"
            raise InputError(f"--owner {given}: {what} key of an offline role")
        resolved[matches[0]] = name
    missing = [k for k in keyids if k not in resolved]
    if missing:
        raise InputError(
            "these offline keys need an owner (--owner KEYID=@name): " + ", ".join(missing)
        )
    return resolved


def adopt(
    root: Root, targets: Targets, delegated: dict[str, Targets], cfg: ImportConfig, online: Key
) -> None:
    """Add tuf-on-ci's custom fields in place (keyids unchanged).

    Raises:
        InputError: a key without owner, an online key that is not ``online``, bad periods.
    """
    if not 0 < cfg.signing_period < cfg.expiry_period:
        raise InputError(
            f"signing period ({cfg.signing_period} days) must be between 0 and the expiry "
            f"({cfg.expiry_period})"
        )
    offline = _offline_keys(root, targets)
    for name in ONLINE_ROLES:
        role = root.roles[name]
        if len(role.keyids) != 1 or role.threshold != 1:
            raise InputError(f"cannot import: {name} must have one online key with threshold 1")
        key = root.keys[role.keyids[0]]
        if not same_key(key, online):
            raise InputError(
                f"--online-key is not the {name} key {key.keyid[:16]} of the existing repository"
            )
        if key.keyid in offline:
            raise InputError(f"cannot import: online key {key.keyid[:16]} also signs offline roles")
        key.unrecognized_fields[ONLINE_URI] = online.unrecognized_fields[ONLINE_URI]
        expiry, signing = ONLINE_PERIODS[name]
        role.unrecognized_fields.setdefault(EXPIRY_PERIOD, expiry)
        role.unrecognized_fields.setdefault(SIGNING_PERIOD, signing)
    existing = {keyid: owner for keyid, copies in offline.items() if (owner := keyowner(copies[0]))}
    owners = _resolve_owners(cfg.owners, sorted(offline), existing)
    for keyid, copies in offline.items():
        for key in copies:
            key.unrecognized_fields[KEYOWNER] = owners[keyid]
    for signed in (root, targets, *delegated.values()):
        signed.unrecognized_fields.setdefault(EXPIRY_PERIOD, cfg.expiry_period)
        signed.unrecognized_fields.setdefault(SIGNING_PERIOD, cfg.signing_period)


def adopted_history_problems(base: MetadataView, event: MetadataView, new: list[int]) -> list[str]:
    """Root history added by an import (main has root.json but no root_history).

    ``new`` are the entries the event adds: a contiguous K..N+1 where N.root.json is main's
    root.json and each earlier root trusts the next (N+1 itself is checked as a changed role).
    """
    base_version = base.root().version
    if not new or new != list(range(new[0], new[-1] + 1)) or base_version not in new:
        return [f"root: {HISTORY_DIR} entries {new} must run from an earlier root to the new one"]
    if event.history(base_version) != base.raw("root.json"):
        return [f"root: {HISTORY_DIR}/{base_version}.root.json differs from main's root.json"]
    newer: Metadata[Any] | None = None
    for version in reversed([v for v in new if v <= base_version]):
        md = parse(f"{HISTORY_DIR}/{version}.root.json", event.history(version) or b"")
        if not isinstance(md.signed, Root) or md.signed.version != version:
            return [f"root: {HISTORY_DIR}/{version}.root.json is not root v{version}"]
        problems = check_signed(md.signed, "root", md, f"root v{version}")
        if newer is not None:
            problems += check_signed(md.signed, "root", newer, f"root v{version}")
        if problems:
            return [f"root: {HISTORY_DIR}/{version}.root.json: {problems[0]}"]
        newer = md
    return []
