"""tufrepo's composite actions (actions/<name>/action.yml) and actions/install.sh, which
every action and GitLab component runs: each rule checked on the real files and on broken
copies. zizmor and actionlint audit the actions in tests/test_workflows_hardening.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import workflows_helpers as h


def test_all_actions_present_and_used() -> None:
    """Every action in actions/ is called by a template, and every call names one."""
    names = {p.parent.name for p in h.ACTION_FILES}
    assert names == {
        "update-targets",
        "status",
        "online-sign",
        "publish",
        "expiry-events",
        "check-site",
        "event-open",
    }
    used = {
        u.removeprefix(h.ACTIONS_REPO).split("@")[0]
        for path in h.GITHUB_FILES
        for job in h.load(path)["jobs"].values()
        for u in h.uses(job)
        if u.startswith(h.ACTIONS_REPO)
    }
    assert used == names


@pytest.mark.parametrize("path", h.ACTION_FILES, ids=lambda p: p.parent.name)
def test_action_passes(path: Path) -> None:
    assert h.check_action(path) == []


ACTION_MUTATIONS: list[tuple[str, str, str]] = [
    ("publish", 'bash "$GITHUB_ACTION_PATH/../install.sh"', "pip install tufrepo"),
    ("publish", '--previous "$PREVIOUS_URL"', '--previous "${{ inputs.previous-url }}"'),
    ("check-site", '"$URL"', "$URL"),
    ("status", "      shell: bash\n      run: rc=0", "      run: rc=0"),
    ("online-sign", " # v5.6.0", ""),
    ("online-sign", "a26af69be951a213d495a4c3e4e4022e16d87065", "v5"),
]


@pytest.mark.parametrize(("name", "old", "new"), ACTION_MUTATIONS)
def test_action_check_catches(tmp_path: Path, name: str, old: str, new: str) -> None:
    text = (h.ACTIONS_DIR / name / "action.yml").read_text()
    assert old in text, f"mutation no longer applies to {name}: {old!r}"
    broken = tmp_path / name / "action.yml"
    broken.parent.mkdir()
    broken.write_text(text.replace(old, new, 1))
    assert h.check_action(broken) != []


def test_install_script(tmp_path: Path) -> None:
    """actions/install.sh (what every action and component runs): shellcheck-clean,
    hash-checked from the lock files, wheels only, tufrepo itself from no index."""
    script = h.ACTIONS_DIR / "install.sh"
    result = subprocess.run(
        [h.tool("shellcheck"), str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    text = script.read_text()
    assert "--require-hashes --only-binary ':all:'" in text
    assert '-r "$src/requirements/runtime.txt" -r "$src/requirements/build.txt"' in text
    assert '"${pip[@]}" --no-deps --no-build-isolation --no-index "$src"' in text
    broken = tmp_path / "install.sh"
    broken.write_text(
        text.replace('"$src/requirements/runtime.txt"', "$src/requirements/runtime.txt")
    )
    result = subprocess.run([h.tool("shellcheck"), str(broken)], capture_output=True, check=False)
    assert result.returncode != 0
