"""The GitLab smoke test of the published site (templates/repository.yml): the check-site job
and the failure issue's job, their script lines run by bash as a runner runs them, with the
real tufrepo against a served site. Only ``glab`` (which needs a GitLab server) is a
stand-in that records the arguments it was given."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import gitlab_helpers as g
import pytest
import workflows_helpers as h

from tests.site_helpers import Published, published_site

PIPELINE = "https://gitlab.example/group/tuf/-/pipelines/7"
JOBS = dict(g.gitlab_jobs(h.load(h.ROOT / "templates" / "repository.yml")))


@pytest.fixture
def pub(tmp_path: Path) -> Iterator[Published]:
    with published_site(tmp_path) as p:
        yield p


def _glab_standin(directory: Path) -> Path:
    """A ``glab`` that writes its arguments (JSON) to $GLAB_ARGS."""
    directory.mkdir()
    script = directory / "glab"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "open(os.environ['GLAB_ARGS'], 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    script.chmod(0o755)
    return directory


def _issue(tmp_path: Path, report: Path | None) -> str:
    """Run the issue job with the check-site job's artifact (if any); the description."""
    job_dir = tmp_path / "issue-job"
    job_dir.mkdir()
    if report is not None:  # GitLab downloads the artifacts of the job it needs
        (job_dir / report.name).write_bytes(report.read_bytes())
    bin_dir = _glab_standin(tmp_path / "glab-bin")
    args = tmp_path / "glab-args.json"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GLAB_ARGS": str(args),
        "CI_PIPELINE_URL": PIPELINE,
        "CI_PROJECT_PATH": "group/tuf",
    }
    assert g.run_job(JOBS["tufrepo-site-issue"], job_dir, env) == 0
    argv = json.loads(args.read_text())
    assert argv[:2] == ["issue", "create"]
    return str(argv[argv.index("--description") + 1])


def test_failure_issue_carries_the_problems_and_who_can_fix_them(
    pub: Published, tmp_path: Path
) -> None:
    env = {
        **g.as_gitlab_project(pub.repo.path, tmp_path),
        "TUFREPO_SITE_URL": pub.url,
        "TUFREPO_CHECK_MARGIN": "3650d",  # everything expires within it: the check fails
    }
    project_dir = tmp_path / "check-site-job"
    project_dir.mkdir()
    assert g.run_job(JOBS["tufrepo-check-site"], project_dir, env) == 1
    report = project_dir / "tufrepo-check-site.md"  # the job's artifact
    assert JOBS["tufrepo-check-site"]["artifacts"]["paths"] == [report.name]
    assert JOBS["tufrepo-check-site"]["artifacts"]["when"] == "always"  # kept on failure
    description = _issue(tmp_path, report)
    assert description.startswith(f"Pipeline {PIPELINE}\n\n### Published TUF site `{pub.url}`")
    assert ": FAILED" in description
    assert "- ❌ " in description  # the problems, one per line
    fixers = next(ln for ln in description.splitlines() if ln.startswith("Who can fix it: "))
    assert "@" in fixers  # a mention of the signers


def test_failure_issue_without_a_report(tmp_path: Path) -> None:
    description = _issue(tmp_path, None)  # check-site's job failed before it wrote one
    assert description == f"Pipeline {PIPELINE}\n\nNo report (see the pipeline's log)."
