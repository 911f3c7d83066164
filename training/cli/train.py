"""``doppel train``, ``doppel eval`` and ``doppel adapters``: training, evaluation and the registry from the CLI.

Defaults come from ``[train]`` in doppel.toml (preset, max_ppl_ratio, eval_samples); what the
workers serve -- base model, largest LoRA rank, the registry's directory -- from ``[model]``.
Model libraries are imported inside the command bodies, so ``doppel --help`` stays fast; the
registry commands (list, use, rollback, remove) never import them at all. ``doppel eval TARGET`` is
the likeness eval (``eval likeness``, the group's default); ``doppel eval privacy TARGET`` the extraction battery.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from doppel.config import settings_of
from doppel.errors import InputError
from doppel.registry import open_registry

console = Console(stderr=True, highlight=False, soft_wrap=True)


# -- train ----------------------------------------------------------------------------------------

@click.group(name="train")
def train() -> None:
    """Fine-tune a LoRA adapter on the built samples (transformers + peft, CPU or GPU)."""


@train.command("run")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help="Samples JSONL from `doppel data build` (default: <data_dir>/dataset/samples.jsonl).")
@click.option("--preset", help="Preset name or .toml file (default: [train] preset). See `doppel train presets`.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: checkpoints, log, final adapter (default: <data_dir>/runs/<preset>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Delete the run in --out and start over.")
@click.option("--base-model", help="Base model: hub id, local dir, or tiny/smollm2 (default: the preset's).")
@click.option("--rank", type=click.IntRange(min=1), help="LoRA rank.")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), help="LoRA alpha.")
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True), help="LoRA dropout.")
@click.option("--target-modules", help='"all-linear" or comma-separated module names (q_proj,v_proj).')
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), help="Learning rate.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), help="Epochs.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps (overrides --epochs).")
@click.option("--max-length", type=click.IntRange(min=16), help="Longest sample in tokens.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Samples per step.")
@click.option("--save-steps", type=click.IntRange(min=1), help="Checkpoint every N steps.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Any other preset key (repeatable).")
@click.pass_obj
def train_run(obj, data, preset, out_dir, resume, overwrite, base_model, assignments, **options) -> None:
    """Train an adapter; Ctrl-C saves a checkpoint, and --resume continues from it."""
    from training.sft.presets import load_preset, parse_assignments
    from training.sft.trainer import train as run_training

    settings = settings_of(obj)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite contradict each other")
    preset = preset or settings.train.preset
    overrides = {**parse_assignments(assignments), **{k: v for k, v in options.items() if v is not None}}
    if base_model:
        overrides["base_model"] = base_model
    config = load_preset(preset, settings.train.presets_dir, overrides)
    from training.sft.modeling import same_base

    if not same_base(config.base_model, settings.model.base, resolve=False):
        console.print(f"[yellow]note: training on {escape(str(config.base_model))}, but the workers serve "
                      f"{escape(str(settings.model.base))} "
                      "([model] base): publishing will refuse this adapter until they match[/]")
    data = data or Path(settings.data_dir) / "dataset" / "samples.jsonl"
    out_dir = out_dir or Path(settings.data_dir) / "runs" / Path(preset).stem
    result = run_training(config, data, out_dir, resume=resume, overwrite=overwrite, console=console)
    console.print(escape(f"done in {result.seconds:.0f}s: {result.adapter_dir}\nnext: doppel eval {out_dir} "
                         f"[--checkpoints], then doppel adapters publish {result.adapter_dir} --name NAME"))


@train.command("presets")
@click.pass_obj
def train_presets(obj) -> None:
    """List the training presets."""
    from training.sft.presets import available_presets, load_preset

    settings = settings_of(obj)
    table = Table(title="presets", title_justify="left")
    for column in ("name", "description", "settings"):
        table.add_column(column)
    for name in sorted(available_presets(settings.train.presets_dir)):
        config = load_preset(name, settings.train.presets_dir)
        mark = " (default)" if name == settings.train.preset else ""
        table.add_row(name + mark, config.description, config.summary())
    Console().print(table)


# -- eval -----------------------------------------------------------------------------------------

def _resolve_target(target: str, settings) -> tuple[Path, str]:
    """(directory, kind) for a run directory, an adapter directory or a registry name[@vN]."""
    path = Path(target).expanduser()
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            return path, "adapter"
        if (path / "run.json").is_file() or (path / "checkpoints").is_dir():
            return path, "run"
        raise InputError(f"{path} is neither an adapter nor a training run directory")
    from doppel.registry import NAME_PATTERN

    if NAME_PATTERN.match(target.partition("@v")[0]):
        with open_registry(settings) as registry:
            return registry.path(registry.resolve_ref(target)), "registry"
    raise InputError(f"{target}: no such directory or adapter name")


class DefaultGroup(click.Group):
    """A group whose first argument, when it names none of its commands, goes to its ``default``
    command: ``doppel eval TARGET`` is ``doppel eval likeness TARGET``, next to ``doppel eval privacy``."""

    def __init__(self, *args, default: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


@click.group(name="eval", cls=DefaultGroup, default="likeness")
def eval_cmd() -> None:
    """Measure an adapter: `doppel eval TARGET` (its likeness, the default) or `doppel eval privacy TARGET`.

    TARGET is an adapter directory, a training run directory or a published name[@vN].
    """


def _final_adapter(path: Path, kind: str) -> Path:
    if kind != "run":
        return path
    if not (path / "adapter" / "adapter_config.json").is_file():
        raise InputError(f"{path} has no final adapter yet; use --checkpoints, or --resume the training")
    return path / "adapter"


@eval_cmd.command("likeness")
@click.argument("target")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help="Samples JSONL (default: the one the adapter was trained on).")
@click.option("--checkpoints", "all_checkpoints", is_flag=True,
              help="TARGET is a run directory: evaluate every checkpoint and pick the best step.")
@click.option("--samples", type=click.IntRange(min=1),
              help="Held-out prompts each model answers (default: [train] eval_samples).")
@click.option("--no-generate", is_flag=True, help="Perplexity only: skip the generated-reply style profile.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where eval.json and eval.png go (default: the adapter's directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_obj
def eval_likeness(obj, target, data, all_checkpoints, samples, no_generate, out_dir, as_json) -> None:
    """How much TARGET (adapter dir, run dir or published name) sounds like its owner, vs the base model."""
    from training.likeness.evaluate import EvalOptions, evaluate_adapter, evaluate_run

    settings = settings_of(obj)
    options = EvalOptions(samples=samples or settings.train.eval_samples, generate=not no_generate,
                          max_ppl_ratio=settings.train.max_ppl_ratio)
    path, kind = _resolve_target(target, settings)
    shown = None if as_json else Console()
    if all_checkpoints:
        if kind != "run":
            raise InputError(f"--checkpoints needs a training run directory (`doppel train run --out`), not {path}")
        result = evaluate_run(path, data, options, console=shown)
    else:
        path = _final_adapter(path, kind)
        if kind == "registry" and out_dir is None:
            out_dir = Path(settings.data_dir) / "evals" / f"{path.parent.name}@{path.name}"
        result = evaluate_adapter(path, data, options, out_dir=out_dir, console=shown)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@eval_cmd.command("privacy")
@click.argument("target")
@click.option("--known", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Known private values to look for, as planted_pii.json (default: the demo persona's).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Answers per attempt, each sampled with another seed.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where privacy.json goes (default: the adapter's directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_obj
def eval_privacy(obj, target, known, repeats, out_dir, as_json) -> None:
    """Try to make TARGET give up private data (English and Chinese extraction attempts); count what
    its raw replies hold and what is left after the worker's output filter. Published: into its card."""
    from doppel.registry import AdapterRef
    from training.likeness.privacy import PrivacyOptions, card_summary, evaluate_privacy

    settings = settings_of(obj)
    path, kind = _resolve_target(target, settings)
    path = _final_adapter(path, kind)
    if kind == "registry" and out_dir is None:
        out_dir = Path(settings.data_dir) / "evals" / f"{path.parent.name}@{path.name}"
    report = evaluate_privacy(path, settings, known=known, options=PrivacyOptions.from_settings(settings,
                              repeats=repeats), out_dir=out_dir, console=None if as_json else Console())
    if kind == "registry":
        with open_registry(settings) as registry:
            registry.record_privacy(AdapterRef.parse(f"{path.parent.name}@{path.name}"), card_summary(report))
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))


# -- adapters -------------------------------------------------------------------------------------

@click.group(name="adapters")
def adapters() -> None:
    """The adapter registry: list, publish, use, roll back, blend and remove adapters."""


@adapters.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def adapters_list(obj, as_json: bool) -> None:
    """Published adapters, their scores, and which one each route uses."""
    settings = settings_of(obj)
    with open_registry(settings) as registry:
        cards = registry.list()
        default, channels = registry.routes()
    if as_json:
        click.echo(json.dumps({"adapters": [c.to_dict() for c in cards], "default": default, "channels": channels},
                              indent=2, ensure_ascii=False))
        return
    table = Table(title=f"adapters in {settings.adapters_root()}", title_justify="left")
    for column in ("adapter", "base", "rank", "ppl ratio", "style", "parents", "routes"):
        table.add_column(column)
    for card in cards:
        ref = str(card.ref)
        routes = (["default"] if ref == default else []) + [ch for ch, r in channels.items() if r == ref]
        ratio = card.eval.get("perplexity", {}).get("ratio")
        style = card.eval.get("style_distance", {}).get("adapter")
        parents = ", ".join(f"{p['adapter']}:{p['weight']:g}" for p in card.parents)
        table.add_row(ref, card.base_model, str(card.rank), "-" if ratio is None else f"{ratio:.3f}",
                      "-" if style is None else f"{style:.3f}", parents or "-", ", ".join(routes) or "-")
    Console().print(table)


@adapters.command("publish")
@click.argument("adapter_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Registry name (lowercase letters, digits, - _ .).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help="Samples for the perplexity check when the adapter has no eval.json.")
@click.option("--use", is_flag=True, help="Also route the default to the new version.")
@click.option("--force", is_flag=True, help="Publish without (or despite) the held-out perplexity check.")
@click.pass_obj
def adapters_publish(obj, adapter_dir, name, data, use, force) -> None:
    """Validate ADAPTER_DIR (an adapter or a run directory) and publish it as the next version of NAME."""
    from training.adapters.publish import publish, serve_spec

    settings = settings_of(obj)
    if (adapter_dir / "adapter").is_dir() and not (adapter_dir / "adapter_config.json").is_file():
        adapter_dir = adapter_dir / "adapter"
    with open_registry(settings) as registry:
        ref = publish(registry, adapter_dir, name, serve_spec(settings), data=data, force=force, use=use)
        route = registry.route()
    click.echo(f"published {ref}; default route: {route or '-'}")


@adapters.command("use")
@click.argument("adapter")
@click.option("--channel", help="Route only this channel (platform-scoped key, e.g. discord:123).")
@click.pass_obj
def adapters_use(obj, adapter: str, channel: str | None) -> None:
    """Route the default (or one channel) to ADAPTER (name = its latest version, or name@vN)."""
    with open_registry(settings_of(obj)) as registry:
        ref = registry.use(adapter, channel=channel)
    click.echo(f"{channel or 'default'} -> {ref}")


@adapters.command("rollback")
@click.pass_obj
def adapters_rollback(obj) -> None:
    """Route the default back to the adapter it used before the last `use`."""
    with open_registry(settings_of(obj)) as registry:
        ref = registry.rollback()
    click.echo(f"default -> {ref}")


@adapters.command("remove")
@click.argument("adapter")
@click.pass_obj
def adapters_remove(obj, adapter: str) -> None:
    """Delete a published version (name@vN); refused while a route uses it."""
    from doppel.registry import AdapterRef

    with open_registry(settings_of(obj)) as registry:
        ref = AdapterRef.parse(adapter) if "@v" in adapter else None
        if ref is None:
            raise InputError(f"{adapter!r}: name the version to remove, e.g. {adapter}@v1")
        registry.card(ref)
        registry.remove(ref)
    click.echo(f"removed {ref}")


@adapters.command("blend")
@click.argument("weighted", nargs=-1, required=True, metavar="ADAPTER:WEIGHT...")
@click.option("--name", required=True, help="Registry name of the blend.")
@click.option("--combination", type=click.Choice(["linear", "svd", "cat"]), default="linear", show_default=True,
              help="linear keeps the (equal) rank; svd mixes exactly then truncates; cat adds the ranks.")
@click.option("--rank", type=click.IntRange(min=1), help="Rank of an svd blend (default: the largest parent's).")
@click.option("--sweep", is_flag=True, help="Evaluate a grid of weightings and keep the best.")
@click.option("--step", type=click.FloatRange(min=0.05, max=0.5), default=0.25, show_default=True,
              help="Grid step of --sweep (weights summing to 1).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help="Samples to evaluate on (default: the first parent's training data).")
@click.option("--samples", type=click.IntRange(min=1), help="Held-out prompts per model for the style profile.")
@click.option("--no-generate", is_flag=True, help="Rank by perplexity only.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the blend is written (default: <data_dir>/blends/<name>).")
@click.option("--no-publish", is_flag=True, help="Only write the blend; do not publish it.")
@click.option("--use", is_flag=True, help="Route the default to the published blend.")
@click.option("--force", is_flag=True, help="Publish despite the perplexity check.")
@click.pass_obj
def adapters_blend(obj, weighted, name, combination, rank, sweep, step, data, samples, no_generate, out_dir,
                   no_publish, use, force) -> None:
    """Blend published adapters (or adapter dirs) by weight, e.g. chat:0.7 articles:0.2 --name me-v3."""
    from doppel.registry import validate_name
    from training.adapters.blend import Blender, parents_from_specs, sweep_grid
    from training.adapters.publish import publish, serve_spec
    from training.likeness.evaluate import EvalOptions, Evaluator, load_heldout
    from training.likeness.report import render as render_report
    from training.likeness.report import write_report

    settings = settings_of(obj)
    validate_name(name)
    out_dir = out_dir or Path(settings.data_dir) / "blends" / name
    spec = serve_spec(settings)
    options = EvalOptions(samples=samples or settings.train.eval_samples, generate=not no_generate,
                          max_ppl_ratio=settings.train.max_ppl_ratio)
    with open_registry(settings) as registry:
        parents = parents_from_specs(weighted, settings, registry)
        blender = Blender(parents, combination, spec.max_lora_rank, rank)
        weights = [p.weight for p in parents]
        data_path = data or blender.meta[0].get("data", {}).get("path")
        evaluator = None
        if data_path and Path(data_path).is_file():
            evaluator = Evaluator(blender.model, blender.tokenizer, load_heldout(Path(data_path), blender.meta[0]),
                                  options)
        elif sweep:
            raise InputError("--sweep needs held-out data: pass --data samples.jsonl")
        if sweep:
            ranked = blender.sweep(evaluator, sweep_grid(weights, step))
            table = Table(title=f"sweep ({combination})", title_justify="left")
            for column in ("weights", "ppl ratio", "likeness"):
                table.add_column(column, justify="right")
            for row in ranked:
                table.add_row(" ".join(f"{p.label}:{w:g}" for p, w in zip(parents, row["weights"], strict=True)),
                              f"{row['report']['perplexity']['ratio']:.3f}", f"{row['report']['likeness']:.3f}")
            Console().print(table)
            weights = ranked[0]["weights"]
        blender.add(weights)
        path = blender.save("blend", out_dir, weights)
        if evaluator is not None:
            report = evaluator.score("blend")
            report["adapter"] = str(path)
            write_report(report, path)
            render_report(report, Console())
        shown = " ".join(f"{p.label}:{w:g}" for p, w in zip(parents, weights, strict=True))
        click.echo(f"blend {shown} ({combination}, rank {blender.rank}) written to {path}")
        if not no_publish:
            ref = publish(registry, path, name, spec, data=Path(data_path) if data_path else None, force=force, use=use)
            click.echo(f"published {ref}")


@adapters.command("jobs")
@click.option("--burst", is_flag=True, help="Run what is queued, then exit.")
@click.pass_obj
def adapters_jobs(obj, burst: bool) -> None:
    """Run the jobs owners queue from chats (/clone blend ... as NAME) and answer in that chat."""
    from doppel.redis_client import sync_client
    from doppel.redis_server import redis_url
    from training.adapters.jobs import run_jobs

    settings = settings_of(obj)
    with redis_url(settings) as url:
        client = sync_client(url)
        try:
            done = run_jobs(settings, client, burst=burst)
        except KeyboardInterrupt:
            done = 0
        finally:
            client.close()
    click.echo(f"{done} job(s) run")
