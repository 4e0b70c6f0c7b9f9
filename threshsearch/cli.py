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
    from threshsearch.train import DEFAULT_RECIPE, get_recipe

    spec = args.preset or args.config
    recipe = get_recipe(args.recipe or DEFAULT_RECIPE[args.dataset]).override(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    out = args.out or f"runs/{Path(spec).stem}-{args.dataset}-seed{args.seed}"
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
        result = train(spec, dataset=args.dataset, recipe=recipe, device=args.device,
                       seed=args.seed, out=out, resume=args.resume, data_root=args.data_root,
                       callbacks=[progress])
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
        print(f"test top-1 {result.test_accuracy:.4f}  top-5 {result.test_top5:.4f}")
    print(f"wrote {out}/metrics.json, epochs.csv, checkpoint.pt")
    return 0 if result.status == "completed" else 1


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
    train.add_argument("--dataset", default="cifar10", choices=DATASETS)
    train.add_argument("--recipe", choices=list(RECIPES),
                       help="training recipe (default: the paper's for the dataset)")
    train.add_argument("--epochs", type=int, metavar="N")
    train.add_argument("--batch-size", type=int, metavar="N")
    train.add_argument("--lr", type=float, metavar="LR")
    train.add_argument("--device", default="auto", choices=DEVICES)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", metavar="DIR",
                       help="where metrics.json, epochs.csv and checkpoint.pt go "
                            "(default: runs/<name>-<dataset>-seed<seed>)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint under --out")
    train.add_argument("--data-root", default="data", metavar="DIR",
                       help="where torchvision datasets are (downloaded on first use)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)
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
