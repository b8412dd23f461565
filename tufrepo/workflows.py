"""The CI templates that tufrepo installs into a repository, and checks for outdated copies.

The templates live once, in the project's top-level ``workflows/`` directory; the package
reaches them as ``tufrepo/workflow_templates`` (a symlink in the source tree, a real
directory in an installed wheel). Installed copies are byte-for-byte copies: everything a
user configures goes through CI variables and secrets, so a copy that differs from this
version's template is either outdated or edited by hand, and ``check`` reports both.

GitHub: ``workflows/github/<name>.yml`` → ``.github/workflows/tufrepo-<name>.yml``.
GitLab: ``workflows/gitlab/tufrepo.gitlab-ci.yml`` → ``.gitlab/tufrepo.gitlab-ci.yml`` (or,
for an app, ``app-release.gitlab-ci.yml`` → ``.gitlab/tufrepo-app-release.gitlab-ci.yml``),
included from ``.gitlab-ci.yml`` (created when absent).
"""

from __future__ import annotations

import enum
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from tufrepo.errors import Error, InputError

__all__ = [
    "APP_TEMPLATE",
    "GITLAB_APP_INCLUDE",
    "GITLAB_CI",
    "GITLAB_INCLUDE",
    "CheckResult",
    "Platform",
    "State",
    "Template",
    "check",
    "install",
    "templates",
]

GITHUB_DIR = PurePosixPath(".github/workflows")
GITHUB_PREFIX = "tufrepo-"
GITLAB_CI = PurePosixPath(".gitlab-ci.yml")
GITLAB_INCLUDE = PurePosixPath(".gitlab/tufrepo.gitlab-ci.yml")
GITLAB_APP_INCLUDE = PurePosixPath(".gitlab/tufrepo-app-release.gitlab-ci.yml")
APP_TEMPLATE = "app-release.yml"
_GITLAB_SOURCE = "tufrepo.gitlab-ci.yml"
_GITLAB_APP_SOURCE = "app-release.gitlab-ci.yml"


def _gitlab_ci_text(include: PurePosixPath) -> bytes:
    return (
        "# Installed by `tufrepo workflows install --gitlab`: add your own jobs below.\n"
        f"include:\n  - local: {include}\n"
    ).encode()


class Platform(enum.Enum):
    GITHUB = "github"
    GITLAB = "gitlab"


class State(enum.Enum):
    """What ``check`` found for one installed file."""

    UP_TO_DATE = "up-to-date"
    OUTDATED = "outdated"  # differs from this version's template
    MISSING = "missing"  # part of an installed set, but absent
    OBSOLETE = "obsolete"  # a tufrepo-*.yml that this version no longer ships
    NOT_INCLUDED = "not-included"  # .gitlab-ci.yml does not include the tufrepo include


@dataclass(frozen=True, kw_only=True)
class Template:
    """One template: its name under ``workflows/<platform>/`` and where it is installed."""

    platform: Platform
    name: str
    dest: PurePosixPath

    def content(self) -> bytes:
        """The template's bytes, from the installed package or the source tree."""
        root = resources.files("tufrepo") / "workflow_templates"
        return (root / self.platform.value / self.name).read_bytes()


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    path: PurePosixPath
    state: State

    def __bool__(self) -> bool:
        return self.state is State.UP_TO_DATE


def _github_names() -> list[str]:
    root = resources.files("tufrepo") / "workflow_templates" / Platform.GITHUB.value
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".yml"))


def templates(platform: Platform, *, app: bool = False) -> list[Template]:
    """The templates of ``platform``: the TUF repository's set, or the app's (``app``)."""
    if platform is Platform.GITLAB:
        if app:
            return [Template(platform=platform, name=_GITLAB_APP_SOURCE, dest=GITLAB_APP_INCLUDE)]
        return [Template(platform=platform, name=_GITLAB_SOURCE, dest=GITLAB_INCLUDE)]
    names = [APP_TEMPLATE] if app else [n for n in _github_names() if n != APP_TEMPLATE]
    return [
        Template(platform=platform, name=n, dest=GITHUB_DIR / f"{GITHUB_PREFIX}{n}") for n in names
    ]


def _checkout(repo: Path) -> Path:
    if not repo.is_dir():
        raise InputError(f"{repo} is not a directory")
    if not (repo / ".git").exists():
        raise InputError(f"{repo} is not a git checkout (no .git)")
    return repo


def _gitlab_ci_includes(repo: Path, include: PurePosixPath) -> bool | None:
    """Whether .gitlab-ci.yml names ``include`` (None: there is no .gitlab-ci.yml)."""
    path = repo / GITLAB_CI
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    return str(include) in text


def _new_file_mode() -> int:
    """The mode open() would give a new file (0o666 less the umask), as mkstemp gives 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _write_all(repo: Path, files: Iterable[tuple[PurePosixPath, bytes]]) -> None:
    """Write every file atomically: all temp files first, then one os.replace each."""
    staged: list[tuple[str, Path]] = []
    new_mode = _new_file_mode()
    try:
        for rel, data in files:
            dest = repo / rel
            if dest.is_dir():
                raise InputError(f"{dest} is a directory")
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
            staged.append((tmp, dest))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                os.fchmod(f.fileno(), dest.stat().st_mode & 0o777 if dest.exists() else new_mode)
        for tmp, dest in staged:
            Path(tmp).replace(dest)
    except OSError as e:
        raise Error(f"cannot write the workflows: {e}") from e
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def install(repo: Path, platform: Platform, *, app: bool = False) -> list[tuple[str, str]]:
    """Copy this version's templates into ``repo``; return (action, path) per file.

    Raises:
        InputError: ``repo`` is not a git checkout, or (GitLab) an existing .gitlab-ci.yml
            does not include the tufrepo include yet (nothing is written then).
        Error: a file could not be written.
    """
    repo = _checkout(repo)
    files: list[tuple[PurePosixPath, bytes]] = []
    report: list[tuple[str, str]] = []
    for t in templates(platform, app=app):
        data = t.content()
        dest = repo / t.dest
        if not dest.exists():
            action = "created"
        elif dest.is_file() and dest.read_bytes() == data:
            action = "unchanged"
        else:
            action = "updated"
        files.append((t.dest, data))
        report.append((action, str(t.dest)))
    if platform is Platform.GITLAB:
        include = files[0][0]
        included = _gitlab_ci_includes(repo, include)
        if included is None:
            files.append((GITLAB_CI, _gitlab_ci_text(include)))
            report.append(("created", str(GITLAB_CI)))
        elif not included:
            raise InputError(
                f"{GITLAB_CI} exists but does not include {include}: add "
                f"'include: [{{local: {include}}}]' to it, then run this again"
            )
    _write_all(repo, files)
    return report


def _check_set(repo: Path, wanted: list[Template]) -> list[CheckResult]:
    results = []
    for t in wanted:
        dest = repo / t.dest
        if not dest.is_file():
            state = State.MISSING
        elif dest.read_bytes() == t.content():
            state = State.UP_TO_DATE
        else:
            state = State.OUTDATED
        results.append(CheckResult(path=t.dest, state=state))
    return results


def check(repo: Path) -> list[CheckResult]:
    """Compare the installed tufrepo workflows of ``repo`` with this version's templates.

    The installed sets are found by their paths: the GitHub TUF-repository set when any of
    its files is present (then all of them are expected), the app templates and the GitLab
    includes when present. Empty when nothing is installed.

    Raises:
        InputError: ``repo`` is not a git checkout.
    """
    repo = _checkout(repo)
    results: list[CheckResult] = []
    repo_set = templates(Platform.GITHUB)
    app_set = templates(Platform.GITHUB, app=True)
    if any((repo / t.dest).exists() for t in repo_set):
        results += _check_set(repo, repo_set)
    if any((repo / t.dest).exists() for t in app_set):
        results += _check_set(repo, app_set)
    known = {t.dest.name for t in repo_set + app_set}
    workflows_dir = repo / GITHUB_DIR
    if workflows_dir.is_dir():
        for p in sorted(workflows_dir.glob(f"{GITHUB_PREFIX}*.yml")):
            if p.name not in known:
                results.append(CheckResult(path=GITHUB_DIR / p.name, state=State.OBSOLETE))
    for gitlab_set in (templates(Platform.GITLAB), templates(Platform.GITLAB, app=True)):
        if any((repo / t.dest).exists() for t in gitlab_set):
            results += _check_set(repo, gitlab_set)
            if not _gitlab_ci_includes(repo, gitlab_set[0].dest):
                results.append(CheckResult(path=GITLAB_CI, state=State.NOT_INCLUDED))
    return results
