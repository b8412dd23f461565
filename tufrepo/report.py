"""Rendering of signing-event status: text for people, markdown for PR comments, JSON for CI.

A pull-request comment must fit (GitHub refuses bodies over 65,536 characters): markdown
summarises artifact changes per role and directory, and lists them one by one only in a
collapsed section cut at :data:`MARKDOWN_LIMIT` with a note; JSON always holds everything.
Every format also renders a status that could not be computed (:func:`render_error`) and
a checkout that is not a signing event (:func:`render_not_event`), so CI always has a
report to post.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tufrepo.event import EventStatus, RoleStatus
from tufrepo.targets import ArtifactChange
from tufrepo.text import cap_lines, plural

if TYPE_CHECKING:
    from tufrepo.client import SiteReport

__all__ = [
    "MARKDOWN_LIMIT",
    "DirectorySummary",
    "next_step",
    "render",
    "render_error",
    "render_not_event",
    "render_site_markdown",
    "render_text",
    "summarize_artifacts",
    "to_json",
]

MARKDOWN_LIMIT = 60_000
"""Characters a markdown report may take (GitHub's comment limit is 65,536)."""
INLINE_ARTIFACTS = 20
"""Up to this many artifact changes are listed one by one; more are summarised."""
_KINDS = ("added", "modified", "removed")
_MD_SPECIAL = "\\`*_[]<|&"


def _md(text: str) -> str:
    """``text`` safe inside markdown and HTML (untrusted paths and names)."""
    return "".join(f"&#{ord(c)};" if c in _MD_SPECIAL else c for c in text)


def _code(text: str) -> str:
    """``text`` as inline code (entities are not decoded there), or escaped if it cannot be."""
    return f"`{text}`" if text.isprintable() and "`" not in text else _md(text)


@dataclass(frozen=True)
class DirectorySummary:
    """How many artifacts a role's event adds, modifies and removes in one directory."""

    role: str
    directory: str
    counts: dict[str, int]

    def label(self) -> str:
        return "(top level)" if self.directory == "." else f"{self.directory}/"

    def words(self) -> str:
        return ", ".join(f"{n} {k}" for k in _KINDS if (n := self.counts.get(k, 0)))


def _by_directory(role: str, artifacts: list[ArtifactChange]) -> list[DirectorySummary]:
    counts: dict[str, Counter[str]] = {}
    for a in artifacts:
        counts.setdefault(posixpath.dirname(a.path) or ".", Counter())[a.kind] += 1
    return [DirectorySummary(role, d, dict(c)) for d, c in sorted(counts.items())]


def summarize_artifacts(status: EventStatus) -> list[DirectorySummary]:
    """Artifact changes counted per role and directory, in role order; the hash bins of a
    role count as that role (the directory says where, whatever bin a path hashes to)."""
    groups: dict[str, list[ArtifactChange]] = {}
    for r in status.roles:
        groups.setdefault(r.bin_of or r.role, []).extend(r.artifacts)
    return [s for role, arts in groups.items() for s in _by_directory(role, arts)]


def _artifact_line(change: ArtifactChange, in_bin: bool = False) -> str:
    tf = change.file
    digest = tf.hashes.get("sha256", next(iter(tf.hashes.values()), ""))
    where = f" [{change.role}]" if in_bin else ""
    return f"{change.kind} {change.path}{where} ({plural(tf.length, 'byte')}, sha256 {digest})"


def _signed_line(r: RoleStatus) -> str:
    line = f"signed by {r.signed}/{r.threshold}"
    if r.prev_threshold is not None:
        line += f", previous root {r.prev_signed}/{r.prev_threshold}"
    return line


def _mark(r: RoleStatus) -> tuple[str, str]:
    """(emoji, word) for a role's row: ready, threshold met while signers are missing, or not
    ready."""
    if not r.ready:
        return "❌", "--"
    if r.missing:
        return "☑️", "ok"
    return "✅", "ok"


def _total(artifacts: list[ArtifactChange]) -> str:
    counts = Counter(a.kind for a in artifacts)
    kinds = ", ".join(f"{counts[k]} {k}" for k in _KINDS if counts[k])
    return f"{plural(len(artifacts), 'artifact change')}: {kinds}"


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


def render_text(status: EventStatus, *, details: bool = False, commit: str | None = None) -> str:
    """The report for a terminal; artifact changes summarised per directory when there are
    many, unless ``details``."""
    at = f" at {commit[:10]}" if commit else ""
    lines = [f"Signing event {status.name}{at}: {'READY' if status.ready else 'not ready'}"]
    lines += [line for line in [behind_line(status)] if line]
    for row in rows(status):
        r = row.first
        old, new = row.versions
        lines.append(f"[{_mark(r)[1]}] {row.name} {old} -> {new}, expires {r.expires:%Y-%m-%d}")
        lines.append(f"     {_signed_line(r)}{' each' if len(row.members) > 1 else ''}")
        if r.missing:
            lines.append(f"     not signed yet: {', '.join(r.missing)}")
        if r.invites:
            lines.append(f"     invited: {', '.join(r.invites)}")
        lines += [f"     invalid signature: {i}" for i in r.invalid]
        lines += [f"     {c}" for c in r.changes]
        in_bin = r.bin_of is not None
        if details or len(row.artifacts) <= INLINE_ARTIFACTS:
            lines += [f"     {_artifact_line(a, in_bin)}" for a in row.artifacts]
        else:
            lines.append(f"     {_total(row.artifacts)}")
            lines += [f"       {s.label()}: {s.words()}" for s in _by_directory("", row.artifacts)]
        lines += [f"     ERROR {p}" for m in row.members for p in m.problems]
    lines += _moved_lines(status)
    lines += [f"ERROR {p}" for p in status.problems]
    lines.append(next_step(status))
    return "\n".join(lines)


def _role_table(status: EventStatus) -> list[str]:
    lines = ["| | role | version | signatures | not signed yet | invited |", "|-|-|-|-|-|-|"]
    for row in rows(status):
        r = row.first
        old, new = row.versions
        each = " each" if len(row.members) > 1 else ""
        lines.append(
            f"| {_mark(r)[0]} | {_md(row.name)} | {old} → {new} | {_signed_line(r)}{each} | "
            f"{_md(', '.join(r.missing)) or '-'} | {_md(', '.join(r.invites)) or '-'} |"
        )
    return [*lines, ""]


def _role_details(status: EventStatus, inline: bool, budget: int) -> list[str]:
    lines = []
    table = rows(status)
    for row in table:
        r = row.first
        details = [f"invalid signature: {i}" for i in r.invalid] + r.changes
        if inline:
            details += [_artifact_line(a, r.bin_of is not None) for a in row.artifacts]
        elif row.artifacts:
            details.append(_total(row.artifacts))
        if details:
            lines.append(f"**{_md(row.name)}** (expires {r.expires:%Y-%m-%d}):")
            lines += cap_lines(
                [f"- {_md(d)}" for d in details],
                budget // max(1, len(table)),
                lambda n: f"- … and {n} more (see `tufrepo status --format json`)",
            )
            lines.append("")
    return lines


def _directory_table(status: EventStatus, budget: int) -> list[str]:
    entries = [
        f"| {_md(s.role)} | {_md(s.directory)} | "
        + " | ".join(str(s.counts.get(k, 0)) for k in _KINDS)
        + " |"
        for s in summarize_artifacts(status)
    ]
    head = ["**Artifact changes by directory:**", "", "| role | directory | " + " | ".join(_KINDS)]
    head[-1] += " |"
    head.append("|-|-|-|-|-|")
    more = cap_lines(entries, budget, lambda n: f"| … | {n} more directories | | | |")
    return [*head, *more, ""]


def _artifact_details(status: EventStatus, budget: int) -> list[str]:
    """Every artifact change in a collapsed section, cut to ``budget`` characters."""
    changes = [(a, r.bin_of is not None) for r in status.roles for a in r.artifacts]
    note = (
        "\n*… {n} more not shown: a comment is limited to "
        f"{MARKDOWN_LIMIT:,} characters; `tufrepo status --format json` lists every change.*"
    )
    lines = cap_lines(
        [f"- {_md(_artifact_line(a, in_bin))}" for a, in_bin in changes],
        budget - len(note) - 200,
        lambda n: note.format(n=n),
    )
    return [
        f"<details><summary>All {plural(len(changes), 'artifact change')}</summary>",
        "",
        *lines,
        "",
        "</details>",
        "",
    ]


def render_markdown(
    status: EventStatus, *, commit: str | None = None, limit: int = MARKDOWN_LIMIT
) -> str:
    """The pull-request comment: at most ``limit`` characters, whatever the event's size."""
    title = "ready to merge" if status.ready else "not ready"
    lines = [f"### Signing event {_code(status.name)}: {title}", ""]
    if commit:
        lines += [f"Event commit `{commit}`.", ""]
    behind = behind_line(status)
    if behind:
        lines += [f"> {_md(behind)}", ""]
    if status.roles:
        lines += _role_table(status)
    inline = sum(len(r.artifacts) for r in status.roles) <= INLINE_ARTIFACTS
    lines += _role_details(status, inline, limit // 6)
    if not inline:
        lines += _directory_table(status, limit // 6)
    moved = _moved_lines(status)
    lines += [*moved, ""] if moved else []
    problems = status.problems + [p for r in status.roles for p in r.problems]
    if problems:
        lines.append("**Validation errors:**")
        lines += cap_lines(
            [f"- ❌ {_md(p)}" for p in problems],
            limit // 6,
            lambda n: f"- ❌ … and {n} more (see `tufrepo status --format json`)",
        )
        lines.append("")
    lines += [_md(next_step(status)), ""]
    if not inline:
        used = sum(len(line) + 1 for line in lines)
        lines += _artifact_details(status, limit - used)
    return "\n".join(lines)


def _artifact_json(change: ArtifactChange) -> dict[str, Any]:
    tf = change.file
    return {
        "path": change.path,
        "change": change.kind,
        "length": tf.length,
        "sha256": tf.hashes.get("sha256"),
    }


def _role_json(r: RoleStatus) -> dict[str, Any]:
    return {
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


def to_json(status: EventStatus, *, commit: str | None = None) -> dict[str, Any]:
    return {
        "event": status.name,
        "commit": commit,
        "ready": status.ready,
        "error": None,
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
        "roles": [_role_json(r) for r in status.roles],
        "directories": [
            {"role": s.role, "directory": s.directory, **{k: s.counts.get(k, 0) for k in _KINDS}}
            for s in summarize_artifacts(status)
        ],
        "moved": status.moved,
        "next": next_step(status),
    }


def render(
    status: EventStatus, fmt: str, *, commit: str | None = None, details: bool = False
) -> str:
    if fmt == "markdown":
        return render_markdown(status, commit=commit)
    if fmt == "json":
        return json.dumps(to_json(status, commit=commit), indent=1, sort_keys=True)
    return render_text(status, details=details, commit=commit)


def render_error(name: str, error: str, fmt: str, *, commit: str | None = None) -> str:
    """The report of an event whose status could not be computed (exit 2 follows)."""
    if fmt == "json":
        data: dict[str, Any] = {
            "event": name,
            "commit": commit,
            "ready": False,
            "error": error,
            "behind_main": None,
            "problems": [error],
            "invites": {},
            "roles": [],
            "directories": [],
            "moved": {},
            "next": "Fix the error, then run tufrepo status again.",
        }
        return json.dumps(data, indent=1, sort_keys=True)
    if fmt == "markdown":
        at = f"\n\nEvent commit `{commit}`." if commit else ""
        return (
            f"### Signing event {_code(name)}: cannot be checked{at}\n\n"
            f"- ❌ {_md(error)}\n\nFix the error above and push again.\n"
        )
    return f"Signing event {name}: cannot be checked\nERROR {error}"


def render_not_event(branch: str, open_events: list[str], fmt: str) -> str:
    """What ``status`` says on main (or another branch that is not a signing event)."""
    events = ", ".join(open_events) or "none"
    message = (
        f"{branch} is not a signing event: nothing to sign here. Open signing events: {events}. "
        "Check one out (`git switch sign/<name>`) or run `tufrepo sign sign/<name>`; "
        "`tufrepo verify` checks main."
    )
    if fmt == "json":
        data = {"event": None, "branch": branch, "ready": False, "open_events": open_events,
                "message": message}  # fmt: skip
        return json.dumps(data, indent=1, sort_keys=True)
    if fmt == "markdown":
        return f"### {_code(branch)} is not a signing event\n\n{_md(message)}\n"
    return message


def render_site_markdown(report: SiteReport) -> str:
    """check-site's report for a CI summary page or a failure issue (the fixers mentioned)."""
    ok = not report.problems
    lines = [f"### Published TUF site {_code(report.url)}: {'valid' if ok else 'FAILED'}", ""]
    if report.roles:
        lines += ["| role | version | expires |", "|-|-|-|"]
        lines += [f"| {_md(r.name)} | {r.version} | {r.expires:%Y-%m-%d %H:%M} UTC |"
                  for r in report.roles]  # fmt: skip
        lines.append("")
    if report.problems:
        lines += cap_lines(
            [f"- ❌ {_md(p)}" for p in report.problems],
            MARKDOWN_LIMIT // 2,
            lambda n: f"- ❌ … and {n} more (see `tufrepo check-site --format json`)",
        )
        lines.append("")
    if report.fixers:
        lines += [f"Who can fix it: {', '.join(report.fixers)}", ""]
    return "\n".join(lines)
