"""Running the fake Twilio server (tests/fakes/twilio_server.py) as a process and asking it
what it received."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from caretime.config import Settings
from tests.support import TEST_API_KEY

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "ACfake0000000000000000000000000000"
TOKEN = "fake-token"
FROM = "+15550001000"
PUBLIC = "https://caretime.example.org"


def twilio_settings(database_url: str, fake: FakeTwilioProcess) -> Settings:
    """Test settings with Twilio for SMS and voice, reached at the fake on loopback."""
    return Settings(
        env="test",
        database_url=database_url,
        api_key=TEST_API_KEY,
        workers=0,
        sms_provider="twilio",
        voice_provider="twilio",
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        twilio_from=FROM,
        twilio_base_url=fake.url,
        public_url=PUBLIC,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class FakeTwilioProcess:
    url: str

    def env(self) -> dict[str, str]:
        """What a caretime process needs to send through this fake."""
        return {
            "CARETIME_SMS_PROVIDER": "twilio",
            "CARETIME_VOICE_PROVIDER": "twilio",
            "CARETIME_TWILIO_BASE_URL": self.url,
            "CARETIME_TWILIO_ACCOUNT_SID": ACCOUNT,
            "CARETIME_TWILIO_AUTH_TOKEN": "fake-token",
            "CARETIME_TWILIO_FROM": "+15550001000",
            "CARETIME_TWILIO_RATE_LIMIT": "1000",
        }

    def configure(self, **settings: Any) -> None:
        httpx.post(f"{self.url}/_config", json=settings, timeout=10).raise_for_status()

    def reset(self) -> None:
        """Forget what was asked (a fake shared by several tests)."""
        httpx.post(f"{self.url}/_reset", timeout=10).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_requests", timeout=30)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def per_number(self) -> Counter[str]:
        return Counter(request["to"] for request in self.requests())


@contextmanager
def fake_twilio(logs: Path, *, delay: float = 0.0) -> Iterator[FakeTwilioProcess]:
    port = free_port()
    log = (logs / "fake-twilio.log").open("wb")
    command = [sys.executable, "-m", "tests.fakes.twilio_server", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--delay", str(delay)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT
    )
    fake = FakeTwilioProcess(f"http://127.0.0.1:{port}")
    try:
        _wait_until_up(fake, process)
        yield fake
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(fake: FakeTwilioProcess, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the fake Twilio server exited at start")
        try:
            fake.requests()
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the fake Twilio server did not start")
