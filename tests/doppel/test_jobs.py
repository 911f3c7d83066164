"""doppel/jobs.py: the job message that the bot writes and the job runner reads."""

from __future__ import annotations

import pytest

from doppel.jobs import Job, is_job_id
from doppel.relay import SCHEMA_VERSION, BadMessage


def _job() -> Job:
    return Job(kind="blend", args={"name": "mix", "sources": [{"adapter": "alex@v1", "weight": 0.7}],
                                   "combination": "linear"},
               platform="telegram", bot="main-telegram", channel="telegram:42", requested_by="7")


def test_a_job_survives_the_stream_as_strings():
    job = _job()
    fields = job.to_fields()
    assert all(isinstance(v, str) for v in fields.values()) and fields["v"] == str(SCHEMA_VERSION)
    assert Job.from_fields(fields) == job
    assert is_job_id(job.id) and not is_job_id("req-" + job.id)


@pytest.mark.parametrize("change", [{"v": "999"}, {"args": "[1, 2]"}, {"args": "{not json"},
                                    {"created_at": "yesterday"}, {"kind": None}])
def test_a_damaged_entry_is_a_bad_message_not_a_crash(change):
    fields = _job().to_fields()
    for name, value in change.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    with pytest.raises(BadMessage, match="not a job entry"):
        Job.from_fields(fields)
