"""Rendering of signing-event status: text for people, markdown for PR comments, JSON for CI."""

from __future__ import annotations

import json
from typing import Any

from tufrepo.event import EventStatus, RoleStatus
from tufrepo.targets import ArtifactChange


def _artifact_line(change: ArtifactChange) -> str:
    tf = change.file
    digest = tf.hashes.get("sha256", next(iter(tf.hashes.values()), ""))
    return f"{change.kind} {change.path} ({tf.length} bytes, sha256 {digest})"


def _signed_line(r: RoleStatus) -> str:
    line = f"signed by {r.signed}/{r.threshold}"
    if r.prev_threshold is not None:
        line += f", previous root {r.prev_signed}/{r.prev_threshold}"
    return line


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
    for r in status.roles:
        old = f"v{r.old_version}" if r.old_version else "new"
        mark = "ok" if r.ready else "--"
        lines.append(f"[{mark}] {r.role} {old} -> v{r.version}, expires {r.expires:%Y-%m-%d}")
        lines.append(f"     {_signed_line(r)}")
        if r.missing:
            lines.append(f"     missing: {', '.join(r.missing)}")
        if r.invites:
            lines.append(f"     invited: {', '.join(r.invites)}")
        lines += [f"     invalid signature: {i}" for i in r.invalid]
        lines += [f"     {c}" for c in r.changes]
        lines += [f"     {_artifact_line(a)}" for a in r.artifacts]
        lines += [f"     ERROR {p}" for p in r.problems]
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
        for r in status.roles:
            old = f"v{r.old_version}" if r.old_version else "new"
            lines.append(
                f"| {'✅' if r.ready else '❌'} | {r.role} | {old} → v{r.version} | "
                f"{_signed_line(r)} | {', '.join(r.missing) or '-'} | "
                f"{', '.join(r.invites) or '-'} |"
            )
        lines.append("")
    for r in status.roles:
        details = [f"invalid signature: {i}" for i in r.invalid]
        details += r.changes + [_artifact_line(a) for a in r.artifacts]
        if details:
            lines.append(f"**{r.role}** (expires {r.expires:%Y-%m-%d}):")
            lines += [f"- {d}" for d in details]
            lines.append("")
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
            }
            for r in status.roles
        ],
        "next": next_step(status),
    }


def render(status: EventStatus, fmt: str) -> str:
    if fmt == "markdown":
        return render_markdown(status)
    if fmt == "json":
        return json.dumps(to_json(status), indent=1, sort_keys=True)
    return render_text(status)
