"""The web chat's side panel: which adapter answers in a channel, its card and eval scores.

Reads what ``/clone status`` reads: the channel's route, else the default route (Redis, keys from
``doppel.relay.Keys``), and the card ``card.json`` of that version in the registry
(``doppel.registry``: files and Redis only, no model libraries). ``eval.png``, the likeness
chart ``doppel eval`` draws, is kept in the published version's directory
(``training/adapters/publish.py``), so the page shows it from there; the card's ``doppel eval
privacy`` result shows as "N raw / M after filter" (``privacy_line``). ``watch`` follows the registry's
event stream, so the page refreshes the moment an adapter is published, routed or rolled back.

Tested in ``tests/bot/webchat/test_platform.py`` (route, card, scores and chart following the registry) and
``tests/bot/webchat/test_browser.py`` (the panel in a real browser); the privacy line in
``tests/training/likeness/test_privacy.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from doppel.errors import InputError
from doppel.registry import AdapterRef, Registry, version_dir
from doppel.relay import Keys

log = logging.getLogger(__name__)

CHART_FILE = "eval.png"
NO_ADAPTER = ("No adapter is routed yet, so the clone answers with the base model. Train one "
              "(doppel train run), check it (doppel eval), then doppel adapters publish.")


def chart_path(root: Path, ref_text: str) -> Path | None:
    """The likeness chart of ``name@vN``, if that version has one (a bad reference: InputError)."""
    path = version_dir(root, AdapterRef.parse(ref_text)) / CHART_FILE
    return path if path.is_file() else None


async def read_panel(redis, keys: Keys, root: Path, channel: str = "") -> dict:
    """What the panel shows for ``channel`` (JSON-ready)."""
    route = await redis.hget(keys.channel_routes, channel) if channel else None
    active = route or await redis.get(keys.default_route)
    if not active:
        return {"adapter": None, "message": NO_ADAPTER}
    try:
        ref = AdapterRef.parse(active)
        # Only the registry's file side is read here; routes came from the async client above.
        card = await asyncio.to_thread(Registry(root, None, keys).card, ref)
    except (InputError, OSError, ValueError) as exc:
        return {"adapter": None, "ref": active,
                "message": f"{active} is routed, but its card cannot be read on this host: {exc}"}
    has_chart = await asyncio.to_thread(lambda: chart_path(root, str(ref)) is not None)
    privacy = privacy_line(card.privacy)
    return {
        "adapter": {
            "ref": str(ref), "name": card.name, "version": card.version, "base_model": card.base_model,
            "rank": card.rank, "created_at": card.created_at, "notes": card.notes,
            "parents": card.parents, "combination": card.combination,
            "samples": (card.data or {}).get("samples"),
        },
        "scope": "this chat" if route else "default",
        "scores": scores(card.eval) + ([{"label": "Privacy (extraction attempts)", "value": privacy}]
                                       if privacy else []),
        "privacy": privacy,
        "chart": f"api/adapter/chart?ref={ref}" if has_chart else None,
    }


def privacy_line(privacy: dict) -> str | None:
    """``doppel eval privacy`` in the card as "N raw / M after filter" (None: not measured)."""
    try:
        return f"{int(privacy['raw']['hits'])} raw / {int(privacy['filtered']['hits'])} after filter"
    except (KeyError, TypeError, ValueError):
        return None


def _number(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def scores(evaluation: dict) -> list[dict[str, str]]:
    """The card's eval scores as labelled rows, the headline ones first (``training.likeness.report.summary``)."""
    if not evaluation:
        return []
    rows: list[dict[str, str]] = []
    done = set()

    def row(label: str, value: str, *keys_used: str) -> None:
        rows.append({"label": label, "value": value})
        done.update(keys_used)

    ppl = evaluation.get("perplexity")
    if isinstance(evaluation.get("likeness"), int | float):
        row("Likeness (lower is closer)", _number(evaluation["likeness"]), "likeness")
    if isinstance(ppl, dict) and {"adapter", "base"} <= ppl.keys():
        ratio = f" (×{_number(ppl['ratio'])})" if "ratio" in ppl else ""
        row("Perplexity: clone / base", f"{_number(ppl['adapter'])} / {_number(ppl['base'])}{ratio}", "perplexity")
    style = evaluation.get("style_distance")
    if isinstance(style, dict) and {"adapter", "base"} <= style.keys():
        row("Style distance: clone / base", f"{_number(style['adapter'])} / {_number(style['base'])}",
            "style_distance")
    phrases = evaluation.get("phrase_rate")
    if isinstance(phrases, dict) and {"owner", "adapter"} <= phrases.keys():
        row("Owner's phrases: clone / owner", f"{_number(phrases['adapter'])} / {_number(phrases['owner'])}",
            "phrase_rate")
    labels = {"ai_ism_rate": "AI-isms per reply", "heldout_samples": "Held-out replies", "publishable": "Publishable"}
    for key, label in labels.items():
        if key in evaluation:
            row(label, _number(evaluation[key]), key)
    if isinstance(evaluation.get("evaluated_at"), int | float):
        row("Evaluated", time.strftime("%Y-%m-%d %H:%M", time.localtime(evaluation["evaluated_at"])), "evaluated_at")
    for key, value in evaluation.items():  # scores a newer `doppel eval` adds, shown plainly
        if key not in done and not isinstance(value, dict | list):
            row(key.replace("_", " "), _number(value), key)
    return rows


async def watch(redis, keys: Keys, on_change: Callable[[dict], None], *, block_ms: int = 1000) -> None:
    """Call ``on_change(event)`` for each registry event from now on, until cancelled."""
    last = "$"
    while True:
        try:
            answer = await redis.xread({keys.registry_events: last}, block=block_ms, count=100)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # boundary: Redis restarting; the panel catches up on the next event
            log.warning("web: cannot read the registry events (%s); retrying", exc)
            await asyncio.sleep(1.0)
            continue
        for _stream, entries in answer or ():
            for entry_id, fields in entries:
                last = entry_id
                on_change(dict(fields))
