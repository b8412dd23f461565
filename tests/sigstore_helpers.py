"""Fixtures for the Sigstore tests: no network, the local stand-in, clean tufrepo settings.

Import the fixtures a test module needs from here (``from sigstore_helpers import ...``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sigstore_standin import SigstoreStandin

from tufrepo import sigstore_trust
from tufrepo.demo import serve
from tufrepo.signers import register
from tufrepo.signers.sigstore import set_identity_token

ROOT = Path(__file__).resolve().parent.parent


def _prime_cryptography_clock() -> None:
    """Let cryptography's X.509 verifier learn the real ``datetime`` class first.

    pyca/cryptography caches the datetime type on the first ``PolicyBuilder.time()`` call;
    if that happens under freezegun it caches FakeDatetime and later rejects real datetimes
    (sigstore's chain check then fails). Importing this module (at collection, before any
    clock is frozen) makes the cached class the real one, of which FakeDatetime is a subclass.
    """
    from datetime import UTC, datetime

    from cryptography.x509.verification import PolicyBuilder

    PolicyBuilder().time(datetime.now(UTC))


_prime_cryptography_clock()
SHARED_ENV = "TUFREPO_SHARED_DIR"
AMBIENT_ENV = (
    "GITHUB_ACTIONS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
    "SIGSTORE_ID_TOKEN",
)


def shared_dir() -> Path | None:
    """The shared test data beside the checkout: ``<repo>/../shared`` (or one level up)."""
    candidates = [Path(os.environ[SHARED_ENV])] if os.environ.get(SHARED_ENV) else []
    candidates += [ROOT.parent / "shared", ROOT.parent.parent / "shared"]
    for candidate in candidates:
        if (candidate / "fixtures").is_dir():
            return candidate
    return None


def _is_loopback(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    if str(host) == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Refuses (and records) every connection and name lookup beyond the loopback."""

    def __init__(self) -> None:
        self.blocked: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo

        def check(address: Any) -> None:
            if isinstance(address, tuple) and not _is_loopback(address[0]):
                self.blocked.append(f"connect {address[0]}:{address[1]}")
                raise OSError(f"network disabled in tests: connect to {address[0]}")

        def connect(sock: socket.socket, address: Any) -> None:
            check(address)
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            check(address)
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not _is_loopback(host):
                self.blocked.append(f"getaddrinfo {host}")
                raise socket.gaierror(socket.EAI_NONAME, f"network disabled in tests: {host}")
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


NONET_DIR = Path(__file__).resolve().parent / "sigstore_standin" / "nonet"
NONET_MARKER = "tufrepo-test-network-blocked:"


def no_network_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a subprocess that must not reach beyond the loopback.

    Its Python loads ``sigstore_standin/nonet/sitecustomize.py``, which refuses non-loopback
    connections and writes ``NONET_MARKER`` on stderr for each attempt.
    """
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NONET_DIR), env.get("PYTHONPATH")) if p)
    env["TUFREPO_TEST_NO_NETWORK"] = "1"
    return env


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """Forbid non-loopback connections; fail the test if anything even tried one."""
    guard = NetworkGuard()
    guard.install(monkeypatch)
    yield guard
    assert not guard.blocked, f"network access attempted: {guard.blocked}"


@pytest.fixture
def clean_sigstore(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Registered signers, no ambient credentials or overrides, settings reset afterwards."""
    register()
    for name in (*AMBIENT_ENV, sigstore_trust.TRUST_CONFIG_ENV, "TUFREPO_SIGSTORE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("no_proxy", "NO_PROXY"):  # the stand-in is local: never via a proxy
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    sigstore_trust.set_trust_config_path(None)
    sigstore_trust.set_repository_trust_config(None)  # none unless a test adds one
    set_identity_token(None)
    yield
    sigstore_trust.set_trust_config_path(None)
    sigstore_trust.set_repository_trust_config(None)
    set_identity_token(None)


@pytest.fixture(scope="session")
def standin() -> Iterator[SigstoreStandin]:
    """The local Sigstore stand-in (one per test session), stopped at the end."""
    with SigstoreStandin() as s:
        yield s


@pytest.fixture
def standin_trust(
    standin: SigstoreStandin, clean_sigstore: None, no_network: NetworkGuard, tmp_path: Path
) -> Path:
    """Trust the stand-in (via set_trust_config_path) with the network unavailable."""
    path = standin.write_trust_config(tmp_path / "standin-trust-config.json")
    sigstore_trust.set_trust_config_path(path)
    return path


# a static TUF site on 127.0.0.1: the same server the demo uses
serve_directory = serve
