"""A small world of real git repositories for end-to-end tests.

One bare "upstream" remote, one clone per person (and for CI and app CI), ed25519 file keys
per person and an online key. Commands run in-process through click's CliRunner (fast), or
as ``python -m tufrepo`` subprocesses where the process boundary matters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tufrepo.cli import main

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` (test plumbing only) and return stdout."""
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def run_tufrepo(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m tufrepo ARGS`` in a real process (stdin closed, no terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "tufrepo", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV, **(env or {})},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def write_ed25519(path: Path) -> str:
    """An unencrypted ed25519 PEM key at ``path``; returns its ``file2:`` URI."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return f"file2:{path}"


@dataclass
class World:
    """Upstream remote, per-person clones and keys."""

    root: Path
    remote: Path = field(init=False)
    signers: dict[str, str] = field(default_factory=dict)
    online_uri: str = ""

    def __post_init__(self) -> None:
        self.remote = self.root / "upstream.git"
        git(self.root, "init", "--quiet", "--bare", "--initial-branch=main", str(self.remote))
        keys = self.root / "keys"
        keys.mkdir()
        for user in ("alice", "bob", "carol"):
            self.signers[f"@{user}"] = write_ed25519(keys / f"{user}.pem")
        self.online_uri = write_ed25519(keys / "online.pem")

    def clone(self, name: str) -> Path:
        path = self.root / name
        if not path.exists():
            git(self.root, "clone", "--quiet", str(self.remote), name)
            git(path, "config", "user.name", name)
            git(path, "config", "user.email", f"{name}@localhost")
        return path

    def target_args(self, count: int, name: Callable[[int], str]) -> list[str]:
        """``--target NAME=FILE`` arguments for ``count`` small, distinct artifacts (file
        ``i`` holds ``b"i"``), named ``name(i)``."""
        files = self.root / "files"
        files.mkdir(exist_ok=True)
        args = []
        for i in range(count):
            f = files / f"{i}.bin"
            f.write_bytes(b"%d" % i)
            args += ["--target", f"{name(i)}={f}"]
        return args

    def tufrepo(self, clone: str, *args: str, user: str | None = None, code: int = 0) -> Result:
        """Run ``tufrepo ARGS --repo <clone>`` in-process and check the exit code."""
        env = {"TUFREPO_USER": "", "TUFREPO_SIGNER": ""}
        if user is not None:
            env = {"TUFREPO_USER": user, "TUFREPO_SIGNER": self.signers[user]}
        argv = [*args]
        if "--repo" not in argv and args[0] not in ("event",):
            argv += ["--repo", str(self.clone(clone))]
        result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
        assert result.exit_code == code, (
            f"tufrepo {' '.join(args)}: exit {result.exit_code} (expected {code})\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result

    def subprocess(
        self, cwd: Path, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python -m tufrepo ARGS`` in a real process (stdin closed, no terminal)."""
        return run_tufrepo(*args, cwd=cwd, env=env)

    def merge(self, event: str) -> None:
        """Merge ``sign/<event>`` into main upstream, as a pull request merge would."""
        path = self.clone("merger")
        git(path, "fetch", "--quiet", "origin")
        branch = f"origin/sign/{event}"
        if not git(path, "ls-remote", "--heads", "origin", "main"):
            git(path, "push", "--quiet", "origin", f"{branch}:refs/heads/main")
        else:
            git(path, "checkout", "--quiet", "-B", "main", "origin/main")
            git(path, "merge", "--quiet", "--no-ff", "-m", f"Merge sign/{event}", branch)
            git(path, "push", "--quiet", "origin", "main")
        git(path, "push", "--quiet", "origin", "--delete", f"sign/{event}")
        for clone in self.root.iterdir():
            if (clone / ".git").is_dir():
                git(clone, "fetch", "--quiet", "--prune", "origin")

    def ci(self) -> Path:
        """The CI clone, on main at the remote's main."""
        path = self.clone("ci")
        git(path, "fetch", "--quiet", "origin")
        git(path, "checkout", "--quiet", "-B", "main", "origin/main")
        return path

    def release(self, event: str, target: str, data: bytes, signer: str) -> None:
        """App CI opens ``sign/<event>`` adding ``target`` with ``data``; ``signer`` signs it;
        it is merged."""
        artifact = self.root / f"{event}.artifact"
        artifact.write_bytes(data)
        self.tufrepo(
            "appci", "event", "open", event, "--remote", str(self.remote),
            "--target", f"{target}={artifact}",
        )  # fmt: skip
        self.tufrepo(signer.strip("@"), "sign", f"sign/{event}", user=signer)
        self.merge(event)

    def remote_refs(self) -> dict[str, str]:
        out = git(self.root, "ls-remote", str(self.remote))
        refs = (line.split("\t") for line in out.splitlines())
        return {ref: sha for sha, ref in refs if ref != "HEAD"}

    def snapshot(self, clone: str) -> tuple[dict[str, str], str, str, str, str]:
        """Everything a failed command must leave unchanged: remote refs, local refs,
        the checked-out branch, the working tree status and git's worktrees."""
        path = self.clone(clone)
        local = git(path, "for-each-ref", "--format=%(refname) %(objectname)")
        branch = git(path, "symbolic-ref", "--quiet", "HEAD")
        status = git(path, "status", "--porcelain", "--untracked-files=all")
        worktrees = git(path, "worktree", "list", "--porcelain")
        return self.remote_refs(), local, branch, status, worktrees

    def init(self, user: str = "@alice") -> None:
        """Initialise the repository as ``user`` and merge it."""
        self.tufrepo(
            user.strip("@"), "delegate", "sign/init", "--online-key", self.online_uri, user=user
        )
        self.merge("init")

    def targets_two_of_two(self) -> None:
        """Make @alice and @bob the signers of targets, threshold 2 (event ``two``, merged)."""
        self.tufrepo("alice", "delegate", "sign/two", "targets", "--signers", "@alice,@bob",
                     "--threshold", "2", user="@alice")  # fmt: skip
        self.tufrepo("bob", "sign", "sign/two", user="@bob")
        self.tufrepo("alice", "sign", "sign/two", user="@alice")
        self.merge("two")


def world_with_app_role(root: Path) -> World:
    """An initialised repository whose delegated role ``app`` owns ``targets/app/``."""
    world = World(root)
    world.init()
    world.tufrepo("alice", "delegate", "sign/app-role", "app", user="@alice")
    world.merge("app-role")
    return world
