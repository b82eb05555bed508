"""The pytest plug-in as a user meets it: fixtures configured by marker or ini option."""

from __future__ import annotations

import textwrap

pytest_plugins = ["pytester"]

APP = {
    "wrangler_like.toml": 'name = "solo"\nmain = "solo.py"\ntriggers = { crons = ["*/10 * * * *"] }\n',
    "solo.py": textwrap.dedent("""
        from workers import Response, WorkerEntrypoint
        FIRED = []
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(str(len(FIRED)))
            async def scheduled(self, controller):
                FIRED.append(controller.cron)
    """),
}


def test_fixtures_with_default_config_and_marker(pytester):
    for name, text in APP.items():
        pytester.path.joinpath(name).write_text(text)
    pytester.path.joinpath("other.toml").write_text(APP["wrangler_like.toml"].replace("solo\"", "named\""))
    pytester.makepyfile(test_app=textwrap.dedent("""
        import pytest

        async def test_real(edgelet_platform):
            resp = await edgelet_platform.fetch("/")
            assert await resp.text() == "0"

        async def test_virtual(edgelet_virtual_platform):
            await edgelet_virtual_platform.advance("1 hour")
            assert await (await edgelet_virtual_platform.fetch("/")).text() == "6"

        @pytest.mark.edgelet(config="other.toml")
        async def test_marker(edgelet_platform):
            assert edgelet_platform.host.config.primary.name == "named"
    """))
    result = pytester.runpytest_subprocess("-p", "asyncio", "-o", "asyncio_mode=auto", "-q")
    result.assert_outcomes(passed=3)
