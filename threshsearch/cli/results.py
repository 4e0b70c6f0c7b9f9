"""The commands on a study's results: export, report, trials, and time (exported networks
timed on the deployment device)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from threshsearch.cli.search import add_study_source, open_study_source, print_verdict, source_flags
from threshsearch.errors import UserError


def _cmd_export(args: argparse.Namespace) -> int:
    from threshsearch.data import INPUT_SIZE
    from threshsearch.results import export_baselines, export_front
    from threshsearch.results.export import export_onnx

    if args.onnx:
        from threshsearch.deploy import require_onnx

        require_onnx("--onnx")
    study, url, folder = open_study_source(args)
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
    print_verdict(study, f"threshsearch confirm {source_flags(args)}")
    return 0

def _cmd_report(args: argparse.Namespace) -> int:
    from threshsearch.data import INPUT_SIZE, NUM_CLASSES
    from threshsearch.results import write_report

    study, _, folder = open_study_source(args)
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

    study, _, folder = open_study_source(args)
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


def register(commands: argparse._SubParsersAction) -> None:
    """Add these commands to the ``threshsearch`` parser."""
    from threshsearch.devicemodel.runtimes import RUNTIMES
    from threshsearch.measure import DEVICES

    export = commands.add_parser(
        "export", help="write each Pareto-optimal network as a self-contained YAML file")
    add_study_source(export)
    export.add_argument("--out", metavar="DIR", help="default: studies/<name>/pareto")
    export.add_argument("--onnx", action="store_true",
                        help="also write each network as <name>.onnx, checked against "
                             "PyTorch's output (needs threshsearch[onnx])")
    export.set_defaults(handler=_cmd_export)

    report = commands.add_parser("report", help="write the study's plotly HTML report")
    add_study_source(report)
    report.add_argument("--out", metavar="FILE.html", help="default: studies/<name>/report.html")
    report.add_argument("--png", metavar="DIR",
                        help="also write each figure as PNG (needs kaleido and Chrome)")
    report.add_argument("--timings", metavar="FILE.csv",
                        help="networks timed on a deployment device (`threshsearch time`), "
                             "shown beside the search's figures")
    report.set_defaults(handler=_cmd_report)

    trials = commands.add_parser("trials", help="the study's trials as a table")
    add_study_source(trials)
    trials.add_argument("--format", choices=("csv", "parquet", "json"), default="csv")
    trials.add_argument("--out", metavar="FILE", help="default: studies/<name>/trials.FORMAT")
    trials.set_defaults(handler=_cmd_trials)

    timing = commands.add_parser(
        "time", help="time exported networks on this machine (the deployment device), "
                     "beside the search's figures")
    timing.add_argument("results", nargs="+", metavar="RESULTS",
                        help="exported result files, or folders `threshsearch export` wrote")
    timing.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="torch (eager, default; torch-cuda with --device cuda), "
                             "torch-cuda-graph (a captured CUDA graph replayed; --device "
                             "cuda) or onnxruntime (CPU; needs threshsearch[onnx])")
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
