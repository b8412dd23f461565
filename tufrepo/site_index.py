"""The ``index.html`` of a published site: roles, signers, thresholds, expiry, artifacts.

Pure rendering (no I/O): ``render_index(plan, now)`` returns the page. Keys are described by
``tufrepo.validate.describe_key``, the one function that puts keys into words (owner, Sigstore
identity and issuer, online signer), so the site shows them as ``status`` and ``sign`` do.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tufrepo.errors import MetadataError
from tufrepo.roles import in_signing_period, periods
from tufrepo.validate import describe_key

if TYPE_CHECKING:
    from tufrepo.publish import SitePlan

__all__ = ["render_index", "role_periods"]

_ORDER = ("root", "targets", "snapshot", "timestamp")


def role_periods(name: str, roles: dict[str, Any]) -> tuple[int | None, int | None]:
    """(expiry period, signing period) in days, or Nones when the role has no periods
    (a repository not made by tuf-on-ci or tufrepo)."""
    md = roles.get(name)
    try:
        return periods(name, roles["root"].signed, md.signed if md else None)
    except MetadataError:
        return None, None


def _signers(name: str, roles: dict[str, Any]) -> tuple[list[Any], int]:
    """Keys and threshold of ``name`` as its delegator states them."""
    root = roles["root"].signed
    if name in root.roles:
        role = root.roles[name]
        return [root.keys[k] for k in role.keyids if k in root.keys], role.threshold
    for md in roles.values():
        delegations = getattr(md.signed, "delegations", None)
        if delegations is None:
            continue
        try:  # a named delegation or a hash bin
            role = md.signed.get_delegated_role(name)
        except ValueError:
            continue
        return [delegations.keys[k] for k in role.keyids if k in delegations.keys], role.threshold
    return [], 0


def _status(expires: datetime, signing: int | None, now: datetime) -> tuple[str, str]:
    if expires <= now:
        return "expired", "expired"
    if signing is not None and in_signing_period(expires, signing, now):
        return "warn", "inside its signing period: re-sign soon"
    return "ok", "valid"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: .35em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.warn { background: #fff3c4; }
td.expired { background: #f8c8c8; }
code { font-size: .9em; }
"""


def _row(cells: list[str], classes: dict[int, str] | None = None) -> str:
    tds = []
    for i, cell in enumerate(cells):
        cls = (classes or {}).get(i)
        tds.append(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>")
    return "<tr>" + "".join(tds) + "</tr>"


def render_index(plan: SitePlan, now: datetime) -> str:
    """The page for ``plan``; expiry dates get a warning colour inside the signing period."""
    roles = plan.roles
    esc = html.escape
    role_rows = []
    order = ["root", "targets", *sorted(set(roles) - set(_ORDER)), "snapshot", "timestamp"]
    for name in order:
        md = roles[name]
        keys, threshold = _signers(name, roles)
        _, signing = role_periods(name, roles)
        cls, note = _status(md.signed.expires, signing, now)
        expires = md.signed.expires.strftime("%Y-%m-%d %H:%M UTC")
        signers = "<br>".join(esc(describe_key(k)) for k in keys) or "—"
        period = "—" if signing is None else f"{signing} day{'' if signing == 1 else 's'}"
        role_rows.append(
            _row(
                [
                    esc(name),
                    str(md.signed.version),
                    f"{threshold} of {len(keys)}",
                    signers,
                    f"{esc(expires)}<br><small>{esc(note)}</small>",
                    period,
                ],
                {4: cls},
            )
        )
    art_rows = []
    for art in plan.artifacts:
        sha = art.hashes.get("sha256") or next(iter(art.hashes.values()), "")
        if art.source is None:
            where = "hosted elsewhere (not copied)"
        else:
            where = f'<a href="{esc(quote(art.site_paths[0]))}">download</a>'
        art_rows.append(
            _row(
                [
                    f"<code>{esc(art.path)}</code>",
                    esc(art.role),
                    str(art.length),
                    f"<code>{esc(sha)}</code>",
                    where,
                ]
            )
        )
    ts = roles["timestamp"].signed
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>TUF repository</title><style>{_STYLE}</style></head>
<body>
<h1>TUF repository</h1>
<p>Published {esc(now.strftime("%Y-%m-%d %H:%M UTC"))}, timestamp version {ts.version}.
Clients start from <a href="metadata/1.root.json">metadata/1.root.json</a> (or a root they
already trust) and fetch <a href="metadata/timestamp.json">metadata/timestamp.json</a>.</p>
<h2>Roles</h2>
<table><tr><th>role</th><th>version</th><th>threshold</th><th>signers</th><th>expires</th>
<th>signing period</th></tr>
{chr(10).join(role_rows)}
</table>
<h2>Artifacts</h2>
<table><tr><th>path</th><th>role</th><th>bytes</th><th>sha256</th><th></th></tr>
{chr(10).join(art_rows) or '<tr><td colspan="5">none</td></tr>'}
</table>
</body></html>
"""
