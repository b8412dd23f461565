"""CI jobs work in partial, sparse clones (file contents fetched when read, metadata/
checked out), so that a job costs what the metadata and the change cost, not what the
artifacts do: on GitHub through actions/checkout's inputs (every job but the Pages build,
which rebuilds the whole site); on GitLab each tufrepo job of the component
(templates/repository.yml) clones for itself, with a sparse index too. The GitLab lines run
by bash as GitLab's runner runs them, on a bare project served over file://, with the real
tufrepo; artifacts go to $CI_PROJECT_DIR. (tests/test_workflows_e2e.py runs the GitHub
jobs in the clones their checkout steps ask for.)"""

from __future__ import annotations

from pathlib import Path

import gitlab_helpers as g
import pytest
import workflows_helpers as h

from tests.git_helpers import git, world_with_app_role

pytestmark = pytest.mark.git

JOBS = dict(g.gitlab_jobs(h.load(h.ROOT / "templates" / "repository.yml")))


WHOLE_SITE = {("online-sign.yml", "build-site"), ("publish.yml", "build-site")}


def test_github_jobs_check_out_partial_and_sparse() -> None:
    seen = set()
    for path in h.GITHUB_FILES:
        for name, job in h.load(path)["jobs"].items():
            for step in h.steps(job):
                if not step.get("uses", "").startswith("actions/checkout@"):
                    continue
                seen.add((path.name, name))
                given = step.get("with") or {}
                if (path.name, name) in WHOLE_SITE:
                    assert "sparse-checkout" not in given, (path.name, name)
                    continue
                assert given.get("filter") == "blob:none", (path.name, name)
                assert given.get("sparse-checkout") == "metadata", (path.name, name)
    assert seen > WHOLE_SITE
    assert ("online-sign.yml", "publish-bucket") in seen


def test_every_gitlab_tufrepo_job_clones_partial_and_sparse() -> None:
    lines = g.script_lines(JOBS["tufrepo-update-targets"])
    for name, job in JOBS.items():
        if any(ln.startswith("tufrepo ") for ln in g.script_lines(job)):
            assert g.script_lines(job)[:4] == lines[:4], name
    assert any("--filter=blob:none" in ln for ln in lines[:4])
    assert "git sparse-checkout set --cone --sparse-index metadata" in lines[:4]


def test_the_status_job_runs_in_a_partial_sparse_clone(tmp_path: Path) -> None:
    world = world_with_app_role(tmp_path)
    artifact = tmp_path / "one.tar.gz"
    artifact.write_bytes(b"one\n")
    world.tufrepo("appci", "event", "open", "release", "--remote", str(world.remote),
                  "--target", f"app/one.tar.gz={artifact}")  # fmt: skip
    main = git(world.remote, "rev-parse", "main")
    env = g.gitlab_project(world.remote, tmp_path, "sign/release")
    project_dir = tmp_path / "status-job"
    project_dir.mkdir()
    facts = project_dir / "clone-facts"
    code = g.run_job(
        JOBS["tufrepo-status"],
        project_dir,
        env,
        probe=(
            f'git config remote.origin.promisor > "{facts}"',
            f'git config index.sparse >> "{facts}"',
            f'git sparse-checkout list >> "{facts}"',
            f'git rev-parse --abbrev-ref HEAD >> "{facts}"',
            f'ls >> "{facts}"',
        ),
    )
    # 1: the event is not ready (nobody signed yet): the job is allowed that code
    assert code == 1
    assert 1 in JOBS["tufrepo-status"]["allow_failure"]["exit_codes"]
    report = project_dir / "tufrepo-status.md"  # the artifact, in the project directory
    assert JOBS["tufrepo-status"]["artifacts"]["paths"] == [report.name]
    assert "app/one.tar.gz" in report.read_text()
    assert "@alice" in report.read_text()  # who must sign
    assert facts.read_text().split() == ["true", "true", "metadata", "sign/release", "metadata"]
    assert git(world.remote, "rev-parse", "main") == main  # status pushes nothing
