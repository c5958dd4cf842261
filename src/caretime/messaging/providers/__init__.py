"""Provider selection: one provider per channel, chosen by CARETIME_SMS_PROVIDER and
CARETIME_VOICE_PROVIDER, built once per runtime with its own rate limiter."""

from __future__ import annotations

from typing import Any

import httpx

from caretime.config import Settings
from caretime.messaging.providers.agent import AgentProvider
from caretime.messaging.providers.base import Provider
from caretime.messaging.providers.callapi import CallApiProvider
from caretime.messaging.providers.simulator import SimulatorProvider
from caretime.messaging.providers.twilio import TwilioProvider
from caretime.messaging.ratelimit import TokenBucket

SERVICE_KEY = "messaging.providers"


def build_provider(
    name: str, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> Provider:
    if name == "simulator":
        return SimulatorProvider(settings)
    if name == "twilio":
        return TwilioProvider(settings, transport)
    if name == "callapi":
        return CallApiProvider(settings, transport)
    if name == "agent":
        return AgentProvider(settings, transport)
    raise ValueError(f"unknown messaging provider {name!r}")


class Providers:
    """The providers this process talks to, by name and by channel, each with a limiter
    shared by every job in the process."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.transport = transport
        self._by_name: dict[str, Provider] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def for_channel(self, channel: str) -> Provider:
        name = self.settings.sms_provider if channel == "sms" else self.settings.voice_provider
        return self.named(name)

    def install(self, name: str, provider: Provider) -> None:
        """Use `provider` wherever `name` is configured (tests, embedding applications)."""
        self._by_name[name] = provider
        self._buckets[name] = TokenBucket(provider.rate_per_second)

    def named(self, name: str) -> Provider:
        if name not in self._by_name:
            self.install(name, build_provider(name, self.settings, self.transport))
        return self._by_name[name]

    def bucket(self, name: str) -> TokenBucket:
        self.named(name)
        return self._buckets[name]

    def all_in_database(self) -> bool:
        """True when both channels' providers hand over by writing to our own database (the
        simulator): a job that rolls back then sent nothing, and needs no in-flight marks."""
        channels = (self.for_channel("sms"), self.for_channel("voice"))
        return all(getattr(provider, "in_database", False) is True for provider in channels)

    def uses(self, name: str) -> bool:
        return name in (self.settings.sms_provider, self.settings.voice_provider)


def providers_of(runtime: Any) -> Providers:
    """The runtime's providers, built on first use (tests may install their own first)."""
    providers: Providers = runtime.services.setdefault(SERVICE_KEY, Providers(runtime.settings))
    return providers
