"""The named git operations of tufrepo.git, each on real repositories with a bare remote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.git_helpers import git
from tufrepo.errors import GitError, InputError, StaleBranchError
from tufrepo.git import Change, GitRepo

pytestmark = pytest.mark.git


def commit_file(path: Path, name: str, data: str, message: str) -> str:
    (path / name).parent.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(data)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", message)
    return git(path, "rev-parse", "HEAD")


@pytest.fixture
def forked(tmp_path: Path) -> tuple[GitRepo, dict[str, str]]:
    """A clone whose ``event`` branch left ``main`` at ``fork``; main moved on twice."""
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", "remote.git")
    git(tmp_path, "clone", "--quiet", "remote.git", "work")
    path = tmp_path / "work"
    shas = {"fork": commit_file(path, "metadata/a.json", "a1\n", "fork")}
    commit_file(path, "metadata/shared.json", "s0\n", "shared")
    shas["fork"] = git(path, "rev-parse", "HEAD")
    git(path, "checkout", "--quiet", "-b", "event")
    shas["event"] = commit_file(path, "metadata/shared.json", "event\n", "event edit")
    git(path, "checkout", "--quiet", "main")
    commit_file(path, "metadata/b.json", "b\n", "main 1")
    shas["main"] = commit_file(path, "metadata/shared.json", "main\n", "main 2")
    git(path, "push", "--quiet", "origin", "main", "event")
    git(path, "checkout", "--quiet", "event")
    return GitRepo(path), shas


def test_history_questions(forked: tuple[GitRepo, dict[str, str]]) -> None:
    repo, shas = forked
    assert repo.merge_base(shas["event"], shas["main"]) == shas["fork"]
    assert repo.is_ancestor(shas["fork"], shas["main"])
    assert not repo.is_ancestor(shas["event"], shas["main"])
    assert repo.count_commits(shas["fork"], shas["main"]) == 2
    assert repo.count_commits(shas["main"], shas["main"]) == 0
    assert repo.tree_changes(shas["fork"], shas["main"], "metadata") == [
        Change("A", "metadata/b.json"),
        Change("M", "metadata/shared.json"),
    ]
    assert repo.tree_changes(shas["fork"], shas["main"], "targets") == []


def test_merge_with_a_conflict_resolved_by_taking_one_side(
    forked: tuple[GitRepo, dict[str, str]],
) -> None:
    repo, shas = forked
    assert repo.start_merge(shas["main"]) == ["metadata/shared.json"]
    repo.take_version(shas["main"], "metadata/shared.json")
    repo.take_version(shas["main"], "metadata/not-there.json")  # absent there: nothing
    merge = repo.commit("merge main", [])
    parents = git(repo.path, "rev-list", "--parents", "-n1", merge).split()[1:]
    assert parents == [shas["event"], shas["main"]]
    assert (repo.path / "metadata/shared.json").read_text() == "main\n"
    assert (repo.path / "metadata/b.json").read_text() == "b\n"
    assert repo.is_ancestor(shas["main"], "HEAD")


def test_take_version_removes_a_path_absent_at_the_commit(
    forked: tuple[GitRepo, dict[str, str]],
) -> None:
    repo, shas = forked
    repo.start_merge(shas["main"])
    repo.take_version(shas["event"], "metadata/shared.json")
    repo.take_version(shas["fork"], "metadata/b.json")  # added by main: not at the fork
    repo.commit("merge main, keep the event's", [])
    assert (repo.path / "metadata/shared.json").read_text() == "event\n"
    assert not (repo.path / "metadata/b.json").exists()


def test_discard_ends_a_merge_and_removes_untracked_files(
    forked: tuple[GitRepo, dict[str, str]],
) -> None:
    repo, shas = forked
    repo.start_merge(shas["main"])
    (repo.path / "metadata/new.json").write_text("junk")
    (repo.path / "outside.txt").write_text("kept: not under the directories named")
    repo.discard(None, "metadata")
    assert repo.resolve("MERGE_HEAD") is None
    assert repo.head() == shas["event"]
    assert not (repo.path / "metadata/new.json").exists()
    assert (repo.path / "outside.txt").exists()
    repo.discard(shas["fork"], "metadata")
    assert repo.head() == shas["fork"]
    assert (repo.path / "metadata/shared.json").read_text() == "s0\n"


def test_fast_forward_only(forked: tuple[GitRepo, dict[str, str]]) -> None:
    repo, shas = forked
    repo.checkout(shas["fork"], new_branch="behind")
    repo.fast_forward(shas["main"])
    assert repo.head() == shas["main"]
    repo.checkout(shas["event"], new_branch="diverged")
    with pytest.raises(GitError, match="git merge"):
        repo.fast_forward(shas["main"])
    assert repo.head() == shas["event"]


def test_return_to_an_unborn_branch(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet", "--initial-branch=main", "empty")
    repo = GitRepo(tmp_path / "empty")
    repo.start_orphan("sign/init")
    (repo.path / "metadata").mkdir()
    (repo.path / "metadata/root.json").write_text("{}")
    git(repo.path, "add", "--all")
    repo.return_to(None, None, "metadata")
    assert repo.current_branch() == "main"
    assert not (repo.path / "metadata/root.json").exists()
    assert git(repo.path, "ls-files") == ""


def test_merge_commit_as_a_pull_request_merge(forked: tuple[GitRepo, dict[str, str]]) -> None:
    repo, shas = forked
    repo.checkout(shas["main"], new_branch="pr")
    pr = commit_file(repo.path, "metadata/pr.json", "pr\n", "pr")
    repo.checkout(shas["main"], new_branch="main")
    commit_file(repo.path, "metadata/c.json", "c\n", "main 3")
    merge = repo.merge_commit(pr, "Merge pr")
    assert git(repo.path, "rev-list", "--parents", "-n1", merge).split()[2] == pr
    assert git(repo.path, "log", "-1", "--format=%s") == "Merge pr"


def test_push_refused_by_a_hook_is_not_a_moved_branch(
    forked: tuple[GitRepo, dict[str, str]],
) -> None:
    repo, shas = forked
    remote = repo.path.parent / "remote.git"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes to main need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    repo.checkout(shas["main"], new_branch="main")
    commit_file(repo.path, "metadata/c.json", "c\n", "main 3")
    with pytest.raises(GitError) as refused:
        repo.push("main")
    assert not isinstance(refused.value, StaleBranchError)
    assert refused.value.diagnostics() == (
        "the remote refused the push to main: [remote rejected] (pre-receive hook declined)"
        " (the remote said: pushes to main need a review)"
    )


def test_push_after_someone_else_is_a_stale_branch(
    forked: tuple[GitRepo, dict[str, str]],
) -> None:
    repo, shas = forked
    repo.checkout(shas["fork"], new_branch="main")  # behind the remote's main
    commit_file(repo.path, "metadata/c.json", "c\n", "late")
    with pytest.raises(StaleBranchError, match=r"main moved on the remote: \[rejected\]"):
        repo.push("main")


def test_push_a_ref_and_delete_a_remote_branch(forked: tuple[GitRepo, dict[str, str]]) -> None:
    repo, shas = forked
    remote = repo.path.parent / "remote.git"
    repo.push_ref("refs/remotes/origin/event", "copy")
    assert git(remote, "rev-parse", "refs/heads/copy") == shas["event"]
    repo.delete_remote_branch("copy")
    assert not git(remote, "branch", "--list", "copy")


def test_merge_resolved_in_a_sparse_partial_clone(
    forked: tuple[GitRepo, dict[str, str]], tmp_path: Path
) -> None:
    """CI checks out metadata/ only: paths outside it are resolved all the same."""
    work, _ = forked
    git(work.path, "checkout", "--quiet", "event")
    commit_file(work.path, "targets/app.txt", "event's\n", "event artifact")
    git(work.path, "checkout", "--quiet", "main")
    commit_file(work.path, "targets/app.txt", "main's\n", "main artifact")
    commit_file(work.path, "targets/gone.txt", "x\n", "main adds")
    git(work.path, "push", "--quiet", "origin", "main", "event")
    url = f"file://{tmp_path / 'remote.git'}"
    git(tmp_path, "clone", "--quiet", "--filter=blob:none", "--no-checkout", url, "sparse")
    sparse = tmp_path / "sparse"
    git(sparse, "sparse-checkout", "set", "--no-cone", "/metadata/")
    git(sparse, "checkout", "--quiet", "event")
    repo = GitRepo(sparse)
    main = repo.resolve("origin/main") or ""
    event = repo.head() or ""
    assert set(repo.start_merge(main)) == {"metadata/shared.json", "targets/app.txt"}
    repo.take_version(event, "targets/app.txt")
    repo.take_version(main, "metadata/shared.json")
    repo.take_version(event, "targets/gone.txt")  # not in the event: removed
    merged = repo.commit("merge main", [])
    assert repo.read_blob(merged, "targets/app.txt") == b"event's\n"
    assert repo.read_blob(merged, "metadata/shared.json") == b"main\n"
    assert repo.read_blob(merged, "targets/gone.txt") is None


def test_a_symlink_read_from_git_objects_is_no_file(
    forked: tuple[GitRepo, dict[str, str]],
) -> None:
    """Metadata read from a commit (as ``sign`` reads an event) treats a symlink as the work
    tree's reader does, as no file: never its text (which could be any JSON) as content;
    artifact files refuse it."""
    repo, _ = forked
    (repo.path / "metadata/link.json").symlink_to('{"signed": {}}')
    (repo.path / "targets").mkdir()
    (repo.path / "targets/passwd").symlink_to("/etc/passwd")
    git(repo.path, "add", "--all")
    git(repo.path, "commit", "--quiet", "-m", "links")
    head = git(repo.path, "rev-parse", "HEAD")
    assert repo.read_blob(head, "metadata/shared.json") == b"event\n"
    assert repo.read_blob(head, "metadata/link.json") is None
    with pytest.raises(InputError, match="targets/passwd: symlinks are not allowed"):
        repo.export_files(head, ["targets/passwd"], repo.path / "out")
    assert not (repo.path / "out/targets/passwd").exists()


def _raw_tree(cwd: Path, entries: list[tuple[str, str, str]]) -> str:
    """A tree object written as is (git's own tools refuse names such as '..')."""
    data = b"".join(f"{m} {n}".encode() + b"\0" + bytes.fromhex(o) for m, n, o in entries)
    proc = subprocess.run(
        ["git", "hash-object", "-w", "-t", "tree", "--literally", "--stdin"],
        cwd=cwd, input=data, capture_output=True, check=True,
    )  # fmt: skip
    return proc.stdout.decode().strip()


@pytest.mark.parametrize(
    ("mode", "name"),
    [("40000", ".."), ("40000", "."), ("40000", ".GIT"), ("40000", "git~1"),
     ("100644", ".git. "), ("40000", ".g\u200cit"), ("120000", ".gitmodules")],
)  # fmt: skip
def test_trees_with_names_no_checkout_may_hold_are_refused(
    tmp_path: Path, mode: str, name: str
) -> None:
    """Files read from a commit go through tufrepo's own reading of trees (not GitPython's
    since start-up time mattered): names that climb out or stand for .git are refused."""
    git(tmp_path, "init", "--quiet", "--initial-branch=main", "work")
    path = tmp_path / "work"
    commit_file(path, "metadata/a.json", "a\n", "first")
    blob = git(path, "rev-parse", "HEAD:metadata/a.json")
    sub = _raw_tree(path, [("100644", "a.json", blob)])
    bad = _raw_tree(path, [(mode, name, sub if mode == "40000" else blob)])
    root = _raw_tree(path, [("40000", "metadata", bad)])
    commit = git(path, "commit-tree", root, "-m", "bad")
    repo = GitRepo(path)
    assert repo.read_blob("HEAD", "metadata/a.json") == b"a\n"
    with pytest.raises(GitError, match="tree"):
        repo.read_blob(commit, f"metadata/{name}/a.json")
    with pytest.raises(GitError, match="tree"):
        repo.list_dir(commit, "metadata")


def test_objects_read_again_after_cat_file_ends(tmp_path: Path) -> None:
    """Objects come from one ``cat-file --batch`` per checkout: when it ends (killed), the
    next read starts another rather than failing or reading out of step."""
    git(tmp_path, "init", "--quiet", "--initial-branch=main", "work")
    path = tmp_path / "work"
    head = commit_file(path, "metadata/a.json", "a\n", "first")
    repo = GitRepo(path)
    assert repo.read_blob(head, "metadata/a.json") == b"a\n"
    assert repo._batch is not None
    repo._batch.kill()
    repo._batch.wait()
    assert repo.resolve("main") == head
    assert repo.read_blob(head, "metadata/a.json") == b"a\n"
    assert repo.read_blob(head, "metadata/none.json") is None
    assert repo.resolve("no-such-branch") is None
