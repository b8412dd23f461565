"""check-site and download: bad URLs are bad input (exit 2), a site that cannot be read
prints no artifact count, and a URL ending in /metadata gets a hint."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.site_helpers import RepoBuilder
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
