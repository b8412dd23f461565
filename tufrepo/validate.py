"""Validation of a repository state: pure functions over metadata and a ``now``.

``verify_repository`` is what ``tufrepo verify`` and ``online-sign`` run on main: every role
against its delegator, the root chain through root_history, delegations well formed,
snapshot/timestamp consistent, expiry, and targets metadata equal to the files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from securesystemslib.exceptions import UnverifiedSignatureError
from tuf.api.exceptions import LengthOrHashMismatchError, UnsignedMetadataError
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Signature,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from tufrepo.errors import CorruptMetadataError, Error, InputError, MetadataError
from tufrepo.repository import HISTORY_DIR, MetadataView, read_history_root, signed_bytes
from tufrepo.roles import (
    MAX_ENTRIES,
    ONLINE_ROLES,
    ONLINE_URI,
    RoleMap,
    bin_prefix,
    canonical_keyid,
    delegated_paths,
    keyowner,
)
from tufrepo.targets import mismatches


@dataclass
class Report:
    """Problems (the state is invalid) and warnings (worth knowing, not fatal)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.problems

    def extend(self, other: Report) -> None:
        self.problems += other.problems
        self.warnings += other.warnings


def describe_key(key: Any) -> str:
    """A key in words a signer can judge: owner, Sigstore identity, or online signer."""
    owner = keyowner(key)
    if key.keytype == "sigstore-oidc":
        ident = f"{key.keyval.get('identity')} ({key.keyval.get('issuer')})"
        return f"{owner} [{ident}]" if owner else ident
    if owner:
        return f"{owner} [{key.keytype} {key.keyid[:8]}]"
    uri = key.unrecognized_fields.get(ONLINE_URI)
    if uri:
        return f"online key {key.keyid[:8]} ({uri})"
    return f"{key.keytype} key {key.keyid[:8]}"


def check_signed(delegator: Root | Targets, role: str, md: Metadata[Any], who: str) -> list[str]:
    """[] when ``md`` meets ``who``'s threshold for ``role``, else one line saying k/n."""
    return check_payload(delegator, role, signed_bytes(md), md.signatures, who)


def check_payload(
    delegator: Root | Targets,
    role: str,
    payload: bytes,
    signatures: dict[str, Signature],
    who: str,
) -> list[str]:
    """[] when ``signatures`` over ``payload`` meet ``who``'s threshold for ``role``."""
    try:
        delegator.verify_delegate(role, payload, signatures)
    except UnsignedMetadataError:
        result = delegator.get_verification_result(role, payload, signatures)
        return [f"{role}: signed by {len(result.signed)}/{result.threshold} of {who}'s {role} keys"]
    except ValueError as e:  # role not delegated
        return [f"{role}: {e}"]
    return []


def unknown_signatures(delegator: Root | Targets, role: str, md: Metadata[Any]) -> list[str]:
    """Non-empty signatures from keys the delegator does not trust for ``role``."""
    known = set(_keyids(delegator, role))
    return [
        f"{role}: signature by unknown key {keyid}"
        for keyid, sig in md.signatures.items()
        if sig.signature and keyid not in known
    ]


def _keyids(delegator: Root | Targets, role: str) -> list[str]:
    try:
        return list(delegator.get_delegated_role(role).keyids)
    except ValueError:
        return []


def verify_root_chain(view: MetadataView) -> Report:
    """root_history is K..N (K is 1 unless imported), walked as TUF clients walk it: each root
    N+1 signed by root N's and its own keys (over the bytes its signers signed); root.json is
    N. Entries that older tools wrote (see ``read_history_root``) are warnings; what a client
    trusting an earlier root cannot get through is a problem."""
    report = Report()
    versions = view.history_versions()
    root_md = view.require("root")
    if not versions:
        report.problems.append("root: metadata/root_history is empty")
        return report
    if versions != list(range(versions[0], versions[-1] + 1)):
        report.problems.append(f"root: root_history is not contiguous: {versions}")
        return report
    if versions[0] != 1:  # an imported repository whose earliest roots were not found
        report.warnings.append(
            f"root: root_history starts at v{versions[0]} (imported): clients bootstrap from "
            f"root v{versions[0]} or later"
        )
    report.extend(walk_history({v: view.history(v) for v in versions}))
    if root_md.signed.version != versions[-1] or view.history(versions[-1]) != view.raw(
        "root.json"
    ):
        report.problems.append(
            f"root: root.json (v{root_md.signed.version}) differs from "
            f"root_history/{versions[-1]}.root.json"
        )
    return report


def walk_history(entries: dict[int, bytes | None]) -> Report:
    """The root chain of contiguous ``entries`` (version -> bytes), read tolerantly."""
    report = Report()
    prev: Root | None = None
    python_tuf_from: int | None = None  # the first root python-tuf's ngclient can trust
    for version, data in sorted(entries.items()):
        name = f"{HISTORY_DIR}/{version}.root.json"
        if data is None:
            report.problems.append(f"root: metadata/{name} cannot be read")
            return report
        try:
            entry = read_history_root(name, data)
        except CorruptMetadataError as e:
            report.problems.append(f"root: {e.diagnostics()}")
            return report
        if entry.root.version != version:
            report.problems.append(f"root: metadata/{name} is not root v{version}")
            return report
        for delegator, who in ((prev, f"root v{version - 1}"), (entry.root, f"root v{version}")):
            if delegator is not None:
                errs = check_payload(delegator, "root", entry.payload, entry.signatures, who)
                report.problems += [e.replace("root:", f"root v{version}:", 1) for e in errs]
        report.warnings += [f"root: metadata/{name}: {note}" for note in entry.notes]
        problem = entry.strict_problem
        if problem is None:
            python_tuf_from = version if python_tuf_from is None else python_tuf_from
        elif python_tuf_from is not None or version == max(entries):
            since = f"root v{python_tuf_from}" if python_tuf_from else "it"
            report.problems.append(
                f"root: metadata/{name}: python-tuf clients that trust {since} fail: {problem}"
            )
        else:
            report.warnings.append(
                f"root: metadata/{name}: {problem}: python-tuf clients must start from a later "
                "root (tuf-js and the TUF spec accept it)"
            )
        prev = entry.root
    return report


def verify_keys(
    root: Root, targets: Targets | None, others: dict[str, Targets] | None = None
) -> Report:
    """Keyids are the canonical sha256 of the key (legacy ones only warn); references exist.
    ``others``: delegated roles that delegate further (to hash bins)."""
    report = Report()
    keysets: list[tuple[str, dict[str, Any]]] = [("root", root.keys)]
    for name, signed in [("targets", targets), *(others or {}).items()]:
        if signed is not None and signed.delegations is not None:
            keysets.append((name, signed.delegations.keys))
    for where, keys in keysets:
        for keyid, key in keys.items():
            if canonical_keyid(key) != keyid:
                report.warnings.append(
                    f"{where}: keyid {keyid[:16]} is not the sha256 of its key (legacy keyid)"
                )
    for name, role in root.roles.items():
        for keyid in role.keyids:
            if keyid not in root.keys:
                report.problems.append(f"root: role {name} names missing key {keyid}")
        if name in ONLINE_ROLES:
            for keyid in role.keyids:
                key = root.keys.get(keyid)
                if key is not None and ONLINE_URI not in key.unrecognized_fields:
                    report.problems.append(f"root: {name} key {keyid[:8]} has no {ONLINE_URI}")
    if not root.consistent_snapshot:
        report.problems.append("root: consistent_snapshot must be enabled")
    return report


def verify_delegations(
    targets: Targets, name: str = "targets", invited: Callable[[str], int] = lambda _: 0
) -> Report:
    """Delegated roles are terminating, with tuf-on-ci's paths, and reference known keys;
    hash bins are named ``<name>-bins-*`` (``name``: the delegating role). ``invited(role)``:
    signers of ``role`` invited in a signing event, who count towards its threshold (hash
    bins share ``name``'s)."""
    report = Report()
    if targets.delegations is None:
        return report
    succinct = targets.delegations.succinct_roles
    if succinct is not None:
        if succinct.name_prefix != bin_prefix(name):
            prefix = succinct.name_prefix
            report.problems.append(
                f"{name}: hash bins must be named {bin_prefix(name)}-*, not {prefix}-*"
            )
        report.problems += _key_refs(targets, name, "its hash bins", succinct, invited(name))
        return report
    for role_name, role in (targets.delegations.roles or {}).items():
        if role.paths != delegated_paths(role_name) or not role.terminating:
            report.problems.append(
                f"targets: delegation {role_name} must be terminating with paths {role_name}/* .. "
                f"{delegated_paths(role_name)[-1]}"
            )
        what = f"delegation {role_name}"
        report.problems += _key_refs(targets, name, what, role, invited(role_name))
    return report


def _key_refs(targets: Targets, name: str, what: str, role: Any, invited: int = 0) -> list[str]:
    keys = targets.delegations.keys if targets.delegations else {}
    problems = [f"{name}: {what} names missing key {k}" for k in role.keyids if k not in keys]
    if role.threshold < 1 or role.threshold > len(role.keyids) + invited:
        problems.append(
            f"{name}: {what} threshold {role.threshold} cannot be met by {len(role.keyids)} keys"
        )
    return problems


def verify_expiry(name: str, md: Metadata[Any], now: datetime) -> list[str]:
    if md.signed.is_expired(now):
        return [f"{name}: expired at {md.signed.expires:%Y-%m-%d %H:%M:%S}Z"]
    return []


def verify_offline(
    view: MetadataView, now: datetime, proven: frozenset[str] = frozenset()
) -> Report:
    """Root chain, root/targets/delegated roles signed by their delegators, and expiry
    (``proven``: roles verified before, byte for byte - only their expiry is checked)."""
    report = verify_root_chain(view)
    root_md = view.require("root")
    root = cast(Root, root_md.signed)
    targets_md = view.get("targets")
    targets = targets_md.signed if targets_md is not None else None
    if targets is not None and not isinstance(targets, Targets):
        raise MetadataError("metadata/targets.json is not targets metadata")
    rmap = view.role_map()
    report.extend(verify_keys(root, targets, _binned(view, rmap)))
    report.problems += verify_expiry("root", root_md, now)
    if targets_md is None or targets is None:
        report.problems.append("targets: metadata/targets.json is missing")
        return report
    for name in proven:
        if (expires := view.expires(name)) <= now:
            report.problems.append(f"{name}: expired at {expires:%Y-%m-%d %H:%M:%S}Z")
    for role in rmap.targets_roles():
        if role in proven:
            continue
        md = view.get(role)
        if md is None or not isinstance(md.signed, Targets):
            report.problems.append(f"{role}: metadata/{role}.json is missing or not targets")
            continue
        delegator = root if role == "targets" else view.targets(rmap.delegator(role))
        report.problems += check_signed(delegator, role, md, rmap.delegator(role))
        report.problems += unknown_signatures(delegator, role, md)
        report.problems += verify_expiry(role, md, now)
        report.extend(_shape_problems(rmap, role, md.signed))
        report.problems += bins_signer_problems(delegator, role, md.signed)
    return report


def _binned(view: MetadataView, rmap: RoleMap) -> dict[str, Targets]:
    """The delegated roles that delegate to hash bins."""
    return {o: view.targets(o) for o, _ in rmap.bins if o != "targets"}


def bins_signer_problems(delegator: Root | Targets, role: str, signed: Targets) -> list[str]:
    """[] unless ``role`` delegates to hash bins whose keys or threshold are not ``role``'s
    own (as its delegator names them): bins share their role's signers."""
    succinct = signed.delegations.succinct_roles if signed.delegations else None
    try:
        own = delegator.get_delegated_role(role)
    except ValueError:
        return []
    if succinct is None or (set(succinct.keyids), succinct.threshold) == (
        set(own.keyids),
        own.threshold,
    ):
        return []
    return [f"{role}: its hash bins must have {role}'s signers and threshold"]


def _shape_problems(rmap: RoleMap, role: str, signed: Targets) -> Report:
    """What ``role`` may delegate (targets: named roles or bins; a named role: bins only),
    whether it may list artifacts itself (not when binned), and its size."""
    report = Report()
    delegations = signed.delegations
    if role != "targets" and delegations is not None:
        if rmap.bin_owner(role) is not None:
            report.problems.append(f"{role}: hash bins cannot delegate further")
        elif delegations.succinct_roles is None:
            report.problems.append(f"{role}: delegated roles cannot delegate further")
    if delegations is not None and (role == "targets" or delegations.succinct_roles):
        report.extend(verify_delegations(signed, role))
    if rmap.bin_count(role) and signed.targets:
        report.problems.append(f"{role}: delegates to hash bins, so it must list no artifacts")
    if len(signed.targets) > MAX_ENTRIES and rmap.bin_owner(role) is None:
        report.warnings.append(
            f"{role}: lists {len(signed.targets)} artifacts (clients such as tuf-js slow down "
            f"past ~{MAX_ENTRIES}): consider `tufrepo delegate EVENT {role} --bins`"
        )
    return report


def verify_online(view: MetadataView, now: datetime) -> Report:
    """Snapshot and timestamp signed by root's online keys and consistent with the roles."""
    report = Report()
    snapshot_md, timestamp_md = view.get("snapshot"), view.get("timestamp")
    if snapshot_md is None or timestamp_md is None:
        report.warnings.append("snapshot/timestamp: not created yet (online-sign creates them)")
        return report
    root = view.root()
    snapshot, timestamp = snapshot_md.signed, timestamp_md.signed
    if not isinstance(snapshot, Snapshot) or not isinstance(timestamp, Timestamp):
        raise MetadataError("snapshot.json/timestamp.json have the wrong type")
    for name, md in (("snapshot", snapshot_md), ("timestamp", timestamp_md)):
        report.problems += check_signed(root, name, md, "root")
        report.problems += verify_expiry(name, md, now)
    if timestamp.snapshot_meta.version != snapshot.version:
        report.problems.append(
            f"timestamp: names snapshot v{timestamp.snapshot_meta.version}, "
            f"snapshot.json is v{snapshot.version}"
        )
    for role in view.role_map().targets_roles():
        meta = snapshot.meta.get(f"{role}.json")
        if (role_md := view.get(role)) is None:
            continue  # reported by verify_offline
        version = role_md.signed.version
        if meta is None or meta.version != version:
            listed = meta.version if meta else "none"
            report.problems.append(f"snapshot: lists {role} v{listed}, {role}.json is v{version}")
    return report


def verify_recorded(view: MetadataView, roles: set[str] | None = None) -> Report:
    """Each file at the version snapshot (timestamp) records has the recorded length and
    hashes: clients check them, so a file that differs blocks every client and publish
    (``roles``: only these, e.g. what a signing event changes)."""
    report = Report()
    snapshot_md, timestamp_md = view.get("snapshot"), view.get("timestamp")
    records: list[tuple[str, dict[str, MetaFile]]] = []
    if isinstance(timestamp_md, Metadata) and isinstance(timestamp_md.signed, Timestamp):
        records.append(("timestamp", {"snapshot.json": timestamp_md.signed.snapshot_meta}))
    if isinstance(snapshot_md, Metadata) and isinstance(snapshot_md.signed, Snapshot):
        records.append(("snapshot", snapshot_md.signed.meta))
    for recorder, meta in records:
        for name, info in meta.items():
            role = name.removesuffix(".json")
            if roles is not None and role not in roles:
                continue
            data = view.raw(name)
            if data is None:
                continue
            try:
                info.verify_length_and_hashes(data)
            except LengthOrHashMismatchError as e:  # parsed only now (a 14 MB role: ~0.5 s)
                md = view.get(role)
                if md is None or md.signed.version != info.version:
                    continue  # another version: verify_online reports it, online-sign refreshes
                report.problems.append(
                    f"{role}: metadata/{name} is not the file {recorder} records for "
                    f"v{info.version} ({e})"
                )
    return report


def version_regressions(previous: MetadataView, view: MetadataView, names: list[str]) -> list[str]:
    """Role files among ``names`` whose content changed since ``previous`` without a higher
    version (a client that has the earlier file would never see the new one)."""
    problems = []
    for name in names:
        old, new = previous.raw(name), view.raw(name)
        role = name.removesuffix(".json")
        if old is None or new is None or old == new:
            continue
        old_md, new_md = previous.get(role), view.require(role)
        if old_md is not None and new_md.signed.version <= old_md.signed.version:
            problems.append(
                f"{role}: metadata/{name} changed since {previous.label} but its version "
                f"{new_md.signed.version} is not higher than {old_md.signed.version}"
            )
    return problems


def verify_artifacts(
    view: MetadataView, scanned: dict[str, dict[str, TargetFile]] | Error
) -> Report:
    """Targets metadata of every role equals the files under targets/ (scanned by role)."""
    report = Report()
    if isinstance(scanned, Error):
        report.problems.append(f"targets: {scanned.diagnostics()}")
        return report
    rmap = view.role_map()
    for role in rmap.targets_roles():
        if view.get(role) is None:
            continue  # reported by verify_offline
        listed = view.targets(role).targets
        report.problems += role_artifact_problems(rmap, role, scanned.get(role, {}), listed)
    return report


def role_artifact_problems(
    rmap: RoleMap, role: str, files: dict[str, TargetFile], listed: dict[str, TargetFile]
) -> list[str]:
    """What differs between the artifacts ``role`` lists and its ``files``: paths it lists
    that another role owns, missing, extra or changed files."""
    listed = dict(listed)
    problems = []
    for path in misplaced(rmap, role, listed):
        problems.append(f"{role}: lists {path}, {_owner_words(rmap, path)}")
        del listed[path]
    return problems + [f"{role}: {m}" for m in mismatches(files, listed)]


def misplaced(rmap: RoleMap, role: str, listed: Iterable[str]) -> list[str]:
    """Paths ``role`` lists that another role (or no role) owns: a client looking for them
    asks that other role, so it would never find them here."""
    out = []
    for path in listed:
        try:
            if rmap.owner(path) != role:
                out.append(path)
        except InputError:
            out.append(path)
    return out


def _owner_words(rmap: RoleMap, path: str) -> str:
    try:
        return f"which belongs to {rmap.owner(path)}"
    except InputError:
        return "which no role owns"


def verify_repository(
    view: MetadataView,
    now: datetime,
    scanned: dict[str, dict[str, TargetFile]] | Error | None,
    history_rewrites: list[str],
    *,
    online: bool = True,
    regressions: list[str] | None = None,
    proven: frozenset[str] = frozenset(),
) -> Report:
    """Everything ``tufrepo verify`` checks, given the scanned artifacts and git history facts
    (``online=False``: all but snapshot/timestamp, what online-sign requires first;
    ``regressions``: from ``version_regressions`` against main's last online-signed state;
    ``scanned`` None: the caller compares the artifacts itself; ``proven``: roles an earlier
    online-sign verified byte for byte, see ``online.proven_roles``).
    A file that is not strictly metadata is a problem naming it."""
    try:
        report = _verify_all(view, now, scanned, online=online, proven=proven)
    except CorruptMetadataError as e:
        report = Report()
        report.problems.append(e.diagnostics())
    report.problems += regressions or []
    if history_rewrites:
        report.problems.append(
            "root: root_history was modified after being written (commits "
            + ", ".join(history_rewrites[:5])
            + ")"
        )
    return report


def verify_metadata(view: MetadataView, now: datetime) -> Report:
    """What ``verify_repository`` checks of the metadata alone (no artifacts, no git
    history): for ``publish``, to name a problem as ``tufrepo verify`` names it."""
    try:
        return _verify_metadata(view, now, online=True)
    except CorruptMetadataError as e:
        return Report(problems=[e.diagnostics()])


def _verify_metadata(
    view: MetadataView, now: datetime, *, online: bool, proven: frozenset[str] = frozenset()
) -> Report:
    report = verify_offline(view, now, proven)
    if report.problems and view.get("targets") is None:
        return report
    if online:
        report.extend(verify_online(view, now))
    # proven roles are byte for byte what snapshot records: only the others are compared
    others = {r for r in view.role_map().targets_roles() if r not in proven} | {"snapshot"}
    report.extend(verify_recorded(view, others if proven else None))
    return report


def _verify_all(
    view: MetadataView,
    now: datetime,
    scanned: dict[str, dict[str, TargetFile]] | Error | None,
    *,
    online: bool,
    proven: frozenset[str],
) -> Report:
    report = _verify_metadata(view, now, online=online, proven=proven)
    if report.problems and view.get("targets") is None:
        return report
    if scanned is not None:
        report.extend(verify_artifacts(view, scanned))
    return report


def signature_problem(key: Any, md: Metadata[Any], payload: bytes | None = None) -> str | None:
    """None when ``md`` carries a valid signature by ``key``; "" when it carries none;
    otherwise why the signature does not verify (e.g. a Sigstore identity mismatch).
    ``payload``: ``md``'s canonical bytes when the caller has them (one encoding per role)."""
    sig = md.signatures.get(key.keyid)
    if sig is None or not sig.signature:
        return ""
    try:
        key.verify_signature(sig, signed_bytes(md) if payload is None else payload)
    except UnverifiedSignatureError as e:
        return str(e) or "the signature does not verify"
    return None
