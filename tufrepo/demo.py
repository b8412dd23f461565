"""``tufrepo demo``: the whole lifecycle on this machine, with real git, keys and a client.

A bare "upstream" remote, a maintainer clone, an app-CI clone and a CI clone; init with a
file key and a filekey online key; an app release event; the maintainer's signature; merge;
online signing; publishing; a static server on 127.0.0.1; a client download that verifies.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tufrepo.ci_flows import online_sign
from tufrepo.client import download, inspect_site
from tufrepo.errors import InputError
from tufrepo.flows import delegate, open_event, sign
from tufrepo.git import GitRepo, clone, init_bare
from tufrepo.publish import publish
from tufrepo.signers import PASSWORD_ENV
from tufrepo.signers.filekey import generate_filekey
from tufrepo.signing import Actor, RoleConfig
from tufrepo.workspace import Workspace

Say = Callable[[str], None]


def _merge(ci: GitRepo, event: str) -> None:
    """Merge sign/<event> into main upstream, as a reviewed pull request would be."""
    ci.fetch()
    branch = f"{ci.remote}/{event}"
    if ci.main_commit() is None:
        ci.push_ref(f"refs/remotes/{branch}", "main")
        ci.fetch()
        ci.checkout(f"{ci.remote}/main", new_branch="main")
    else:
        ci.checkout(f"{ci.remote}/main", new_branch="main")
        ci.merge_commit(branch, f"Merge {event}")
        ci.push("main")
    ci.delete_remote_branch(event)


@contextmanager
def serve(
    directory: Path, handler_class: type[http.server.SimpleHTTPRequestHandler] | None = None
) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(handler_class or _QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        return


def _now() -> datetime:
    return datetime.now(UTC)


def _setup(base: Path, say: Say) -> tuple[str, Actor, GitRepo]:
    """Keys, the upstream remote and clones, an initialised repository on main."""
    if os.environ.get(PASSWORD_ENV):
        say(
            f"1. keys in {base / 'keys'} (filekey: ECDSA P-256, encrypted with your {PASSWORD_ENV})"
        )
    else:
        os.environ[PASSWORD_ENV] = secrets.token_urlsafe(12)
        say(f"1. keys in {base / 'keys'} (filekey: ECDSA P-256), encrypted with the throwaway demo")
        say(f"   password {os.environ[PASSWORD_ENV]} (for these demo keys only)")
    keys = base / "keys"
    keys.mkdir()
    generate_filekey(keys / "maintainer.key", os.environ[PASSWORD_ENV])
    generate_filekey(keys / "online.key", os.environ[PASSWORD_ENV])
    maintainer = Actor("@maintainer", f"filekey:{keys / 'maintainer.key'}")
    online = RoleConfig(online_uri=f"filekey:{keys / 'online.key'}")

    say(f"2. upstream git repository {base / 'upstream.git'}, maintainer and CI clones")
    init_bare(base / "upstream.git")
    url = str(base / "upstream.git")
    clone(url, base / "maintainer")
    ci = clone(url, base / "ci")

    say("3. tufrepo delegate sign/init: root and targets signed by @maintainer")
    ws = Workspace.open(base / "maintainer")
    delegate(ws, "sign/init", None, online, maintainer, push=True, now=_now())
    _merge(ci, "sign/init")
    say("   merged sign/init; tufrepo online-sign: snapshot and timestamp")
    online_sign(ci.path, push=True, now=_now())
    return url, maintainer, ci


def _release(base: Path, url: str, maintainer: Actor, say: Say) -> None:
    """App CI opens an event; the maintainer signs it; it is ready."""
    say("4. app CI opens sign/app-1.0 from its own temporary clone (it never signs)")
    build = base / "app-build"
    build.mkdir()
    artifact = build / "app-1.0.tar.gz"
    artifact.write_bytes(b"pretend this is a release tarball\n" * 1000)
    open_event(
        base, "app-1.0", [("app-1.0.tar.gz", artifact)], [], remote_url=url, push=True, now=_now()
    )
    say("5. @maintainer reviews and signs sign/app-1.0 (targets recomputed from the files)")
    out = sign(
        Workspace.open(base / "maintainer"), "app-1.0", maintainer, push=True, now=_now(),
        review=lambda status: not status.problems,
    )  # fmt: skip
    say(f"   {'; '.join(out.messages)}")
    ci = Workspace.open(base / "ci")  # signing-event automation: status of the event
    ci.git.checkout(f"{ci.git.remote}/sign/app-1.0", new_branch="sign/app-1.0")
    status = ci.status("sign/app-1.0", _now())
    say(f"   status: {'ready to merge' if status.ready else 'NOT ready'}")
    if not status.ready:
        raise InputError("the demo event is not ready: this is a bug")


def run_demo(base: Path, say: Say, *, keep_serving: Callable[[str], None] | None = None) -> Path:
    """Run the lifecycle in ``base`` (created, must be empty); returns the published site.

    Raises:
        InputError: ``base`` exists and is not empty.
    """
    if base.exists() and any(base.iterdir()):
        raise InputError(f"{base} is not empty: give the demo a new directory")
    base.mkdir(parents=True, exist_ok=True)
    url, maintainer, ci = _setup(base, say)
    _release(base, url, maintainer, say)

    say("6. merge, online-sign, publish")
    _merge(ci, "sign/app-1.0")
    online_sign(ci.path, push=True, now=_now())
    site = base / "site"
    publish(ci.path, site, now=_now())

    with serve(site) as server:
        say(f"7. serving {site} at {server}")
        root_file = site / "metadata/1.root.json"
        root = root_file.read_bytes()
        report = inspect_site(server, root, now=_now(), download_all=True)
        say(f"   check-site: {'valid' if report else 'INVALID'}")
        got = download(
            server, "app-1.0.tar.gz", root, base / "downloads", cache_dir=base / "client-cache"
        )
        digest = hashlib.sha256(got.read_bytes()).hexdigest()
        say(f"   client downloaded and verified {got} (sha256 {digest[:16]}...)")
        GitRepo(base / "maintainer").checkout(f"{ci.remote}/main", new_branch="main")
        _next_steps(base, maintainer, site, server if keep_serving else None, say)
        if keep_serving is not None:
            keep_serving(server)
    return site


def _next_steps(base: Path, maintainer: Actor, site: Path, server: str | None, say: Say) -> None:
    """Commands that work on what the demo leaves behind (one per ``  $`` line)."""
    root_file = site / "metadata/1.root.json"
    say("")
    say("Continue as @maintainer (the clone is on main):")
    say(f"  $ export TUFREPO_USER=@maintainer TUFREPO_SIGNER={maintainer.signer_uri}")
    say(f"  $ export {PASSWORD_ENV}={os.environ[PASSWORD_ENV]}")
    say(f"  $ cd {base / 'maintainer'}")
    say("  $ tufrepo delegate sign/team targets --expiry-period 90 --signing-period 30")
    say("  $ git switch sign/team && tufrepo status")
    say(f"  $ tufrepo verify --repo {base / 'ci'}")
    if server is None:
        say("The server stopped with the demo: `tufrepo demo --serve DIR` keeps it running,")
        say("or serve the site yourself and check it like a client:")
        say(f"  $ python3 -m http.server --bind 127.0.0.1 --directory {site} 8000")
        server = "http://127.0.0.1:8000"
    say(f"Open {server}/index.html, or check the site like a client:")
    say(f"  $ tufrepo check-site {server} --root {root_file}")
    say(f"  $ tufrepo download app-1.0.tar.gz --url {server} --root {root_file}")
