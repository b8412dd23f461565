"""Who must sign what, and is the event ready: pure event state over in-memory metadata
(python-tuf objects, no git, a fixed ``now``), table-driven."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    Root,
    SuccinctRoles,
    TargetFile,
    Targets,
)

from tufrepo.event import EventStatus, event_status
from tufrepo.report import render_markdown, render_text
from tufrepo.repository import memory_view, serialize
from tufrepo.roles import (
    EXPIRY_PERIOD,
    KEYOWNER,
    ONLINE_URI,
    EventState,
    delegated_paths,
    with_keyid,
)
from tufrepo.validate import verify_offline

NOW = datetime(2026, 6, 1, tzinfo=UTC)
USERS = ("alice", "bob", "carol", "online")


def _signer(user: str) -> CryptoSigner:
    private = ed25519.Ed25519PrivateKey.generate()
    key = copy.deepcopy(CryptoSigner(private).public_key)
    field_ = ONLINE_URI if user == "online" else KEYOWNER
    key.unrecognized_fields[field_] = "file2:online" if user == "online" else f"@{user}"
    return CryptoSigner(private, with_keyid(key))


SIGNERS = {u: _signer(u) for u in USERS}


def _key(user: str) -> Any:
    return SIGNERS[user].public_key


@dataclass
class State:
    """A repository: root, targets delegating ``rr`` (alice and bob, ``threshold``), rr in
    4 hash bins sharing those keys."""

    mds: dict[str, Metadata[Any]] = field(default_factory=dict)
    state: EventState = field(default_factory=EventState)

    @classmethod
    def base(cls, threshold: int = 1) -> State:
        s = cls()
        root = Root(expires=NOW + timedelta(days=300), consistent_snapshot=True)
        for role in ("root", "targets"):
            root.add_key(_key("alice"), role)
        for role in ("snapshot", "timestamp"):
            root.add_key(_key("online"), role)
            root.roles[role].unrecognized_fields[EXPIRY_PERIOD] = 7
        root.unrecognized_fields[EXPIRY_PERIOD] = 365
        s.mds["root"] = Metadata(root)
        top = Targets(expires=NOW + timedelta(days=300))
        top.unrecognized_fields[EXPIRY_PERIOD] = 365
        rr = DelegatedRole("rr", [], threshold, terminating=True, paths=delegated_paths("rr"))
        top.delegations = Delegations({}, roles={"rr": rr})
        s.mds["targets"] = Metadata(top)
        rr_md = Targets(expires=NOW + timedelta(days=300))
        rr_md.unrecognized_fields[EXPIRY_PERIOD] = 365
        rr_md.delegations = Delegations(
            {}, succinct_roles=SuccinctRoles([], threshold, 2, "rr-bins")
        )
        s.mds["rr"] = Metadata(rr_md)
        for user in ("alice", "bob"):
            top.add_key(_key(user), "rr")
            rr_md.add_key(_key(user))
        for name in rr_md.delegations.succinct_roles.get_roles():
            bin_md = Targets(expires=NOW + timedelta(days=300))
            bin_md.unrecognized_fields[EXPIRY_PERIOD] = 365
            s.mds[name] = Metadata(bin_md)
        for name in s.mds:
            s.sign(name, *(["alice"] if name in ("root", "targets") else ["alice", "bob"]))
        return s

    def sign(self, role: str, *users: str) -> None:
        md = self.mds[role]
        md.signatures.clear()
        for user in users:
            md.sign(SIGNERS[user], append=True)

    def change(self, role: str, edit: Callable[[Any], None] = lambda _: None) -> None:
        """Edit ``role`` the way an event does: version + 1, signatures cleared."""
        md = self.mds[role] = copy.deepcopy(self.mds[role])
        edit(md.signed)
        md.signed.version += 1
        md.signatures.clear()

    def files(self) -> dict[str, bytes]:
        out = {f"{name}.json": serialize(md) for name, md in self.mds.items()}
        for version in range(1, self.mds["root"].signed.version + 1):
            out[f"root_history/{version}.root.json"] = self.history.get(version, out["root.json"])
        state = self.state.to_bytes()
        if state is not None:
            out[".signing-event-state"] = state
        return out

    history: dict[int, bytes] = field(default_factory=dict)


def _add(path: str) -> Callable[[Targets], None]:
    def edit(signed: Targets) -> None:
        signed.targets[path] = TargetFile(3, {"sha256": "ab" * 32}, path)

    return edit


def _path_in(bin_name: str) -> str:
    succinct = SuccinctRoles([], 1, 2, "rr-bins")
    return next(p for i in range(100) if succinct.get_role_for_target(p := f"rr/f{i}") == bin_name)


def _status(base: State, event: State, changed: list[str]) -> EventStatus:
    event.history = {1: base.files()["root.json"]}
    return event_status(
        "sign/test", memory_view(base.files(), "main"), memory_view(event.files()),
        changed_roles=changed, expected_targets={}, now=NOW,
    )  # fmt: skip


@dataclass(frozen=True)
class Case:
    threshold: int
    changes: dict[str, list[str]]  # role changed -> users who sign it
    ready: bool
    missing: dict[str, list[str]] = field(default_factory=dict)
    problem: str = ""
    invite: str = ""


CASES = {
    "bin threshold 1 met": Case(1, {"rr-bins-0": ["alice"]}, ready=True),
    "bin threshold 2 unmet": Case(
        2, {"rr-bins-0": ["alice"]}, ready=False, missing={"rr-bins-0": ["@bob"]}
    ),
    "bin threshold 2 met": Case(2, {"rr-bins-0": ["bob", "alice"]}, ready=True),
    "bins share signers: two bins, one signer": Case(
        1, {"rr-bins-0": ["bob"], "rr-bins-3": ["bob"]}, ready=True
    ),
    "one of two changed bins unsigned": Case(
        2,
        {"rr-bins-0": ["alice", "bob"], "rr-bins-3": ["alice"]},
        ready=False,
        missing={"rr-bins-3": ["@bob"]},
    ),
    "bin signed by a key of another role": Case(
        1, {"rr-bins-1": ["carol"]}, ready=False, problem="rr-bins-1: signature by unknown key"
    ),
    "open invitation": Case(1, {"rr-bins-2": ["alice"]}, ready=False, invite="rr-bins-2"),
    "root needs the previous root's keys": Case(
        1, {"root": ["bob"]}, ready=False, missing={"root": ["@alice"]}
    ),
    "root signed by previous and new keys": Case(1, {"root": ["alice", "bob"]}, ready=True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_event_state(case: Case) -> None:
    base = State.base(case.threshold)
    event = copy.deepcopy(base)
    for role, users in case.changes.items():
        if role == "root":  # bob joins root's keys (alice stays a previous-root signer only)
            event.change(role, lambda r: (r.revoke_key(_key("alice").keyid, "root"),
                                          r.add_key(_key("bob"), "root")))  # fmt: skip
        else:
            event.change(role, _add(_path_in(role)))
        event.sign(role, *users)
    if case.invite:
        event.state.invite("@carol", case.invite)
    status = _status(base, event, list(case.changes))
    assert status.ready is case.ready, (status.problems, [r.problems for r in status.roles])
    for role, missing in case.missing.items():
        found = status.role(role)
        assert found is not None
        assert found.missing == missing
    problems = status.problems + [p for r in status.roles for p in r.problems]
    if case.problem:
        assert any(case.problem in p for p in problems), problems
    else:
        assert not problems
    if case.invite:
        assert status.invites == {"@carol": [case.invite]}
    assert {r.bin_of for r in status.roles if r.role.startswith("rr-bins")} <= {"rr"}


def test_verify_warns_about_a_large_flat_role_not_about_bins() -> None:
    state = State.base()
    many = {f"f{i}": TargetFile(1, {"sha256": "ab" * 32}, f"f{i}") for i in range(1001)}
    state.mds["targets"].signed.targets = many
    state.mds["rr-bins-0"].signed.targets = {f"rr/{p}": tf for p, tf in many.items()}
    for role in ("targets", "rr-bins-0"):
        state.sign(role, "alice")
    report = verify_offline(memory_view(state.files()), NOW)
    assert report.problems == []
    assert report.warnings == [
        (
            "targets: lists 1001 artifacts (clients such as tuf-js slow down past ~1000): "
            "consider `tufrepo delegate EVENT targets --bins`"
        )
    ]


def test_invited_signers_count_towards_a_threshold() -> None:
    """An invited signer has no key yet: the delegation is not short of keys, only waiting."""
    base = State.base()

    def two_of_alice_and_invited_bob(signed: Targets) -> None:
        signed.revoke_key(_key("bob").keyid, "rr")
        signed.get_delegated_role("rr").threshold = 2

    event = copy.deepcopy(base)
    event.change("targets", two_of_alice_and_invited_bob)
    event.sign("targets", "alice")
    event.state.invite("@bob", "rr")
    status = _status(base, event, ["targets"])
    assert [r.problems for r in status.roles] == [[]]
    assert status.invites == {"@bob": ["rr"]}
    assert status.ready is False


def test_bins_must_share_their_roles_signers() -> None:
    """rr's signers (alice, bob) approve a change that gives its bins another key: refused
    by the event state and by verify."""
    base = State.base()
    event = copy.deepcopy(base)
    event.change("rr", lambda signed: signed.add_key(_key("carol")))
    event.sign("rr", "alice", "bob")
    status = _status(base, event, ["rr"])
    assert status.roles[0].problems == ["rr: its hash bins must have rr's signers and threshold"]
    assert not status.ready
    report = verify_offline(memory_view(event.files()), NOW)
    assert report.problems == ["rr: its hash bins must have rr's signers and threshold"]


def test_reports_fold_bins_in_the_same_state() -> None:
    base = State.base(threshold=2)
    event = copy.deepcopy(base)
    for name in ("rr-bins-0", "rr-bins-2", "rr-bins-3"):
        event.change(name, _add(_path_in(name)))
        event.sign(name, *(["alice", "bob"] if name == "rr-bins-2" else ["alice"]))
    status = _status(base, event, ["rr-bins-0", "rr-bins-2", "rr-bins-3"])
    text = render_text(status).splitlines()
    assert "[--] 2 hash bins of rr (rr-bins-0 .. rr-bins-3) v1 -> v2, " in text[1]
    assert text[2:4] == ["     signed by 1/2 each", "     not signed yet: @bob"]
    assert sum("added rr/f" in line for line in text) == 3  # every change, naming its bin
    assert f"added {_path_in('rr-bins-3')} [rr-bins-3]" in "\n".join(text)
    assert any(line.startswith("[ok] rr-bins-2 v1 -> v2") for line in text)
    table = [line for line in render_markdown(status).splitlines() if line.startswith("| ")]
    assert len(table) == 3  # header, the folded bins, rr-bins-2
