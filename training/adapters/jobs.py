"""Runs the jobs an owner queues from a chat (``/clone blend a:0.7 b:0.3 as NAME``).

The bots add ``bot.owner_commands.Job`` entries to ``Keys.jobs``; this runner reads them through the
jobs consumer group, runs each (a blend: peft's weighted merge, validated and published like
``doppel adapters blend``), and answers on the requesting bot's reply stream with one line, so
the owner sees the result in the chat they asked from. The answer is written, acked and deleted
in one transaction; a failed job is answered with its reason, never silently dropped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from doppel.errors import DoppelError
from doppel.relay import BadMessage, Keys, Reply

log = logging.getLogger(__name__)


def run_blend(settings, registry, args: dict) -> str:
    """Blend the job's sources and publish the result; returns the line the owner sees."""
    from doppel.registry import validate_name
    from training.adapters.blend import Blender, parents_from_specs
    from training.adapters.publish import publish, serve_spec

    name = validate_name(str(args.get("name", "")))
    sources = args.get("sources") or []
    specs = [f"{s['adapter']}:{s['weight']}" for s in sources if isinstance(s, dict) and "adapter" in s]
    if len(specs) < 2:
        raise DoppelError("a blend needs at least two adapters, e.g. /clone blend a:0.7 b:0.3 as mix")
    combination = str(args.get("combination", "linear"))
    spec = serve_spec(settings)
    parents = parents_from_specs(specs, settings, registry)
    blender = Blender(parents, combination, spec.max_lora_rank)
    weights = [p.weight for p in parents]
    blender.add(weights)
    path = blender.save("blend", Path(settings.data_dir) / "blends" / name, weights)
    data = blender.meta[0].get("data", {}).get("path")
    ref = publish(registry, path, name, spec, data=Path(data) if data and Path(data).is_file() else None)
    shown = " ".join(f"{p.label}:{w:g}" for p, w in zip(parents, weights, strict=True))
    return f"blended {shown} ({combination}) as {ref}; `/clone use {name}` routes to it"


RUNNERS = {"blend": run_blend}


def run_jobs(settings, redis, *, burst: bool = False, block_ms: int = 2000, consumer: str = "jobs") -> int:
    """Serve jobs until interrupted (or, with ``burst``, until none is queued); returns jobs done."""
    from doppel.jobs import Job

    keys = Keys(settings.redis.prefix)
    try:
        redis.xgroup_create(keys.jobs, keys.jobs_group, id="0", mkstream=True)
    except Exception as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    done = 0
    while True:
        response = redis.xreadgroup(keys.jobs_group, consumer, {keys.jobs: ">"}, count=1,
                                    block=None if burst else block_ms)
        if not response:
            if burst:
                return done
            continue
        for entry_id, fields in response[0][1]:
            reply = None
            try:
                job = Job.from_fields(fields)
            except BadMessage as exc:
                log.warning("job %s dropped: %s", entry_id, exc)
                job = None
            if job is not None:
                reply = _run(settings, job)
            pipe = redis.pipeline(transaction=True)
            if reply is not None:
                pipe.xadd(keys.replies(job.bot), reply.to_fields())
            pipe.xack(keys.jobs, keys.jobs_group, entry_id)
            pipe.xdel(keys.jobs, entry_id)
            pipe.execute()
            done += 1


def _run(settings, job) -> Reply:
    from doppel.registry import open_registry

    started = time.monotonic()
    runner = RUNNERS.get(job.kind)
    try:
        if runner is None:
            raise DoppelError(f"unknown job kind {job.kind!r} (known: {', '.join(RUNNERS)})")
        with open_registry(settings) as registry:
            line = runner(settings, registry, job.args)
        log.info("job %s (%s) done in %.1fs", job.id, job.kind, time.monotonic() - started)
        return Reply(request_id=job.id, channel=job.channel, status="ok", parts=(line,))
    except DoppelError as exc:
        return Reply(request_id=job.id, channel=job.channel, status="error", reason=str(exc))
    except Exception:  # boundary: one failed job must not stop the runner
        log.exception("job %s (%s) failed", job.id, job.kind)
        return Reply(request_id=job.id, channel=job.channel, status="error", reason="the job failed; see the log")
