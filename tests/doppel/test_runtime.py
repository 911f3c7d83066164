"""doppel/runtime.py: SIGINT and SIGTERM stop a process through its stop event or stop function."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from doppel.runtime import on_stop_signals, run_until_signal


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_until_signal_sets_the_stop_event(signum):
    async def main(stop: asyncio.Event) -> str:
        assert not stop.is_set()
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signum)
        await asyncio.wait_for(stop.wait(), timeout=10)
        return "stopped"

    assert run_until_signal(main) == "stopped"
    # The loop is closed, its handlers gone: the process's own handling is back.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_on_stop_signals_calls_the_stop_function():
    calls = []

    async def main() -> None:
        done = asyncio.Event()
        on_stop_signals(lambda: (calls.append("stop"), done.set()))
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(done.wait(), timeout=10)

    asyncio.run(main())
    assert calls == ["stop"]


def test_a_process_killed_with_sigterm_finishes_its_shutdown():
    script = textwrap.dedent("""
        import asyncio
        from doppel.runtime import run_until_signal

        async def main(stop):
            print("ready", flush=True)
            await stop.wait()
            await asyncio.sleep(0.05)  # in-flight work finishes after the signal
            print("shut down cleanly", flush=True)
            return 0

        raise SystemExit(run_until_signal(main))
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0 and "shut down cleanly" in out
