"""`make app` (streamlit run from the repository root) listens on 127.0.0.1 unless given an address."""

import ipaddress
import os
import subprocess
import sys
import time

import pytest

from scripts import app_screenshots
from tests.conftest import REPO_ROOT

LISTEN = "0A"


def listening_addresses(port):
    """The local addresses with a TCP socket listening on `port` (IPv4 and IPv6), e.g. {"127.0.0.1"}."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                local, _, state = row.split()[1:4]
                address, port_hex = local.split(":")
                if state == LISTEN and int(port_hex, 16) == port:
                    addresses.add(decode_address(address))
    return addresses


def decode_address(hexadecimal):
    """/proc/net/tcp's little-endian hex words as an address ("0100007F" -> "127.0.0.1")."""
    if len(hexadecimal) == 8:
        return ".".join(str(int(hexadecimal[index:index + 2], 16)) for index in (6, 4, 2, 0))
    words = [hexadecimal[index:index + 8] for index in range(0, 32, 8)]
    raw = bytes.fromhex("".join(bytes.fromhex(word)[::-1].hex() for word in words))
    return str(ipaddress.IPv6Address(raw))


def addresses_of_a_started_app(*extra_arguments, timeout=90):
    port = app_screenshots.free_port()
    command = [sys.executable, "-m", "streamlit", "run", "scripts/app.py", "--server.port", str(port),
               "--server.headless", "true", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false", *extra_arguments]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            addresses = listening_addresses(port)
            if addresses:
                return addresses
            time.sleep(0.5)
        raise TimeoutError(f"streamlit did not listen on port {port} within {timeout} s")
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_decode_address():
    assert decode_address("0100007F") == "127.0.0.1"
    assert decode_address("00000000") == "0.0.0.0"
    assert decode_address("00000000000000000000000001000000") == "::1"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads the listening sockets from /proc/net")
def test_the_app_listens_on_localhost_unless_given_an_address():
    assert addresses_of_a_started_app() == {"127.0.0.1"}
    assert addresses_of_a_started_app("--server.address", "0.0.0.0") == {"0.0.0.0"}
