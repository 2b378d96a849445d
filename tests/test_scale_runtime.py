"""One shared HTTP session per outside service (issue 16): every job's GitHub client and every model call use the
runtime's one session and one model client, and shutting down closes both, whatever else fails."""

from __future__ import annotations

import pytest

from bot.run.runtime import Runtime
from bot.settings import Settings
from bot.store import StoreUnavailable
from tests.conftest import INSTALLATION


async def test_the_shared_sessions_are_closed_on_shutdown_even_when_the_jobs_fail_to_stop(settings: Settings) -> None:
    rt = await Runtime(settings.with_overrides(anthropic_api_key="sk-ant-test-key"), github_max_wait=5.0,
                       github_backoff=0.01).start()
    model = rt.deps.anthropic
    assert model is not None and rt.deps.anthropic is model  # one client for every call of every run
    gh = await rt.github.installation(INSTALLATION)
    assert gh._session is rt.session  # every installation's client on the one GitHub session

    async def stuck() -> None:
        raise RuntimeError("the job runner would not stop")

    rt.jobs.close = stuck  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="would not stop"):
        await rt.close()
    assert rt.session.closed and model.is_closed()
    with pytest.raises(StoreUnavailable):
        await rt.store.run_states()

