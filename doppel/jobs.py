"""The job message: a task the owner queues from a chat (``/clone blend``) for the job runner.

The bot writes a ``Job`` to the ``Keys.jobs`` stream (``bot/owner_commands.py``); the runner in
``training/adapters/jobs.py`` reads it and answers on the bot's reply stream with the job id as the
request id. Both ends use this one definition, like the relay messages in ``doppel/relay.py``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from doppel.relay import SCHEMA_VERSION, BadMessage


@dataclass(frozen=True)
class Job:
    """A task the owner queued from a chat, as an entry of the ``Keys.jobs`` stream.

    Fields (all strings): ``v`` schema version, ``id`` ("job-<hex>"), ``kind`` ("blend"),
    ``args`` (JSON; blend: ``{"name": "mix", "sources": [{"adapter": "a", "weight": 0.7}, ...],
    "combination": "linear"}``, the same shape as a blend card's ``parents``), ``platform``,
    ``bot``, ``channel``, ``requested_by`` (platform user id), ``created_at`` (epoch seconds).

    The runner reads it through the ``Keys.jobs_group`` consumer group and, when done, writes
    ``Reply(request_id=job.id, channel=job.channel, status="ok", parts=("<one line result>",))``
    (``status="error"`` with ``reason`` on failure) to ``Keys.replies(job.bot)``.
    """

    kind: str
    args: dict
    platform: str
    bot: str
    channel: str
    requested_by: str
    id: str = field(default_factory=lambda: f"job-{uuid.uuid4().hex}")
    created_at: float = field(default_factory=time.time)

    def to_fields(self) -> dict[str, str]:
        return {"v": str(SCHEMA_VERSION), "id": self.id, "kind": self.kind,
                "args": json.dumps(self.args, ensure_ascii=False), "platform": self.platform,
                "bot": self.bot, "channel": self.channel, "requested_by": self.requested_by,
                "created_at": repr(self.created_at)}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Job:
        try:
            args = json.loads(fields["args"])
            if fields["v"] != str(SCHEMA_VERSION) or not isinstance(args, dict):
                raise ValueError("bad version or args")
            return cls(kind=fields["kind"], args=args, platform=fields["platform"], bot=fields["bot"],
                       channel=fields["channel"], requested_by=fields["requested_by"], id=fields["id"],
                       created_at=float(fields["created_at"]))
        except (KeyError, ValueError, RecursionError) as exc:
            raise BadMessage(f"not a job entry: {str(exc)[:100]}") from None


def is_job_id(request_id: str) -> bool:
    return request_id.startswith("job-")
