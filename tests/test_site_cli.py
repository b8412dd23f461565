"""check-site and download: bad URLs are bad input (exit 2), a site that cannot be read
prints no artifact count, and a URL ending in /metadata gets a hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.site_helpers import RepoBuilder, expired_timestamp, published_site
from tufrepo.cli import main


@pytest.mark.parametrize(
    "args",
    [
        ["check-site", "htp://x"],
        ["check-site", "example.org/tuf"],
        ["check-site", "https://a.example", "--url", "https://b.example"],
        ["check-site"],
        ["download", "x", "--url", "example.org", "--root", "root.json"],
    ],
)
def test_bad_url_is_bad_input(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_unreadable_site_and_metadata_hint(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "repo").build(rotations=False)
    root = repo.path / "metadata" / "root_history" / "1.root.json"
    url = "http://127.0.0.1:9/tuf/metadata"  # nothing listens on the discard port
    result = CliRunner().invoke(main, ["check-site", url, "--root", str(root)])
    assert result.exit_code == 1
    assert "artifacts" not in result.stdout
    assert "Problem: refresh failed" in result.stderr
    assert "Hint: URL is the site's base, without /metadata: try http://127.0.0.1:9/tuf" in (
        result.stderr
    )


def test_problems_name_who_can_fix_them(tmp_path: Path) -> None:
    """Root v3's signers (@bob, @carol) set the online key: they are named for an expiring or
    expired timestamp, in the JSON and on stderr (for the CI's failure issue)."""
    with published_site(tmp_path) as pub:
        args = ["check-site", pub.url, "--root", str(pub.root1)]
        result = CliRunner().invoke(main, [*args, "--valid-for", "3d", "--json"])
        assert result.exit_code == 1
        data = json.loads(result.stdout)
        assert any(p.startswith("timestamp v") for p in data["problems"])
        assert data["fixers"] == ["@bob", "@carol"]  # timestamp: root's signers
        result = CliRunner().invoke(main, [*args, "--valid-for", "250d"])
        assert "Who can fix it: @bob, @carol" in result.stderr
        expired_timestamp(pub)
        result = CliRunner().invoke(main, [*args, "--json"])
        assert json.loads(result.stdout)["fixers"] == ["@bob", "@carol"]


def test_check_site_json_on_bad_input() -> None:
    result = CliRunner().invoke(main, ["check-site", "htp://x", "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert "not a site URL" in data["error"]


def test_check_site_markdown_for_a_failure_issue(tmp_path: Path) -> None:
    with published_site(tmp_path) as pub:
        expired_timestamp(pub)
        args = ["check-site", pub.url, "--root", str(pub.root1), "--format", "markdown"]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    md = result.stdout
    assert md.startswith(f"### Published TUF site `{pub.url}`: FAILED")
    assert "- ❌ refresh failed" in md
    assert "Who can fix it: @bob, @carol" in md  # mentions, outside any code block
    bad = CliRunner().invoke(main, ["check-site", "htp://x", "--format", "markdown"])
    assert bad.exit_code == 2
    assert "- ❌ not a site URL" in bad.stdout
