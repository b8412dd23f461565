"""The ``index.html`` of a published site: health, roles, who signed, expiry, artifacts.

``render_index(plan, now, source)`` is pure rendering. The page states facts fixed at publish
time (versions, who signed each published role, root's sha256 to pin) and lets the reader's
browser compute what depends on the clock: a small script turns each expiry into "expires in
N days" (or "EXPIRED") and colours it, and recomputes the health line, so a page that was not
refreshed shows that it is stale. Without JavaScript the publish-time states remain. Keys are
described by ``tufrepo.validate.describe_key``, as ``status`` and ``sign`` describe them.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlparse

from tufrepo import __version__
from tufrepo.errors import Error, MetadataError
from tufrepo.roles import delegation_in, in_signing_period, periods
from tufrepo.text import plural
from tufrepo.validate import describe_key, signature_problem

if TYPE_CHECKING:
    from tufrepo.publish import SitePlan

__all__ = ["SiteSource", "render_index", "role_periods", "source_of"]

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


def _role_file(name: str, md: Any) -> str:
    if name == "timestamp":
        return "metadata/timestamp.json"
    return f"metadata/{md.signed.version}.{quote(name, safe='')}.json"


def _role_row(name: str, roles: dict[str, Any], now: datetime) -> tuple[str, str]:
    """The row of role ``name`` and its publish-time state."""
    esc = html.escape
    md = roles[name]
    keys, threshold = delegation_in(name, roles)
    signed = [k for k in keys if signature_problem(k, md) is None]
    _, signing = role_periods(name, roles)
    state, note = _status(md.signed.expires, signing, now)
    expires = md.signed.expires
    link = _role_file(name, md)
    cells = [
        f'<a href="{esc(link)}">{esc(name)}</a>',
        str(md.signed.version),
        f"{threshold} of {len(keys)}",
        "<br>".join(esc(describe_key(k)) for k in signed) or "nobody",
        "<br>".join(esc(describe_key(k)) for k in keys) or "—",
        (
            f'<span class="date">{expires:%Y-%m-%d %H:%M} UTC</span><br>'
            f'<small class="left">{esc(note)}</small>'
        ),
        "—" if signing is None else plural(signing, "day"),
    ]
    tds = "".join(
        f'<td class="expiry {state}">{c}</td>' if i == 5 else f"<td>{c}</td>"
        for i, c in enumerate(cells)
    )
    period = "" if signing is None else f' data-signing-days="{signing}"'
    row = (
        f'<tr data-role="{esc(name)}" data-expires="{expires:%Y-%m-%dT%H:%M:%SZ}"{period}>'
        f"{tds}</tr>"
    )
    return row, state


def _artifact_rows(plan: SitePlan) -> list[str]:
    esc = html.escape
    rows = []
    for art in plan.artifacts:
        sha = art.hashes.get("sha256") or next(iter(art.hashes.values()), "")
        if art.source is None:
            where = "hosted elsewhere (not copied)"
        else:
            where = f'<a href="{esc(quote(art.site_paths[0]))}">download</a>'
        cells = [f"<code>{esc(art.path)}</code>", esc(art.role), str(art.length),
                 f"<code>{esc(sha)}</code>", where]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return rows


def _health(states: dict[str, str]) -> tuple[str, str]:
    expired = [r for r, s in states.items() if s == "expired"]
    warn = [r for r, s in states.items() if s == "warn"]
    if expired:
        return "expired", f"EXPIRED at publish time: {', '.join(expired)}."
    if warn:
        return "warn", f"Valid, but inside the signing period: {', '.join(warn)}."
    return "ok", "Healthy at publish time: every role is valid."


def _roots(plan: SitePlan) -> list[str]:
    esc = html.escape
    roots = sorted(
        (int(p.split("/")[1].split(".")[0]), p)
        for p in plan.metadata
        if p.startswith("metadata/") and p.endswith(".root.json")
    )
    return [
        f'<li><a href="{esc(p)}">{esc(p)}</a> sha256 '
        f"<code>{hashlib.sha256(plan.metadata[p]).hexdigest()}</code></li>"
        for _, p in roots
    ]


def render_index(plan: SitePlan, now: datetime, source: SiteSource | None = None) -> str:
    """The page for ``plan`` published at ``now`` from ``source``."""
    esc = html.escape
    roles = plan.roles
    order = ["root", "targets", *sorted(set(roles) - set(_ORDER)), "snapshot", "timestamp"]
    rows, states = [], {}
    for name in order:
        row, states[name] = _role_row(name, roles, now)
        rows.append(row)
    health_class, health = _health(states)
    name = esc(source.name) if source else "TUF repository"
    commit = (
        f"source commit <code>{esc(source.commit)}</code>, " if source and source.commit else ""
    )
    ts = roles["timestamp"].signed
    root_version = roles["root"].signed.version
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{name}: TUF repository</title><style>{_STYLE}</style></head>
<body>
<h1>{name}</h1>
<p id="health" class="{health_class}">{esc(health)}</p>
<p>A <a href="https://theupdateframework.io">TUF</a> repository published
{esc(now.strftime("%Y-%m-%d %H:%M UTC"))} ({commit}timestamp version {ts.version},
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
{chr(10).join(_roots(plan))}
</ul>
<h2>Artifacts</h2>
<table><tr><th>path</th><th>role</th><th>bytes</th><th>sha256</th><th></th></tr>
{chr(10).join(_artifact_rows(plan)) or '<tr><td colspan="5">none</td></tr>'}
</table>
<script>{_SCRIPT}</script>
</body></html>
"""
