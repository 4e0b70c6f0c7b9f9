"""The commands of a search: validate, run, dashboard, retime and confirm; and how a command
names its study (--space or --storage and --study)."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from threshsearch.cli.models import format_count
from threshsearch.errors import UserError


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
              f"{', CUDA graph replays' if measurement.cuda_graph else ''}"
              f"{', front re-timed at the end' if measurement.retime_front else ''}")
        if measurement.cuda_graph and space.data.device == "cpu":
            print("  note        measurement.cuda_graph has no effect: data.device is cpu, "
                  "where eager passes are timed")
    else:
        print("  latency     not measured by the trials (no objective or constraint is "
              "latency_ms)")
    if measurement.device_model == "auto":
        print("  predicted   by a device model of this machine's CPU, profiled at the study's "
              "first run")
    elif space.device_model is not None:
        print(f"  predicted   by {measurement.device_model}: {space.device_model.summary()}")
        if warning := space.device_model.steadiness_warning():
            print(f"  {warning}")
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
              f"{format_count(figures.madd):>10} {figures.memrw_mib:>7.2f} MiB")
    return 0

def _cmd_run(args: argparse.Namespace) -> int:
    from threshsearch.search.runner import run_search, with_overrides
    from threshsearch.search.space import load_space
    from threshsearch.search.storage import pareto_trials

    space = with_overrides(load_space(args.space), args.storage, args.n_trials)
    where = args.address or "a local Ray"
    print(f"study {space.study.name}: {space.study.n_trials} trials on {where}; storage "
          f"{space.storage_url}")
    print(f"sampler {space.sampler_choice.describe()}")
    print(f"watch it live: threshsearch dashboard --storage {space.storage_url}", flush=True)
    summary = run_search(space, address=args.address, quiet=args.quiet)
    study = summary.study
    front = pareto_trials(study) if any(t.values for t in study.trials) else []
    repeats = (f" (and {summary.repeats} repeats of networks tried, outside the budget)"
               if summary.repeats else "")
    print(f"\ndone in {summary.wall_s:.0f} s: {summary.trials} trials in the study{repeats}, "
          f"{len(front)} on the Pareto front")
    if summary.exhausted:
        print(summary.exhausted)
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
    print_verdict(study, f"threshsearch confirm {source}")
    return 0

def print_verdict(study, confirm_command: str) -> None:
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
    storage = open_storage(url)
    try:
        run_server(storage, host=args.host, port=args.port)
    except OSError as error:  # the port taken, or the address not this machine's
        flag = "--port" if error.errno == errno.EADDRINUSE else "--host"
        raise UserError(f"{flag}: cannot serve on {args.host}:{args.port} "
                        f"({error.strerror or error}); choose another {flag}") from None
    return 0

def add_study_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--space", metavar="FILE", help="the search space of the study")
    source.add_argument("--storage", metavar="URL", help="an Optuna storage URL")
    parser.add_argument("--study", metavar="NAME",
                        help="with --storage: the study (default: the storage's only one)")

def open_study_source(args: argparse.Namespace):
    """(study, storage URL, the study's folder under studies/)."""
    from threshsearch.search.space import load_space
    from threshsearch.search.storage import load_study

    if args.space and args.study:
        raise UserError(f"--study: goes with --storage; the study of --space {args.space} is "
                        f"its study.name")
    if args.space:
        space = load_space(args.space)
        flag = f"--space {args.space}"
        study = load_study(space.storage_url, space.study.name, flag,
                           f"; run `threshsearch run --space {args.space}` first", flag)
        url = space.storage_url
    else:
        url = args.storage
        study = load_study(url, args.study)
    return study, url, Path("studies") / study.study_name

def source_flags(args: argparse.Namespace) -> str:
    """The flags that name the study, as given: for the commands a message suggests."""
    if args.space:
        return f"--space {args.space}"
    return f"--storage {args.storage}" + (f" --study {args.study}" if args.study else "")

def _cmd_retime(args: argparse.Namespace) -> int:
    from threshsearch.data import INPUT_SIZE
    from threshsearch.search.cluster import quiet_ray, ray_session
    from threshsearch.search.retime import retime_front
    from threshsearch.search.storage import pareto_trials

    study, _, _ = open_study_source(args)
    if not pareto_trials(study):
        raise UserError(f"study {study.study_name}: no completed trial, so no front to re-time")
    quiet_ray()
    with ray_session(args.address):
        retime_front(study, INPUT_SIZE)
    return 0

def _cmd_confirm(args: argparse.Namespace) -> int:
    from threshsearch.confirm.protocols import get_protocol
    from threshsearch.confirm.run import plan_confirmation, run_confirmation
    from threshsearch.confirm.verdict import load_confirmation
    from threshsearch.search.cluster import quiet_ray, ray_session
    from threshsearch.search.space import StudySettings, load_space

    if args.concurrency is not None and args.concurrency < 1:
        raise UserError(f"--concurrency: {args.concurrency} is invalid; expected an integer "
                        f">= 1")
    study, url, _ = open_study_source(args)
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
    with ray_session(args.address):
        summary = run_confirmation(
            study, url, plan, concurrency=args.concurrency or (
                settings.concurrency if args.space else None),
            heartbeat_s=settings.heartbeat_s, grace_s=settings.grace_s, quiet=args.quiet)
    print(f"\ndone in {summary.wall_s:.0f} s: {summary.trained} pairs trained, "
          f"{summary.failed} failed, {summary.already_done} confirmed before")
    confirmation = load_confirmation(study)
    if confirmation is not None and confirmation.protocol["key"] != protocol.key:
        print(f"no pair of protocol {protocol.name} ({protocol.key}) has a result yet; the "
              f"latest confirmation with results is {confirmation.protocol['description']}:")
    if confirmation is not None:
        print("\n".join(confirmation.lines()))
    if summary.failed:
        print(f"{summary.failed} pairs failed (the reason is in each record); rerun "
              f"`threshsearch confirm {source_flags(args)}` to try them again")
    return 1 if summary.failed else 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add these commands to the ``threshsearch`` parser."""
    from threshsearch.confirm.protocols import DEFAULT_SEEDS, PROTOCOLS
    from threshsearch.train import RECIPES

    validate = commands.add_parser(
        "validate", help="check a search-space file, sample a few configs and profile them")
    validate.add_argument("--space", required=True, metavar="FILE")
    validate.add_argument("--samples", type=int, default=3, metavar="N")
    validate.set_defaults(handler=_cmd_validate)

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
    add_study_source(retime)
    retime.add_argument("--address", metavar="ADDR",
                        help="the Ray cluster the study ran on (default: a local Ray)")
    retime.set_defaults(handler=_cmd_retime)

    confirm = commands.add_parser(
        "confirm", help="retrain the front and the baselines from scratch with several "
                        "seeds, test them, and give a verdict with its uncertainty")
    add_study_source(confirm)
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
