"""Rendering of signing-event status: text for people, markdown for PR comments, JSON for CI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tufrepo.event import EventStatus, RoleStatus
from tufrepo.targets import ArtifactChange


def _artifact_line(change: ArtifactChange, in_bin: bool = False) -> str:
    tf = change.file
    digest = tf.hashes.get("sha256", next(iter(tf.hashes.values()), ""))
    where = f" [{change.role}]" if in_bin else ""
    return f"{change.kind} {change.path}{where} ({tf.length} bytes, sha256 {digest})"


def _signed_line(r: RoleStatus) -> str:
    line = f"signed by {r.signed}/{r.threshold}"
    if r.prev_threshold is not None:
        line += f", previous root {r.prev_signed}/{r.prev_threshold}"
    return line


@dataclass(frozen=True)
class Row:
    """One line of a report: a role, or hash bins of one role in the same state."""

    name: str
    first: RoleStatus
    members: tuple[RoleStatus, ...]

    @property
    def versions(self) -> tuple[str, str]:
        """("v1" or "new", "v2"): ranges when the members' versions differ."""
        olds = sorted({m.old_version or 0 for m in self.members})
        news = sorted({m.version for m in self.members})
        old = (
            "new" if olds == [0] else "-".join(f"v{v}" for v in dict.fromkeys([olds[0], olds[-1]]))
        )
        return old, "-".join(f"v{v}" for v in dict.fromkeys([news[0], news[-1]]))

    @property
    def artifacts(self) -> list[ArtifactChange]:
        return sorted((a for r in self.members for a in r.artifacts), key=lambda a: a.path)


def _same_state(r: RoleStatus) -> tuple[object, ...]:
    return (r.bin_of, r.ready, r.old_version is None, r.signed, r.threshold, tuple(r.missing),
            tuple(r.invites), tuple(r.invalid), tuple(r.changes))  # fmt: skip


def rows(status: EventStatus) -> list[Row]:
    """Roles in report order, hash bins of one role in the same state folded into one row
    (hundreds of bins stay readable; their artifact changes are kept, each naming its bin)."""
    groups: dict[tuple[object, ...], list[RoleStatus]] = {}
    for r in status.roles:
        key = ("role", r.role) if r.bin_of is None or r.problems else _same_state(r)
        groups.setdefault(key, []).append(r)
    return [_row(members) for members in groups.values()]


def _row(members: list[RoleStatus]) -> Row:
    first = members[0]
    if len(members) == 1:
        return Row(first.role, first, (first,))
    span = f"{members[0].role} .. {members[-1].role}"
    return Row(f"{len(members)} hash bins of {first.bin_of} ({span})", first, tuple(members))


def _moved_lines(status: EventStatus) -> list[str]:
    return [
        f"{n} artifacts of {g} moved to their new hash bins" for g, n in status.moved.items() if n
    ]


def behind_line(status: EventStatus) -> str | None:
    """Whether the event is behind main and whether that matters, in one sentence."""
    b = status.behind
    if b is None:
        return None
    what = f"main has {b.commits} commit{'s' * (b.commits != 1)} this event does not"
    if b.main_changed:
        what += f" (changing {', '.join(b.main_changed)})"
    if b.outside:
        return (
            f"Behind main: {what}. Main also changed {', '.join(b.outside)}, which this event"
            " changes: merge main into the event with git."
        )
    if b.conflicts:
        return (
            f"Behind main: {what}. Main also changed {', '.join(b.conflicts)}, which this"
            f" event changes: bring it up to date with `{b.command}`."
        )
    return (
        f"Behind main: {what}. That does not matter: this event changes none of it, and it"
        " is judged as merged with main."
    )


def next_step(status: EventStatus) -> str:
    """The command to run next, for the reader of a report."""
    if status.behind is not None and status.behind.outside:
        return "Merge main into the event with git, then run tufrepo status again."
    if status.behind is not None and status.behind.conflicts:
        return f"Bring the event up to date with main: {status.behind.command}"
    if status.ready:
        return "The event is ready: merge it to main."
    if any(status.invites.values()):
        users = ", ".join(sorted(status.invites))
        return f"Invited signers ({users}) accept with: tufrepo sign {status.name}"
    missing = sorted({m for r in status.roles for m in r.missing if m.startswith("@")})
    if missing:
        return f"{', '.join(missing)}: sign with `tufrepo sign {status.name}`"
    return "Fix the problems above, then sign again."


def render_text(status: EventStatus) -> str:
    lines = [f"Signing event {status.name}: {'READY' if status.ready else 'not ready'}"]
    lines += [line for line in [behind_line(status)] if line]
    for row in rows(status):
        r = row.first
        old, new = row.versions
        mark = "ok" if r.ready else "--"
        lines.append(f"[{mark}] {row.name} {old} -> {new}, expires {r.expires:%Y-%m-%d}")
        lines.append(f"     {_signed_line(r)}{' each' if len(row.members) > 1 else ''}")
        if r.missing:
            lines.append(f"     missing: {', '.join(r.missing)}")
        if r.invites:
            lines.append(f"     invited: {', '.join(r.invites)}")
        lines += [f"     invalid signature: {i}" for i in r.invalid]
        lines += [f"     {c}" for c in r.changes]
        lines += [f"     {_artifact_line(a, r.bin_of is not None)}" for a in row.artifacts]
        lines += [f"     ERROR {p}" for m in row.members for p in m.problems]
    lines += _moved_lines(status)
    lines += [f"ERROR {p}" for p in status.problems]
    lines.append(next_step(status))
    return "\n".join(lines)


def render_markdown(status: EventStatus) -> str:
    title = "ready to merge" if status.ready else "not ready"
    lines = [f"### Signing event `{status.name}`: {title}", ""]
    behind = behind_line(status)
    if behind:
        lines += [f"> {behind}", ""]
    if status.roles:
        lines += ["| | role | version | signatures | missing | invited |", "|-|-|-|-|-|-|"]
        for row in rows(status):
            r = row.first
            old, new = row.versions
            lines.append(
                f"| {'✅' if r.ready else '❌'} | {row.name} | {old} → {new} | "
                f"{_signed_line(r)} | {', '.join(r.missing) or '-'} | "
                f"{', '.join(r.invites) or '-'} |"
            )
        lines.append("")
    for row in rows(status):
        r = row.first
        details = [f"invalid signature: {i}" for i in r.invalid]
        details += r.changes + [_artifact_line(a, r.bin_of is not None) for a in row.artifacts]
        if details:
            lines.append(f"**{row.name}** (expires {r.expires:%Y-%m-%d}):")
            lines += [f"- {d}" for d in details]
            lines.append("")
    lines += [f"{m}" for m in _moved_lines(status)] + ([""] if _moved_lines(status) else [])
    problems = status.problems + [p for r in status.roles for p in r.problems]
    if problems:
        lines.append("**Validation errors:**")
        lines += [f"- ❌ {p}" for p in problems]
        lines.append("")
    lines.append(next_step(status))
    return "\n".join(lines) + "\n"


def _artifact_json(change: ArtifactChange) -> dict[str, Any]:
    tf = change.file
    return {
        "path": change.path,
        "change": change.kind,
        "length": tf.length,
        "sha256": tf.hashes.get("sha256"),
    }


def to_json(status: EventStatus) -> dict[str, Any]:
    return {
        "event": status.name,
        "ready": status.ready,
        "problems": status.problems,
        "invites": status.invites,
        "behind_main": None
        if status.behind is None
        else {
            "commits": status.behind.commits,
            "main_changed": status.behind.main_changed,
            "conflicts": status.behind.conflicts,
            "outside": status.behind.outside,
            "command": status.behind.command,
            "summary": behind_line(status),
        },
        "roles": [
            {
                "role": r.role,
                "ready": r.ready,
                "old_version": r.old_version,
                "version": r.version,
                "expires": r.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "threshold": r.threshold,
                "signed": [s.name for s in r.signers if s.signed],
                "missing": r.missing,
                "invalid_signatures": r.invalid,
                "previous_root": None
                if r.prev_threshold is None
                else {"threshold": r.prev_threshold, "signed": r.prev_signed},
                "invites": r.invites,
                "changes": r.changes,
                "artifacts": [_artifact_json(a) for a in r.artifacts],
                "problems": r.problems,
                "bin_of": r.bin_of,
            }
            for r in status.roles
        ],
        "moved": status.moved,
        "next": next_step(status),
    }


def render(status: EventStatus, fmt: str) -> str:
    if fmt == "markdown":
        return render_markdown(status)
    if fmt == "json":
        return json.dumps(to_json(status), indent=1, sort_keys=True)
    return render_text(status)
