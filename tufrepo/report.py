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


def summarize_artifacts(status: EventStatus) -> list[DirectorySummary]:
    """Artifact changes counted per role (or hash bin) and directory, in role order."""
    out = []
    for r in status.roles:
        counts: dict[str, Counter[str]] = {}
        for a in r.artifacts:
            directory = posixpath.dirname(a.path) or "."
            counts.setdefault(directory, Counter())[a.kind] += 1
        out += [DirectorySummary(r.role, d, dict(c)) for d, c in sorted(counts.items())]
    return out


def _artifact_line(change: ArtifactChange) -> str:
    tf = change.file
    digest = tf.hashes.get("sha256", next(iter(tf.hashes.values()), ""))
    return f"{change.kind} {change.path} ({plural(tf.length, 'byte')}, sha256 {digest})"


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


def _total(r: RoleStatus) -> str:
    counts = Counter(a.kind for a in r.artifacts)
    kinds = ", ".join(f"{counts[k]} {k}" for k in _KINDS if counts[k])
    return f"{plural(len(r.artifacts), 'artifact change')}: {kinds}"


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
    summaries = summarize_artifacts(status)
    lines += [line for line in [behind_line(status)] if line]
    for r in status.roles:
        old = f"v{r.old_version}" if r.old_version else "new"
        lines.append(
            f"[{_mark(r)[1]}] {r.role} {old} -> v{r.version}, expires {r.expires:%Y-%m-%d}"
        )
        lines.append(f"     {_signed_line(r)}")
        if r.missing:
            lines.append(f"     not signed yet: {', '.join(r.missing)}")
        if r.invites:
            lines.append(f"     invited: {', '.join(r.invites)}")
        lines += [f"     invalid signature: {i}" for i in r.invalid]
        lines += [f"     {c}" for c in r.changes]
        if details or len(r.artifacts) <= INLINE_ARTIFACTS:
            lines += [f"     {_artifact_line(a)}" for a in r.artifacts]
        else:
            lines.append(f"     {_total(r)}")
            lines += [f"       {s.label()}: {s.words()}" for s in summaries if s.role == r.role]
        lines += [f"     ERROR {p}" for p in r.problems]
    lines += [f"ERROR {p}" for p in status.problems]
    lines.append(next_step(status))
    return "\n".join(lines)


def _role_table(status: EventStatus) -> list[str]:
    lines = ["| | role | version | signatures | not signed yet | invited |", "|-|-|-|-|-|-|"]
    for r in status.roles:
        old = f"v{r.old_version}" if r.old_version else "new"
        lines.append(
            f"| {_mark(r)[0]} | {_md(r.role)} | {old} → v{r.version} | {_signed_line(r)} | "
            f"{_md(', '.join(r.missing)) or '-'} | {_md(', '.join(r.invites)) or '-'} |"
        )
    return [*lines, ""]


def _role_details(status: EventStatus, inline: bool, budget: int) -> list[str]:
    lines = []
    for r in status.roles:
        details = [f"invalid signature: {i}" for i in r.invalid] + r.changes
        if inline:
            details += [_artifact_line(a) for a in r.artifacts]
        elif r.artifacts:
            details.append(_total(r))
        if details:
            lines.append(f"**{_md(r.role)}** (expires {r.expires:%Y-%m-%d}):")
            lines += cap_lines(
                [f"- {_md(d)}" for d in details],
                budget // max(1, len(status.roles)),
                lambda n: f"- … and {n} more (see `tufrepo status --format json`)",
            )
            lines.append("")
    return lines


def _directory_table(status: EventStatus, budget: int) -> list[str]:
    rows = [
        f"| {_md(s.role)} | {_md(s.directory)} | "
        + " | ".join(str(s.counts.get(k, 0)) for k in _KINDS)
        + " |"
        for s in summarize_artifacts(status)
    ]
    head = ["**Artifact changes by directory:**", "", "| role | directory | " + " | ".join(_KINDS)]
    head[-1] += " |"
    head.append("|-|-|-|-|-|")
    more = cap_lines(rows, budget, lambda n: f"| … | {n} more directories | | | |")
    return [*head, *more, ""]


def _artifact_details(status: EventStatus, budget: int) -> list[str]:
    """Every artifact change in a collapsed section, cut to ``budget`` characters."""
    changes = [a for r in status.roles for a in r.artifacts]
    note = (
        "\n*… {n} more not shown: a comment is limited to "
        f"{MARKDOWN_LIMIT:,} characters; `tufrepo status --format json` lists every change.*"
    )
    lines = cap_lines(
        [f"- {_md(_artifact_line(a))}" for a in changes],
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
