"""No network beyond the loopback, for subprocesses of the Sigstore tests.

Put this directory first on PYTHONPATH and set TUFREPO_TEST_NO_NETWORK=1 (see
``sigstore_helpers.no_network_env``): every connection or name lookup to a non-loopback
address then fails with OSError, and is reported on stderr with the marker below.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any

MARKER = "tufrepo-test-network-blocked:"


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


def _block(what: str) -> OSError:
    sys.stderr.write(f"{MARKER} {what}\n")
    return OSError(f"network disabled in tests: {what}")


def _install() -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            raise _block(f"connect {address[0]}")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            raise _block(f"connect {address[0]}")
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            raise _block(f"getaddrinfo {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


if os.environ.get("TUFREPO_TEST_NO_NETWORK") == "1":
    _install()
