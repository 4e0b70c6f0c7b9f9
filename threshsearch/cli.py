"""The ``threshsearch`` command: argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence

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
