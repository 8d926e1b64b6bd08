"""What the framework adapters share: the RankServe clients an adapter owns."""

from __future__ import annotations

from typing import Any

from rankserve.client import AsyncRerankClient, RerankClient


class AdapterClients:
    """Mixin for an adapter, a pydantic model with the fields ``base_url``, ``api_key``,
    ``timeout``, ``model`` and ``fallback`` and the private attributes ``_client`` and
    ``_aclient`` (default ``None``): its sync and async clients, each made on first use and then
    kept, so that its circuit breaker sees every call the adapter makes in that mode."""

    def _client_options(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "timeout": self.timeout, "model": self.model, "fallback": self.fallback}

    @property
    def client(self) -> RerankClient:
        if self._client is None:
            self._client = RerankClient(self.base_url, **self._client_options())
        return self._client

    @property
    def async_client(self) -> AsyncRerankClient:
        if self._aclient is None:
            self._aclient = AsyncRerankClient(self.base_url, **self._client_options())
        return self._aclient
