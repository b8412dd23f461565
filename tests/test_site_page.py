"""index.html as a reader sees it: rendered by headless Chromium (Debian's ``chromium``), its
script run against the real clock, and the visible text checked - a healthy repository, one
inside its signing period, and a stale page whose metadata has expired since it was
published."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from freezegun import freeze_time

from tests.git_helpers import git
from tests.site_helpers import DELEGATED, RepoBuilder
from tufrepo import __version__
from tufrepo.publish import publish
from tufrepo.site_index import SitePage, SiteSource, render_index
from tufrepo.site_manifest import RoleFacts


class _Text(HTMLParser):
    """The visible text of a page (script and style left out), one line per block."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")
        if tag in ("tr", "p", "li", "h1", "h2"):
            self.parts.append("\n")
        if tag == "br":
            self.parts.append("; ")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")
        if tag == "td":
            self.parts.append(" | ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        return " ".join("".join(self.parts).split(" "))


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (scripts/dev.sh installs it)")
        pytest.skip("chromium is not installed")
    return found


def rendered(page: Path, tmp: Path) -> tuple[str, str]:
    """(visible text, DOM) of ``page`` after its scripts ran in headless Chromium."""
    args = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=3000",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    parser = _Text()
    parser.feed(proc.stdout)
    return parser.text(), proc.stdout


def _line(text: str, role: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(f"{role} |"))


def test_healthy_repository(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "repo").build()
    git(repo.path, "init", "--quiet", "--initial-branch=main")
    git(repo.path, "remote", "add", "origin", "https://token@github.com/example/tuf-root.git")
    git(repo.path, "add", ".")
    git(repo.path, "commit", "--quiet", "-m", "repository")
    publish(repo.path, tmp_path / "site")
    text, dom = rendered(tmp_path / "site" / "index.html", tmp_path)

    assert "Healthy: every role is valid and outside its signing period." in text
    assert "checked in your browser at" in text
    assert "example/tuf-root" in text
    assert "token" not in dom
    assert git(repo.path, "rev-parse", "HEAD") in text
    assert f"tufrepo {__version__}" in text
    root = _line(text, "root")
    # root v3 is 1 of {@bob, @carol}, signed by @bob only (and by v2's @alice, not a signer)
    signed_by, signers = root.split(" | ")[3:5]
    assert "@bob" in signed_by
    assert "@carol" not in signed_by
    assert "@carol" in signers
    assert "1 of 2" in root
    assert "expires in 364 days" in root
    assert "expires in 1 day" in _line(text, "timestamp")  # 2 days less a few seconds
    # every metadata file is linked, root's sha256 shown for pinning
    for href in ("metadata/3.root.json", "metadata/timestamp.json", f"1.{DELEGATED}.json"):
        assert href in dom
    pin = (repo.path / "metadata" / "root.json").read_bytes()
    assert f"metadata/3.root.json sha256 {hashlib.sha256(pin).hexdigest()}" in text


def test_inside_signing_period(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "repo").build()
    repo.snapshot_timestamp(timestamp_expires=repo.now + timedelta(hours=12))
    publish(repo.path, tmp_path / "site")
    text, dom = rendered(tmp_path / "site" / "index.html", tmp_path)
    assert "Valid, but inside the signing period: timestamp" in text
    assert "expires in 11 hours: inside its signing period, re-sign soon" in _line(
        text, "timestamp"
    )
    assert 'id="health" class="warn"' in dom
    assert 'class="expiry warn"' in dom


def test_stale_page_shows_expiry(tmp_path: Path) -> None:
    """Published 30 days ago, when it was healthy: the reader's browser shows it expired."""
    then = datetime.now(UTC) - timedelta(days=30)
    repo = RepoBuilder(tmp_path / "repo", now=then).build()
    with freeze_time(then):  # ngclient checks expiry with its own clock
        publish(repo.path, tmp_path / "site", now=then)
    page = (tmp_path / "site" / "index.html").read_text()
    assert "Healthy at publish time" in page  # what the page said when it was written
    text, dom = rendered(tmp_path / "site" / "index.html", tmp_path)
    assert "EXPIRED: snapshot, timestamp." in text
    assert "This site is stale" in text
    assert "EXPIRED 28 days ago" in _line(text, "timestamp")
    assert "EXPIRED 9 days ago" in _line(text, "snapshot")
    assert "expires in 334 days" in _line(text, "root")
    assert 'id="health" class="expired"' in dom


def _facts(version: int, expires: datetime, signed: tuple[str, ...], targets: int) -> RoleFacts:
    keys = ("@alice [ed25519 aaaa]", "@bob [ed25519 bbbb]")
    return RoleFacts(version, expires, 1, keys, signed, 30, targets=targets, files=targets)


def test_large_repository_one_row_per_group_of_bins(tmp_path: Path) -> None:
    """Past ARTIFACT_ROWS artifacts: one row for a role's 256 bins (the first to expire, who
    signed how many), artifact counts instead of a list; the script still judges expiry."""
    now = datetime.now(UTC)
    soon, later = now + timedelta(days=10), now + timedelta(days=200)
    alice, both = ("@alice [ed25519 aaaa]",), ("@alice [ed25519 aaaa]", "@bob [ed25519 bbbb]")
    bins = [f"targets-bins-{i:02x}" for i in range(256)]
    roles = {
        "root": _facts(2, later, alice, 0),
        "targets": _facts(3, later, alice, 0),
        "snapshot": _facts(9, now + timedelta(days=20), alice, 0),
        "timestamp": _facts(9, now + timedelta(days=2), alice, 0),
        "app": _facts(1, later, alice, 12),
        **{b: _facts(1 + (i == 7), soon if i == 7 else later, alice if i % 2 else both, 390)
           for i, b in enumerate(bins)},
    }  # fmt: skip
    page = SitePage(roles, {"targets": bins}, [("metadata/1.root.json", "ab" * 32)], 9, None)
    html = render_index(page, now, SiteSource("example/big", "c0ffee"))
    assert html.count("<tr data-role=") == 6  # root, targets, its bins, app, snapshot, timestamp
    (tmp_path / "index.html").write_text(html)
    text, _ = rendered(tmp_path / "index.html", tmp_path)
    group = _line(text, "targets: 256 hash bins")
    assert "1 to 2" in group  # versions
    assert "@alice [ed25519 aaaa] |" in group or "@alice [ed25519 aaaa];" in group
    assert "@bob [ed25519 bbbb] (128 of 256)" in group
    assert "expires in 9 days" in group
    assert "inside its signing period" in group  # 10 days left of a 30-day signing period
    assert "Valid, but inside the signing period: targets: 256 hash bins" in text
    assert "99,852 artifacts: too many to list here" in text
    assert "targets: 256 hash bins | 99,840" in text
    assert "app | 12" in text
