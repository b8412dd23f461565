"""The ``index.html`` of a published site: health, roles, who signed, expiry, artifacts.

``render_index(page, now, source)`` is pure rendering of a ``SitePage``: each role's facts
(recorded in the site's manifest, so an update reads only the roles it changed) and, up to
``ARTIFACT_ROWS`` artifacts, every artifact; past that, one row per role or group of hash
bins. The page states facts fixed at publish
time (versions, who signed each published role, root's sha256 to pin) and lets the reader's
browser compute what depends on the clock: a small script turns each expiry into "expires in
N days" (or "EXPIRED") and colours it, and recomputes the health line, so a page that was not
refreshed shows that it is stale. Without JavaScript the publish-time states remain. Keys are
described by ``tufrepo.validate.describe_key``, as ``status`` and ``sign`` describe them.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from tufrepo import __version__
from tufrepo.errors import Error, MetadataError
from tufrepo.roles import delegation_in, in_signing_period, periods
from tufrepo.site_manifest import RoleFacts
from tufrepo.text import plural
from tufrepo.validate import describe_key, signature_problem

__all__ = [
    "ARTIFACT_ROWS",
    "PageArtifact",
    "SitePage",
    "SiteSource",
    "lists_artifacts",
    "render_index",
    "role_facts",
    "role_periods",
    "roots_of",
    "source_of",
]

_ORDER = ("root", "targets", "snapshot", "timestamp")


@dataclass(frozen=True)
class SiteSource:
    """Where a site comes from: the repository's name and the commit published."""

    name: str
    commit: str | None


def source_of(checkout: Path) -> SiteSource:
    """The name (from the remote's URL path, never its credentials; else the directory) and
    the checked-out commit of ``checkout``."""
    from tufrepo.git import GitRepo

    try:
        repo = GitRepo(checkout)
        url, commit = repo.remote_url(), repo.head()
    except Error:
        return SiteSource(checkout.resolve().name, None)
    if url is None:
        return SiteSource(checkout.resolve().name, commit)
    path = urlparse(url).path if "://" in url else url.rpartition(":")[2]
    parts = [p for p in path.removesuffix("/").removesuffix(".git").split("/") if p]
    keep = 2 if "://" in url or ("@" in url and ":" in url) else 1
    return SiteSource("/".join(parts[-keep:]) or checkout.resolve().name, commit)


def role_periods(name: str, roles: dict[str, Any]) -> tuple[int | None, int | None]:
    """(expiry period, signing period) in days, or Nones when the role has no periods
    (a repository not made by tuf-on-ci or tufrepo)."""
    md = roles.get(name)
    try:
        return periods(name, roles["root"].signed, md.signed if md else None)
    except MetadataError:
        return None, None


def _status(expires: datetime, signing: int | None, now: datetime) -> tuple[str, str]:
    if expires <= now:
        return "expired", "EXPIRED"
    left = expires - now
    days = left.days
    span = plural(days, "day") if days else plural(left.seconds // 3600, "hour")
    if signing is not None and in_signing_period(expires, signing, now):
        return "warn", f"expires in {span}: inside its signing period, re-sign soon"
    return "ok", f"expires in {span}"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: .35em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.ok { background: #d8f0d8; }
.warn { background: #fff3c4; }
.expired { background: #f8c8c8; }
#health { padding: .6em 1em; font-weight: bold; border-radius: .3em; }
code { font-size: .9em; word-break: break-all; }
"""

# Recomputes expiry states with the reader's clock (data-expires: ISO 8601 UTC).
_SCRIPT = """
(function () {
  var DAY = 86400000, now = Date.now(), expired = [], warn = [];
  function span(ms) {
    var d = Math.floor(ms / DAY), h = Math.floor(ms / 3600000);
    if (d >= 1) return d + (d === 1 ? " day" : " days");
    if (h >= 1) return h + (h === 1 ? " hour" : " hours");
    var m = Math.max(1, Math.floor(ms / 60000));
    return m + (m === 1 ? " minute" : " minutes");
  }
  document.querySelectorAll("tr[data-expires]").forEach(function (tr) {
    var left = Date.parse(tr.dataset.expires) - now, cell = tr.querySelector("td.expiry");
    var signing = tr.dataset.signingDays, state = "ok", text = "expires in " + span(left);
    if (left <= 0) {
      state = "expired"; text = "EXPIRED " + span(-left) + " ago"; expired.push(tr.dataset.role);
    } else if (signing && left <= Number(signing) * DAY) {
      state = "warn"; text += ": inside its signing period, re-sign soon";
      warn.push(tr.dataset.role);
    }
    cell.className = "expiry " + state;
    cell.querySelector(".left").textContent = text;
  });
  var health = document.getElementById("health");
  if (expired.length) {
    health.className = "expired";
    health.textContent = "EXPIRED: " + expired.join(", ") +
      ". This site is stale: TUF clients refuse it until it is signed and published again.";
  } else if (warn.length) {
    health.className = "warn";
    health.textContent = "Valid, but inside the signing period: " + warn.join(", ") +
      " (re-signing is due).";
  } else {
    health.className = "ok";
    health.textContent = "Healthy: every role is valid and outside its signing period.";
  }
  health.textContent += " (checked in your browser at " + new Date(now).toISOString() + ")";
})();
"""


def _role_file(name: str, version: int) -> str:
    if name == "timestamp":
        return "metadata/timestamp.json"
    return f"metadata/{version}.{quote(name, safe='')}.json"


def role_facts(
    name: str,
    roles: dict[str, Any],
    targets: int = 0,
    files: int = 0,
    *,
    verified: bool = False,
    payload: Callable[[], bytes] | None = None,
) -> RoleFacts:
    """The facts ``index.html`` shows of role ``name`` among ``roles`` (its delegator's
    metadata among them): keys, threshold, who signed, expiry, signing period.
    ``verified``: a client accepted the role, so its threshold of signatures is valid.
    ``payload``: the role's canonical bytes, when its metadata in ``roles`` lacks its
    entries (called once, only when a signature must be checked)."""
    md = roles[name]
    keys, threshold = delegation_in(name, roles)
    _, signing = role_periods(name, roles)
    if verified and threshold == len(keys):  # every key's signature counted: no need to check
        signed = tuple(describe_key(k) for k in keys)
    else:
        data = payload() if payload is not None and keys else None
        signed = tuple(describe_key(k) for k in keys if signature_problem(k, md, data) is None)
    return RoleFacts(
        version=md.signed.version,
        expires=md.signed.expires,
        threshold=threshold,
        keys=tuple(describe_key(k) for k in keys),
        signed=signed,
        signing_days=signing,
        targets=targets,
        files=files,
    )


@dataclass(frozen=True)
class PageArtifact:
    """One row of the artifact list (``href`` None: hosted elsewhere)."""

    path: str
    role: str
    length: int
    sha256: str
    href: str | None


@dataclass(frozen=True)
class SitePage:
    """What ``index.html`` shows: every role's facts, the hash bins by binned role, the
    roots to pin and, for a small repository, every artifact (None: one row per role)."""

    roles: dict[str, RoleFacts]
    bins: dict[str, list[str]]
    roots: list[tuple[str, str]]
    timestamp_version: int
    artifacts: list[PageArtifact] | None


ARTIFACT_ROWS = 1000
"""Up to this many artifacts, index.html lists every artifact and every role; past it, one
row per role or group of hash bins, and the number of artifacts each holds (a page of
100,000 rows is megabytes that nobody reads, and would cost every publish the reading of
every role)."""


def lists_artifacts(count: int) -> bool:
    """Whether a page for ``count`` artifacts lists each one (see ARTIFACT_ROWS)."""
    return count <= ARTIFACT_ROWS


def _cells(facts: list[RoleFacts]) -> tuple[str, str, str, str]:
    """(version, threshold, signed by, signers) cells of one role or a group of bins."""
    esc = html.escape
    first = facts[0]
    if len(facts) == 1:
        return (
            str(first.version),
            f"{first.threshold} of {len(first.keys)}",
            "<br>".join(esc(k) for k in first.signed) or "nobody",
            "<br>".join(esc(k) for k in first.keys) or "—",
        )
    versions = sorted({f.version for f in facts})
    version = str(versions[0]) if len(versions) == 1 else f"{versions[0]} to {versions[-1]}"
    thresholds = sorted({f"{f.threshold} of {len(f.keys)}" for f in facts})
    signers = sorted({k for f in facts for k in f.keys})
    signed = []
    for key in sorted({k for f in facts for k in f.signed}):
        count = sum(key in f.signed for f in facts)
        signed.append(esc(key) if count == len(facts) else f"{esc(key)} ({count} of {len(facts)})")
    unsigned = sum(not f.signed for f in facts)
    if unsigned:
        signed.append(f"nobody: {unsigned} of {len(facts)}")
    return (version, ", ".join(thresholds), "<br>".join(signed),
            "<br>".join(esc(k) for k in signers) or "—")  # fmt: skip


def _role_row(
    label: str, link: str | None, facts: list[RoleFacts], now: datetime
) -> tuple[str, str]:
    """The row of one role (or of a group of hash bins: the earliest expiry) and its
    publish-time state."""
    esc = html.escape
    soonest = min(facts, key=lambda f: f.expires)
    expires, signing = soonest.expires, soonest.signing_days
    state, note = _status(expires, signing, now)
    version, threshold, signed, keys = _cells(facts)
    name = f'<a href="{esc(link)}">{esc(label)}</a>' if link else esc(label)
    if len(facts) > 1:
        note = f"the first of {len(facts)} to expire: {note}"
    cells = [
        name, version, threshold, signed, keys,
        (
            f'<span class="date">{expires:%Y-%m-%d %H:%M} UTC</span><br>'
            f'<small class="left">{esc(note)}</small>'
        ),
        "—" if signing is None else plural(signing, "day"),
    ]  # fmt: skip
    tds = "".join(
        f'<td class="expiry {state}">{c}</td>' if i == 5 else f"<td>{c}</td>"
        for i, c in enumerate(cells)
    )
    period = "" if signing is None else f' data-signing-days="{signing}"'
    row = (
        f'<tr data-role="{esc(label)}" data-expires="{expires:%Y-%m-%dT%H:%M:%SZ}"{period}>'
        f"{tds}</tr>"
    )
    return row, state


def _artifact_rows(artifacts: list[PageArtifact]) -> list[str]:
    esc = html.escape
    rows = []
    for art in artifacts:
        if art.href is None:
            where = "hosted elsewhere (not copied)"
        else:
            where = f'<a href="{esc(quote(art.href))}">download</a>'
        cells = [f"<code>{esc(art.path)}</code>", esc(art.role), str(art.length),
                 f"<code>{esc(art.sha256)}</code>", where]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return rows


def _count_rows(page: SitePage, order: list[str]) -> list[str]:
    """Per role (or group of bins): how many artifacts, and how many are hosted elsewhere."""
    esc = html.escape
    rows = []
    for name in order:
        group = [page.roles[b] for b in page.bins.get(name, [])] or [page.roles[name]]
        listed = sum(f.targets for f in group)
        label = f"{name}: {plural(len(group), 'hash bin')}" if name in page.bins else name
        rows.append(f"<tr><td>{esc(label)}</td><td>{listed:,}</td></tr>")
    return rows


def _health(states: dict[str, str]) -> tuple[str, str]:
    expired = [r for r, s in states.items() if s == "expired"]
    warn = [r for r, s in states.items() if s == "warn"]
    if expired:
        return "expired", f"EXPIRED at publish time: {', '.join(expired)}."
    if warn:
        return "warn", f"Valid, but inside the signing period: {', '.join(warn)}."
    return "ok", "Healthy at publish time: every role is valid."


def _roots(page: SitePage) -> list[str]:
    esc = html.escape
    return [f'<li><a href="{esc(p)}">{esc(p)}</a> sha256 <code>{sha}</code></li>'
            for p, sha in page.roots]  # fmt: skip


def roots_of(metadata: dict[str, bytes]) -> list[tuple[str, str]]:
    """(site path, sha256) of every root among the site's ``metadata`` files, oldest first."""
    roots = sorted(
        (int(p.split("/")[1].split(".")[0]), p)
        for p in metadata
        if p.startswith("metadata/") and p.endswith(".root.json")
    )
    return [(p, hashlib.sha256(metadata[p]).hexdigest()) for _, p in roots]


def _order(page: SitePage) -> list[str]:
    """Roles as the page lists them (a binned role stands for its bins)."""
    binned = {b for bins in page.bins.values() for b in bins}
    middle = sorted(set(page.roles) - set(_ORDER) - binned)
    return ["root", "targets", *middle, "snapshot", "timestamp"]


def render_index(page: SitePage, now: datetime, source: SiteSource | None = None) -> str:
    """The page for ``page`` published at ``now`` from ``source``."""
    esc = html.escape
    rows, states = [], {}
    for name in _order(page):
        own = page.roles[name]
        row, states[name] = _role_row(name, _role_file(name, own.version), [own], now)
        rows.append(row)
        if name in page.bins:
            label = f"{name}: {plural(len(page.bins[name]), 'hash bin')}"
            if page.artifacts is not None:  # small: every bin in its own row
                for b in page.bins[name]:
                    row, states[b] = _role_row(b, _role_file(b, page.roles[b].version),
                                               [page.roles[b]], now)  # fmt: skip
                    rows.append(row)
            elif page.bins[name]:
                facts = [page.roles[b] for b in page.bins[name]]
                row, states[label] = _role_row(label, None, facts, now)
                rows.append(row)
    health_class, health = _health(states)
    name = esc(source.name) if source else "TUF repository"
    commit = (
        f"source commit <code>{esc(source.commit)}</code>, " if source and source.commit else ""
    )
    root_version = page.roles["root"].version
    if page.artifacts is not None:
        listed = "\n".join(_artifact_rows(page.artifacts)) or '<tr><td colspan="5">none</td></tr>'
        artifacts = f"""<table><tr><th>path</th><th>role</th><th>bytes</th><th>sha256</th>
<th></th></tr>
{listed}
</table>"""
    else:
        total = sum(f.targets for f in page.roles.values())
        holders = [n for n in _order(page) if n in page.bins or page.roles[n].targets]
        artifacts = f"""<p>{total:,} artifacts: too many to list here (more than
{ARTIFACT_ROWS:,}); each role's metadata lists its own.</p>
<table><tr><th>role</th><th>artifacts</th></tr>
{chr(10).join(_count_rows(page, holders))}
</table>"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{name}: TUF repository</title><style>{_STYLE}</style></head>
<body>
<h1>{name}</h1>
<p id="health" class="{health_class}">{esc(health)}</p>
<p>A <a href="https://theupdateframework.io">TUF</a> repository published
{esc(now.strftime("%Y-%m-%d %H:%M UTC"))} ({commit}timestamp version {page.timestamp_version},
tufrepo {esc(__version__)}).</p>
<h2>Roles</h2>
<table><tr><th>role</th><th>version</th><th>threshold</th><th>signed by</th><th>signers</th>
<th>expires</th><th>signing period</th></tr>
{chr(10).join(rows)}
</table>
<h2>Trust</h2>
<p>Clients start from a root they trust and fetch
<a href="metadata/timestamp.json">metadata/timestamp.json</a>. Pin the current root
(version {root_version}) by its sha256, or start from version 1 and let the client walk the
chain:</p>
<ul>
{chr(10).join(_roots(page))}
</ul>
<h2>Artifacts</h2>
{artifacts}
<script>{_SCRIPT}</script>
</body></html>
"""
