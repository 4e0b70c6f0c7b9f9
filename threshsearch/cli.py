"""The ``threshsearch`` command: argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from threshsearch.errors import UserError

EXIT_USAGE = 2


def _add_model_source(parser: argparse.ArgumentParser, torchvision: bool = False) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name (see `threshsearch presets`)")
    source.add_argument("--config", metavar="FILE",
                        help="an architecture config or exported result (YAML or JSON)")
    if torchvision:
        source.add_argument("--model", metavar="torchvision:NAME",
                            help="a torchvision classification model, e.g. torchvision:resnet50")


# ---------------------------------------------------------------------------- presets
def _cmd_presets(args: argparse.Namespace) -> int:
    from threshsearch.presets import PRESETS, get_preset

    print(f"{'preset':<13} {'threshold':>9}  {'stage inputs':<28} modes")
    for name in PRESETS:
        config = get_preset(name)
        stages = config.resolve()
        threshold = "inf" if math.isinf(config.threshold) else f"{config.threshold:g}"
        inputs = ", ".join(str(stage.in_channels) for stage in stages)
        modes = " ".join(stage.mode for stage in stages)
        print(f"{name:<13} {threshold:>9}  {inputs:<28} {modes}")
    return 0


# ---------------------------------------------------------------------------- profile
def _torchvision_model(spec: str, num_classes: int):
    import torch

    from threshsearch.compat import torchvision

    name = spec.split(":", 1)[1]
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise UserError(f"--model: unknown torchvision classification model {name!r}; "
                        f"expected one of {', '.join(available)}")
    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def _format_count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:g}"


def _cmd_profile(args: argparse.Namespace) -> int:
    from threshsearch.api import load_config, profile
    from threshsearch.profiler import profile_model

    num_classes = args.num_classes
    if args.model:
        if not args.model.startswith("torchvision:"):
            raise UserError(f"--model: {args.model!r} is not of the form torchvision:NAME")
        result = profile_model(_torchvision_model(args.model, num_classes or 1000),
                               args.input_size)
        label, config_hash = args.model, None
    else:
        config = load_config(args.preset or args.config, num_classes)
        result = profile(config, args.input_size)
        label, config_hash = args.preset or args.config, config.hash
    if args.json:
        data = {"model": label, **result.to_dict(per_layer=args.per_layer)}
        if config_hash:
            data["config_hash"] = config_hash
        print(json.dumps(data, indent=2))
        return 0
    print(f"{label} at {args.input_size}x{args.input_size}"
          + (f"  (config hash {config_hash})" if config_hash else ""))
    if args.per_layer:
        table = result.table()[["name", "kind", "output_shape", "params", "madd", "flops",
                                "mem_read", "mem_write"]]
        print(table.to_string(index=False))
        print()
    rows = [
        ("parameters", f"{result.params:,}"),
        ("MAdd", _format_count(result.madd)),
        ("Flops", _format_count(result.flops)),
        ("MemR+W", f"{result.memrw_mib:.2f} MiB (read {result.mem_read_mib:.2f}, "
                   f"write {result.mem_write_mib:.2f})"),
        ("CIO", f"{_format_count(result.cio)} elements"),
        ("activations", f"{result.activation_mib:.2f} MiB"),
    ]
    for key, value in rows:
        print(f"  {key:<12} {value}")
    return 0


# ------------------------------------------------------------------------------ train
def _cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from threshsearch.api import train
    from threshsearch.config import read_structured_file
    from threshsearch.folders import MAX_TEST_FRACTION
    from threshsearch.results import is_result_document, read_result
    from threshsearch.train import DEFAULT_RECIPE, get_recipe

    spec = args.preset or args.config
    # An exported search result brings its own dataset, recipe and seed; flags override.
    exported = (read_result(args.config) if args.config
                and is_result_document(read_structured_file(args.config)) else None)
    dataset = args.dataset or (exported and exported.dataset) or "cifar10"
    seed = args.seed if args.seed is not None else (exported and exported.seed) or 0
    if args.recipe or not (exported and exported.recipe):
        recipe = get_recipe(args.recipe or DEFAULT_RECIPE.get(dataset, "cifar10"))
    else:
        recipe = exported.recipe
    recipe = recipe.override(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    out = args.out or f"runs/{Path(spec).stem}-{dataset}-seed{seed}"
    if not 0 <= args.test_fraction < MAX_TEST_FRACTION or (args.test_fraction
                                                           and dataset != "folder"):
        raise UserError(f"--test-fraction: {args.test_fraction:g} is invalid; expected "
                        f"0 <= F < {MAX_TEST_FRACTION} with --dataset folder, else 0")
    bars: list[tqdm] = []  # opened at the first epoch, so errors before it print cleanly

    def progress(metrics) -> None:
        if not bars:
            bars.append(tqdm(total=recipe.epochs, unit="epoch", desc="train",
                             disable=args.quiet, dynamic_ncols=True))
        bar = bars[0]
        bar.n = metrics.epoch
        bar.set_postfix(loss=f"{metrics.train_loss:.3f}", val_acc=f"{metrics.val_accuracy:.3f}",
                        img_s=f"{metrics.images_per_s:.0f}", refresh=False)
        bar.refresh()

    try:
        result = train(spec, dataset=dataset, recipe=recipe, device=args.device,
                       seed=seed, out=out, resume=args.resume, data_root=args.data_root,
                       test_fraction=args.test_fraction, callbacks=[progress])
    finally:
        for bar in bars:
            bar.close()
    final = result.final
    if result.status != "completed":
        print(f"training stopped: {result.reason}", file=sys.stderr)
    if final:
        print(f"epochs {final.epoch}  val top-1 {final.val_accuracy:.4f}  "
              f"{final.images_per_s:.0f} images/s on {result.device}")
    if result.test_accuracy is not None:
        print(f"test top-1 {result.test_accuracy:.4f}  top-5 {result.test_top5:.4f}  (test "
              f"split: {result.extra['test_split']})")
    print(f"wrote {out}/metrics.json, epochs.csv, checkpoint.pt")
    return 0 if result.status == "completed" else 1


# ------------------------------------------------------------------------------ search
def _describe(value) -> str:
    from threshsearch.search.space import Distribution

    if isinstance(value, tuple):
        return "per stage: " + "; ".join(_describe(item) for item in value)
    if isinstance(value, Distribution):
        if value.type == "categorical":
            return f"one of {list(value.choices)}"
        extra = f" step {value.step:g}" if value.step else " log" if value.log else ""
        return f"{value.type} in [{value.low:g}, {value.high:g}]{extra}"
    return f"fixed {value!r}"


def _cmd_validate(args: argparse.Namespace) -> int:
    import optuna

    from threshsearch.api import profile
    from threshsearch.config import ConfigError
    from threshsearch.data import INPUT_SIZE
    from threshsearch.search.space import load_space

    space = load_space(args.space)
    study = space.study
    print(f"{args.space}: valid")
    print(f"  study       {study.name}: {study.n_trials} trials, {study.concurrency} at once, "
          f"storage {space.storage_url}")
    print(f"  sampler     {space.sampler_choice.describe()}")
    print("  objectives  " + ", ".join(f"{name} ({direction})" for name, direction in
                                       zip(space.metric_names, space.directions, strict=True)))
    for constraint in space.constraints:
        bounds = " and ".join(f"{key} {value:g}" for key, value in
                              (("<=", constraint.max), (">=", constraint.min)) if value is not None)
        print(f"  constraint  {constraint.metric} {bounds}")
    print(f"  data        {space.data.dataset} on {space.data.device}; recipe "
          f"{space.recipe or 'default'}: {space.train.epochs} epochs, batch "
          f"{space.train.batch_size}, {space.train.optimizer} lr {space.train.lr:g}")
    early = space.early_stopping
    stopping = "none" if early.kind == "none" else (
        f"{early.kind} (grace {early.grace_epochs} epochs, reduction factor "
        f"{early.reduction_factor})")
    print(f"  early stop  {stopping}; base preset {space.base}")
    measurement = space.measurement
    if space.measures_latency:
        print(f"  latency     p10 of single passes, {measurement.min_passes}+ passes, "
              f"{measurement.min_time_s:g}-{measurement.max_time_s:g} s per network, "
              f"{'device to itself' if measurement.exclusive else 'device shared'}"
              f"{', front re-timed at the end' if measurement.retime_front else ''}")
    else:
        print("  latency     not measured by the trials (no objective or constraint is "
              "latency_ms)")
    if measurement.device_model == "auto":
        print("  predicted   by a device model of this machine's CPU, profiled at the study's "
              "first run")
    elif space.device_model is not None:
        print(f"  predicted   by {measurement.device_model}: {space.device_model.summary()}")
    print(f"  baselines   {', '.join(space.baselines) or 'none'}")
    for name, value in space.parameters.given().items():
        print(f"  space       {name}: {_describe(value)}")
    input_size = INPUT_SIZE
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=study.seed)
    scratch = optuna.create_study(directions=space.directions, sampler=sampler)
    print(f"\n{args.samples} random samples at {input_size}x{input_size}:")
    print(f"  {'hash':<16} {'modes':<44} {'params':>10} {'MAdd':>10} {'MemR+W':>10}")
    for _ in range(args.samples):
        trial = scratch.ask()
        try:
            config, _ = space.sample(trial)
            config.check_input_size(input_size)
        except ConfigError as error:
            print(f"  unbuildable: {error}")
            continue
        figures = profile(config, input_size)
        modes = " ".join(mode[0].upper() for mode in config.modes)
        print(f"  {config.hash:<16} {modes:<44} {figures.params:>10,} "
              f"{_format_count(figures.madd):>10} {figures.memrw_mib:>7.2f} MiB")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.kind == "space":
        from threshsearch.search.space import SearchSpace as model
    elif args.kind == "device-model":
        from threshsearch.devicemodel.fileformat import DeviceModelFile as model
    else:
        from threshsearch.config import ArchitectureConfig as model
    text = model.json_schema()
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _cmd_device_profile(args: argparse.Namespace) -> int:
    from threshsearch.data import INPUT_SIZE
    from threshsearch.search.deviceprofile import profile_space

    model = profile_space(args.space, runtime=args.runtime, threads=args.threads,
                          batch_size=args.batch_size, input_size=args.input_size or INPUT_SIZE,
                          dtype=args.dtype, draws=args.draws,
                          calibration_networks=args.networks, seed=args.seed)
    model.save(args.out)
    profiling = model.data.profiling
    print(f"wrote {args.out}: {profiling.operations_timed} operations and "
          f"{profiling.networks_timed} networks timed in {profiling.seconds:.0f} s")
    print(model.summary())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from threshsearch.search.runner import run_search, with_overrides
    from threshsearch.search.space import load_space

    space = with_overrides(load_space(args.space), args.storage, args.n_trials)
    where = args.address or "a local Ray"
    print(f"study {space.study.name}: {space.study.n_trials} trials on {where}; storage "
          f"{space.storage_url}")
    print(f"sampler {space.sampler_choice.describe()}")
    print(f"watch it live: threshsearch dashboard --storage {space.storage_url}", flush=True)
    summary = run_search(space, address=args.address, quiet=args.quiet)
    study = summary.study
    front = study.best_trials if any(t.values for t in study.trials) else []
    print(f"\ndone in {summary.wall_s:.0f} s: {summary.trials_run} trials in the study, "
          f"{len(front)} on the Pareto front")
    if summary.work.total_s:
        print(f"the workers' time ({summary.work.total_s:.0f} worker-seconds): "
              f"{summary.work.describe()}")
    names = study.metric_names or []
    for trial in sorted(front, key=lambda t: t.number):
        values = "  ".join(f"{name} {value:.4g}" for name, value in
                           zip(names, trial.values, strict=True))
        print(f"  trial {trial.number:>3}  {values}  hash {trial.user_attrs.get('config_hash')}")
    if summary.baselines_trained:
        print(f"baselines: {summary.baselines_trained} trained this run, "
              f"{summary.baselines_s:.0f} s of compute")
    source = (f"--storage {args.storage} --study {study.study_name}" if args.storage
              else f"--space {args.space}")
    _print_verdict(study, f"threshsearch confirm {source}")
    return 0


def _print_verdict(study, confirm_command: str) -> None:
    """Which front members beat which baseline, and by how much, marked provisional; then
    the confirmed verdict, where a confirmation ran."""
    from threshsearch.confirm.verdict import load_confirmation
    from threshsearch.search.baselines import baseline_trials, load_baselines_study, verdict
    from threshsearch.search.storage import pareto_trials

    baselines = baseline_trials(load_baselines_study(study))
    if baselines:
        print("\nthe front against the baselines (trained under the study's recipe), "
              "PROVISIONAL:\n  validation accuracy of one seed, on the split the front was "
              f"chosen by; to confirm it: {confirm_command}")
        for item in verdict(pareto_trials(study), baselines, list(study.metric_names or []),
                            [d.name.lower() for d in study.directions]):
            print("  " + item.describe().replace("\n", "\n  "))
    confirmation = load_confirmation(study)
    if confirmation is not None:
        print()
        print("\n".join(confirmation.lines()))


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import ipaddress

    from optuna_dashboard import run_server

    from threshsearch.search.space import load_space
    from threshsearch.search.storage import open_storage

    url = args.storage or load_space(args.space).storage_url
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        if not args.allow_remote:
            raise UserError(f"--host: {args.host} is reachable from other machines and the "
                            "dashboard has no authentication; add --allow-remote to do it "
                            "anyway")
        print(f"warning: serving the dashboard on {args.host}:{args.port} without any "
              "authentication: anyone who can reach this port can read and change the study",
              file=sys.stderr)
    print(f"optuna-dashboard for {url} on http://{args.host}:{args.port}/ (Ctrl-C stops it)",
          flush=True)
    run_server(open_storage(url), host=args.host, port=args.port)
    return 0


# ----------------------------------------------------------------------------- results
def _add_study_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--space", metavar="FILE", help="the search space of the study")
    source.add_argument("--storage", metavar="URL", help="an Optuna storage URL")
    parser.add_argument("--study", metavar="NAME",
                        help="with --storage: the study (default: the storage's only one)")


def _open_study_source(args: argparse.Namespace):
    """(study, storage URL, the study's folder under studies/)."""
    from threshsearch.search.space import load_space
    from threshsearch.search.storage import load_study

    if args.space:
        space = load_space(args.space)
        url, name = space.storage_url, space.study.name
    else:
        url, name = args.storage, args.study
    study = load_study(url, name)
    return study, url, Path("studies") / study.study_name


def _source_flags(args: argparse.Namespace) -> str:
    """The flags that name the study, as given: for the commands a message suggests."""
    if args.space:
        return f"--space {args.space}"
    return f"--storage {args.storage}" + (f" --study {args.study}" if args.study else "")


def _cmd_confirm(args: argparse.Namespace) -> int:
    import ray

    from threshsearch.confirm.protocols import get_protocol
    from threshsearch.confirm.run import plan_confirmation, run_confirmation
    from threshsearch.confirm.verdict import load_confirmation
    from threshsearch.search.cluster import connect_ray, quiet_ray
    from threshsearch.search.space import StudySettings, load_space

    if args.concurrency is not None and args.concurrency < 1:
        raise UserError(f"--concurrency: {args.concurrency} is invalid; expected an integer "
                        f">= 1")
    study, url, _ = _open_study_source(args)
    settings = load_space(args.space).study if args.space else StudySettings()
    dataset = (study.user_attrs.get("data") or {}).get("dataset", "cifar10")
    baselines = None if args.baselines is None else tuple(
        name for name in args.baselines if name != "none")
    protocol = get_protocol(args.protocol, dataset).with_options(
        seeds=args.seeds, recipe=args.recipe, epochs=args.epochs, baselines=baselines)
    plan = plan_confirmation(study, protocol, args.members)
    print(f"confirming study {study.study_name}: {len(plan.networks)} networks "
          f"({', '.join(plan.networks)}) x {len(plan.seeds)} seeds "
          f"({', '.join(map(str, plan.seeds))}) on {plan.dataset}, test split")
    print(f"protocol {protocol.name} ({protocol.key}): {protocol.description}")
    print(f"records: study {study.study_name}-confirm in {url}", flush=True)
    quiet_ray()
    connect_ray(args.address)
    try:
        summary = run_confirmation(
            study, url, plan, concurrency=args.concurrency or (
                settings.concurrency if args.space else None),
            heartbeat_s=settings.heartbeat_s, grace_s=settings.grace_s, quiet=args.quiet)
    finally:
        ray.shutdown()
    print(f"\ndone in {summary.wall_s:.0f} s: {summary.trained} pairs trained, "
          f"{summary.failed} failed, {summary.already_done} confirmed before")
    confirmation = load_confirmation(study)
    if confirmation is not None:
        print("\n".join(confirmation.lines()))
    if summary.failed:
        print(f"{summary.failed} pairs failed (the reason is in each record); rerun "
              f"`threshsearch confirm {_source_flags(args)}` to try them again")
    return 1 if summary.failed else 0


def _cmd_retime(args: argparse.Namespace) -> int:
    import ray

    from threshsearch.data import INPUT_SIZE
    from threshsearch.search.cluster import connect_ray, quiet_ray
    from threshsearch.search.retime import retime_front
    from threshsearch.search.storage import pareto_trials

    study, _, _ = _open_study_source(args)
    if not pareto_trials(study):
        raise UserError(f"study {study.study_name}: no completed trial, so no front to re-time")
    quiet_ray()
    connect_ray(args.address)
    try:
        retime_front(study, INPUT_SIZE)
    finally:
        ray.shutdown()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from threshsearch.data import INPUT_SIZE
    from threshsearch.results import export_baselines, export_front
    from threshsearch.results.export import export_onnx

    if args.onnx:
        from threshsearch.deploy import require_onnx

        require_onnx("--onnx")
    study, url, folder = _open_study_source(args)
    out = Path(args.out) if args.out else folder / "pareto"
    paths = export_front(study, url, out)
    print(f"{len(paths)} Pareto-optimal networks of study {study.study_name} -> {out}/")
    for path in paths:
        print(f"  {path.name}")
    print("  pareto.csv")
    baselines = export_baselines(study, url, out)
    for path in baselines:
        print(f"  baselines/{path.name}")
    if args.onnx:
        print(f"ONNX ({INPUT_SIZE}x{INPUT_SIZE}, batch 1), each checked against PyTorch:",
              flush=True)
        export_onnx([*paths, *baselines], INPUT_SIZE, progress=lambda path, check: print(
            f"  {path.relative_to(out)}: {check.describe()}", flush=True))
    _print_verdict(study, f"threshsearch confirm {_source_flags(args)}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from threshsearch.data import INPUT_SIZE, NUM_CLASSES
    from threshsearch.results import write_report

    study, _, folder = _open_study_source(args)
    timings = None
    if args.timings:
        from threshsearch.results.timings import DeviceTimings, read_timings
        from threshsearch.search.baselines import BASELINES_STUDY

        timings = DeviceTimings.of_study(read_timings(args.timings), study.study_name,
                                         study.user_attrs.get(BASELINES_STUDY),
                                         f"--timings {args.timings}")
    data = study.user_attrs.get("data") or {}
    classes = data.get("num_classes") or NUM_CLASSES.get(data.get("dataset"), 10)
    out = Path(args.out) if args.out else folder / "report.html"
    write_report(study, out, classes, INPUT_SIZE, png_dir=args.png, timings=timings)
    print(f"wrote {out}" + (f" and PNGs under {args.png}/" if args.png else ""))
    return 0


def _cmd_trials(args: argparse.Namespace) -> int:
    from threshsearch.results import trials_frame

    study, _, folder = _open_study_source(args)
    frame = trials_frame(study)
    out = Path(args.out) if args.out else folder / f"trials.{args.format}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "csv":
        frame.to_csv(out, index=False)
    elif args.format == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_json(out, orient="records", indent=2, date_format="iso")
    print(f"{len(frame)} trials of study {study.study_name} -> {out}")
    return 0


# -------------------------------------------------------------------------------- time
def _cmd_time(args: argparse.Namespace) -> int:
    from threshsearch.results.timings import (
        TimingSettings,
        format_table,
        result_files,
        time_results,
    )

    for flag, value in (("--threads", args.threads), ("--batch-size", args.batch_size),
                        ("--repeats", args.repeats)):
        if value < 1:
            raise UserError(f"{flag}: {value} is invalid; expected 1 or more")
    if not args.seconds > 0:
        raise UserError(f"--seconds: {args.seconds} is invalid; expected a number > 0")
    paths = result_files(args.results)
    settings = TimingSettings(args.runtime, args.device, args.threads, args.batch_size,
                              args.input_size, args.repeats, args.seconds)
    print(f"timing {len(paths)} networks with {args.runtime} ({args.threads} threads, batch "
          f"{args.batch_size}, {args.input_size}x{args.input_size}, {args.repeats} x "
          f">= {args.seconds:g} s each); leave the machine to itself meanwhile",
          file=sys.stderr, flush=True)

    def progress(index: int, total: int, row: dict) -> None:
        print(f"  [{index}/{total}] {row['network']}: {row['measured_ms']:.4g} ms",
              file=sys.stderr, flush=True)

    frame = time_results(paths, settings, progress)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(format_table(frame))
    print(f"wrote {out}; `threshsearch report ... --timings {out}` shows it beside the "
          f"search's figures")
    return 0


# ------------------------------------------------------------------------------- bench
def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from threshsearch.bench import format_bench, run_bench
    from threshsearch.measure import resolve_device

    sizes = args.input_size or ([32, 224] if resolve_device(args.device).type == "cuda"
                                else [32])
    if any(size < 32 for size in sizes):
        raise UserError(f"--input-size: {sizes} is invalid; the presets need 32 or more")
    if not args.json:
        print(f"benchmarking on {resolve_device(args.device)} with "
              f"{torch.get_num_threads()} threads at {sizes}...", file=sys.stderr)

    def progress(message: str) -> None:
        if not args.json:
            print(f"  {message}", file=sys.stderr, flush=True)

    result = run_bench(sizes, args.device, args.repeats, train_batch=args.train_batch,
                       progress=progress)
    print(json.dumps(result, indent=2) if args.json else format_bench(result))
    return 0


# ------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threshsearch",
        description="Neural architecture search for the ThreshNet family (DenseNet + HarDNet).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    presets = commands.add_parser("presets", help="list the preset architectures")
    presets.set_defaults(handler=_cmd_presets)

    profile = commands.add_parser(
        "profile", help="params, MAdd, Flops, MemR+W and CIO of a model (torchstat's rules)")
    _add_model_source(profile, torchvision=True)
    profile.add_argument("--input-size", type=int, default=224, metavar="N")
    profile.add_argument("--num-classes", type=int, default=None, metavar="N")
    profile.add_argument("--per-layer", action="store_true", help="show every leaf module")
    profile.add_argument("--json", action="store_true", help="print one JSON object")
    profile.set_defaults(handler=_cmd_profile)

    from threshsearch.data import DATASETS
    from threshsearch.measure import DEVICES
    from threshsearch.train import RECIPES

    train = commands.add_parser("train", help="train a preset, config or exported result")
    _add_model_source(train)
    train.add_argument("--dataset", choices=DATASETS,
                       help="default: an exported result's, else cifar10")
    train.add_argument("--recipe", choices=list(RECIPES),
                       help="training recipe (default: an exported result's, else the "
                            "paper's for the dataset)")
    train.add_argument("--epochs", type=int, metavar="N")
    train.add_argument("--batch-size", type=int, metavar="N")
    train.add_argument("--lr", type=float, metavar="LR")
    train.add_argument("--device", default="auto", choices=DEVICES)
    train.add_argument("--seed", type=int, help="default: an exported result's, else 0")
    train.add_argument("--out", metavar="DIR",
                       help="where metrics.json, epochs.csv and checkpoint.pt go "
                            "(default: runs/<name>-<dataset>-seed<seed>)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint under --out")
    train.add_argument("--data-root", default="data", metavar="DIR",
                       help="where torchvision datasets are (downloaded on first use)")
    train.add_argument("--test-fraction", type=float, default=0.0, metavar="F",
                       help="--dataset folder without a test/ folder: hold out this share of "
                            "each class as the test split (default 0: test on validation)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)

    validate = commands.add_parser(
        "validate", help="check a search-space file, sample a few configs and profile them")
    validate.add_argument("--space", required=True, metavar="FILE")
    validate.add_argument("--samples", type=int, default=3, metavar="N")
    validate.set_defaults(handler=_cmd_validate)

    schema = commands.add_parser(
        "schema", help="write the JSON Schema of space, config or device-model files")
    schema.add_argument("kind", choices=("space", "config", "device-model"))
    schema.add_argument("--out", help="the file to write (default: standard output)")
    schema.set_defaults(handler=_cmd_schema)

    from threshsearch.devicemodel.runtimes import DTYPES, RUNTIMES
    from threshsearch.search.deviceprofile import CALIBRATION_NETWORKS, SPACE_DRAWS

    device_profile = commands.add_parser(
        "device-profile", help="profile this machine once for a space's networks: a device "
        "model that predicts their latency (run it on the deployment device, alone)")
    device_profile.add_argument("--space", required=True, metavar="SPACE.yaml")
    device_profile.add_argument("--out", required=True, metavar="FILE.json")
    device_profile.add_argument("--runtime", default="torch", choices=RUNTIMES)
    device_profile.add_argument("--threads", type=int, default=1, metavar="N")
    device_profile.add_argument("--batch-size", type=int, default=1, metavar="N")
    device_profile.add_argument("--input-size", type=int, default=None, metavar="N",
                                help="default: the datasets' 32")
    device_profile.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    device_profile.add_argument("--networks", type=int, default=CALIBRATION_NETWORKS,
                                metavar="N", help="whole networks timed for the calibration")
    device_profile.add_argument("--draws", type=int, default=SPACE_DRAWS, metavar="N",
                                help="networks drawn from the space whose operations are timed")
    device_profile.add_argument("--seed", type=int, default=0)
    device_profile.set_defaults(handler=_cmd_device_profile)

    run = commands.add_parser("run", help="run or resume a search (Ray Tune + Optuna)")
    run.add_argument("--space", required=True, metavar="FILE", help="a search-space YAML file")
    run.add_argument("--address", metavar="ADDR",
                     help="an existing Ray cluster (default: start a local Ray)")
    run.add_argument("--storage", metavar="URL",
                     help="an Optuna storage URL (default: the space's, else SQLite under "
                          "studies/<name>/)")
    run.add_argument("--n-trials", type=int, metavar="N",
                     help="total trials in the study, those already there included")
    run.add_argument("--quiet", action="store_true", help="no per-trial lines")
    run.set_defaults(handler=_cmd_run)

    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard for a study")
    where = dashboard.add_mutually_exclusive_group(required=True)
    where.add_argument("--space", metavar="FILE", help="the search space whose storage to show")
    where.add_argument("--storage", metavar="URL", help="an Optuna storage URL")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to bind (default 127.0.0.1, this machine only)")
    dashboard.add_argument("--allow-remote", action="store_true",
                           help="allow a --host other machines can reach (no authentication!)")
    dashboard.set_defaults(handler=_cmd_dashboard)

    retime = commands.add_parser(
        "retime", help="time the front's networks again, one at a time, with the machine "
                       "to themselves")
    _add_study_source(retime)
    retime.add_argument("--address", metavar="ADDR",
                        help="the Ray cluster the study ran on (default: a local Ray)")
    retime.set_defaults(handler=_cmd_retime)

    from threshsearch.confirm.protocols import DEFAULT_SEEDS, PROTOCOLS

    confirm = commands.add_parser(
        "confirm", help="retrain the front and the baselines from scratch with several "
                        "seeds, test them, and give a verdict with its uncertainty")
    _add_study_source(confirm)
    confirm.add_argument("--address", metavar="ADDR",
                         help="a Ray cluster to run on (default: start a local Ray)")
    confirm.add_argument("--protocol", default="search", choices=list(PROTOCOLS),
                         help="search (default): each network under the recipe the search "
                              "trained it with; paper-cifar10 / paper-cifar100 / paper-svhn: "
                              "the paper's recipe and its four models")
    confirm.add_argument("--seeds", type=int, metavar="K",
                         help=f"seeds per network (default {DEFAULT_SEEDS})")
    confirm.add_argument("--members", type=int, nargs="+", metavar="N",
                         help="trial numbers to confirm (default: the front)")
    confirm.add_argument("--baselines", nargs="+", metavar="NAME",
                         help="presets to confirm beside them, or none (default: the "
                              "protocol's: the study's trained baselines, or the paper's)")
    confirm.add_argument("--recipe", choices=list(RECIPES),
                         help="train every network under this recipe instead")
    confirm.add_argument("--epochs", type=int, metavar="N",
                         help="epochs instead of the recipe's")
    confirm.add_argument("--concurrency", type=int, metavar="N",
                         help="pairs at once (default: the space's study.concurrency, or "
                              "as many as the cluster holds)")
    confirm.add_argument("--quiet", action="store_true", help="no progress bar or pair lines")
    confirm.set_defaults(handler=_cmd_confirm)

    export = commands.add_parser(
        "export", help="write each Pareto-optimal network as a self-contained YAML file")
    _add_study_source(export)
    export.add_argument("--out", metavar="DIR", help="default: studies/<name>/pareto")
    export.add_argument("--onnx", action="store_true",
                        help="also write each network as <name>.onnx, checked against "
                             "PyTorch's output (needs threshsearch[onnx])")
    export.set_defaults(handler=_cmd_export)

    report = commands.add_parser("report", help="write the study's plotly HTML report")
    _add_study_source(report)
    report.add_argument("--out", metavar="FILE.html", help="default: studies/<name>/report.html")
    report.add_argument("--png", metavar="DIR",
                        help="also write each figure as PNG (needs kaleido and Chrome)")
    report.add_argument("--timings", metavar="FILE.csv",
                        help="networks timed on a deployment device (`threshsearch time`), "
                             "shown beside the search's figures")
    report.set_defaults(handler=_cmd_report)

    trials = commands.add_parser("trials", help="the study's trials as a table")
    _add_study_source(trials)
    trials.add_argument("--format", choices=("csv", "parquet", "json"), default="csv")
    trials.add_argument("--out", metavar="FILE", help="default: studies/<name>/trials.FORMAT")
    trials.set_defaults(handler=_cmd_trials)

    from threshsearch.results.timings import RUNTIMES

    timing = commands.add_parser(
        "time", help="time exported networks on this machine (the deployment device), "
                     "beside the search's figures")
    timing.add_argument("results", nargs="+", metavar="RESULTS",
                        help="exported result files, or folders `threshsearch export` wrote")
    timing.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="torch (eager, default) or onnxruntime (CPU; needs "
                             "threshsearch[onnx])")
    timing.add_argument("--device", default="cpu", choices=DEVICES,
                        help="torch's device (default cpu)")
    timing.add_argument("--threads", type=int, default=1, metavar="N")
    timing.add_argument("--batch-size", type=int, default=1, metavar="B")
    timing.add_argument("--input-size", type=int, default=32, metavar="S")
    timing.add_argument("--repeats", type=int, default=3, metavar="K",
                        help="independent estimates per network; its figure is their "
                             "median (default 3)")
    timing.add_argument("--seconds", type=float, default=1.0, metavar="S",
                        help="each estimate times at least this long (default 1; shorter "
                             "is quicker and less certain)")
    timing.add_argument("--out", default="timings.csv", metavar="FILE.csv")
    timing.set_defaults(handler=_cmd_time)

    bench = commands.add_parser(
        "bench", help="latency and training throughput of the paper's models, side by side")
    bench.add_argument("--input-size", type=int, nargs="+", metavar="N",
                       help="default: 32 on CPU, 32 and 224 on CUDA")
    bench.add_argument("--device", default="auto", choices=DEVICES)
    bench.add_argument("--repeats", type=int, default=5, metavar="N")
    bench.add_argument("--train-batch", type=int, default=64, metavar="N")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UserError as error:
        print(f"threshsearch {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"threshsearch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
