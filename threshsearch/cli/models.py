"""The commands about one model: presets, profile, train, bench, schema and device-profile."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from threshsearch.errors import UserError


def _add_model_source(parser: argparse.ArgumentParser, torchvision: bool = False) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name (see `threshsearch presets`)")
    source.add_argument("--config", metavar="FILE",
                        help="an architecture config or exported result (YAML or JSON)")
    if torchvision:
        source.add_argument("--model", metavar="torchvision:NAME",
                            help="a torchvision classification model, e.g. torchvision:resnet50")

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

def format_count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:g}"

def require_positive(*flags: tuple[str, int | None]) -> None:
    """Refuse, naming it, the first (flag, value) whose value is given and below 1."""
    for flag, value in flags:
        if value is not None and value < 1:
            raise UserError(f"{flag}: {value} is invalid; expected an integer >= 1")

def _cmd_profile(args: argparse.Namespace) -> int:
    from threshsearch.api import load_config, profile
    from threshsearch.profiler import profile_model

    num_classes = args.num_classes
    require_positive(("--num-classes", num_classes), ("--input-size", args.input_size))
    if args.model:
        if not args.model.startswith("torchvision:"):
            raise UserError(f"--model: {args.model!r} is not of the form torchvision:NAME")
        model = _torchvision_model(args.model, num_classes or 1000)
        try:
            result = profile_model(model, args.input_size)
        except RuntimeError as error:  # an input its layers shrink to nothing
            reason = " ".join(str(error).split())[:200]
            raise UserError(f"--input-size: {args.model} cannot run on {args.input_size}x"
                            f"{args.input_size} images ({reason})") from None
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
        ("MAdd", format_count(result.madd)),
        ("Flops", format_count(result.flops)),
        ("MemR+W", f"{result.memrw_mib:.2f} MiB (read {result.mem_read_mib:.2f}, "
                   f"write {result.mem_write_mib:.2f})"),
        ("CIO", f"{format_count(result.cio)} elements"),
        ("activations", f"{result.activation_mib:.2f} MiB"),
    ]
    for key, value in rows:
        print(f"  {key:<12} {value}")
    return 0

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
    # Its study's data, where it trains on the same dataset: the folder and the test split
    # the search held out.
    section = exported.document.get("data") if exported else None
    studied = section if isinstance(section, dict) and dataset == exported.dataset else {}
    data_root = args.data_root or studied.get("root") or "data"
    test_fraction = (args.test_fraction if args.test_fraction is not None
                     else studied.get("test_fraction") or 0.0)
    if not 0 <= test_fraction < MAX_TEST_FRACTION or (test_fraction and dataset != "folder"):
        raise UserError(f"--test-fraction: {test_fraction:g} is invalid; expected "
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
                       seed=seed, out=out, resume=args.resume, data_root=data_root,
                       test_fraction=test_fraction, callbacks=[progress])
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

def output_file(path: str, flag: str) -> Path:
    """``path`` as a file to write, checked before any work: its folder exists and it is not
    a folder itself."""
    out = Path(path)
    if out.is_dir():
        raise UserError(f"{flag}: {path} is a folder; expected a file path such as "
                        f"{out / 'out.json'}")
    if not out.resolve().parent.is_dir():
        raise UserError(f"{flag}: {path}: its folder {out.parent} does not exist; create it "
                        f"or give another path")
    return out


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.kind == "space":
        from threshsearch.search.space import SearchSpace as model
    elif args.kind == "device-model":
        from threshsearch.devicemodel.fileformat import DeviceModelFile as model
    else:
        from threshsearch.config import ArchitectureConfig as model
    text = model.json_schema()
    if args.out:
        output_file(args.out, "--out").write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0

def _cmd_device_profile(args: argparse.Namespace) -> int:
    from threshsearch.data import INPUT_SIZE
    from threshsearch.search.deviceprofile import profile_space

    out = output_file(args.out, "--out")  # before minutes of profiling, not after
    model = profile_space(args.space, runtime=args.runtime, threads=args.threads,
                          batch_size=args.batch_size, input_size=args.input_size or INPUT_SIZE,
                          dtype=args.dtype, draws=args.draws,
                          calibration_networks=args.networks, rounds=args.rounds,
                          later_rounds=args.later_rounds, seed=args.seed)
    model.save(out)
    profiling = model.data.profiling
    print(f"wrote {args.out}: {profiling.operations_timed} operations and "
          f"{profiling.networks_timed} networks timed in {profiling.seconds:.0f} s")
    print(model.summary())
    if warning := model.steadiness_warning():
        print(warning)
    return 0

def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from threshsearch.bench import format_bench, run_bench
    from threshsearch.measure import resolve_device

    sizes = args.input_size or ([32, 224] if resolve_device(args.device).type == "cuda"
                                else [32])
    if any(size < 32 for size in sizes):
        raise UserError(f"--input-size: {sizes} is invalid; the presets need 32 or more")
    require_positive(("--repeats", args.repeats), ("--train-batch", args.train_batch))
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


def register(commands: argparse._SubParsersAction) -> None:
    """Add these commands to the ``threshsearch`` parser."""
    from threshsearch.data import DATASETS
    from threshsearch.devicemodel.calibration import SUSPECT_ABOVE
    from threshsearch.devicemodel.profiling import LATER_ROUNDS
    from threshsearch.devicemodel.runtimes import DTYPES, RUNTIMES
    from threshsearch.measure import DEVICES
    from threshsearch.search.deviceprofile import CALIBRATION_NETWORKS, ROUNDS, SPACE_DRAWS
    from threshsearch.train import RECIPES


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
    train.add_argument("--data-root", metavar="DIR",
                       help="where the dataset is: torchvision's (downloaded on first use) "
                            "or the image folder (default: an exported result's, else data)")
    train.add_argument("--test-fraction", type=float, metavar="F",
                       help="--dataset folder without a test/ folder: hold out this share of "
                            "each class as the test split (default: an exported result's, "
                            "else 0: test on validation)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)

    schema = commands.add_parser(
        "schema", help="write the JSON Schema of space, config or device-model files")
    schema.add_argument("kind", choices=("space", "config", "device-model"))
    schema.add_argument("--out", help="the file to write (default: standard output)")
    schema.set_defaults(handler=_cmd_schema)

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
    device_profile.add_argument("--rounds", type=int, default=ROUNDS, metavar="N",
                                help="rounds of timings, the first over all of them; each "
                                "timing's fastest counts (a shared or virtual machine's speed "
                                "drifts)")
    device_profile.add_argument("--later-rounds", default=LATER_ROUNDS[0], choices=LATER_ROUNDS,
                                help="what a round after the first takes again: the timings "
                                f"the fit of the rounds before finds over "
                                f"{SUSPECT_ABOVE * 100:.0f} %% slower than it predicts, the "
                                "call overhead and a random tenth of all timings (all of them "
                                "when many of those ran slower before) (default), or all of "
                                "them")
    device_profile.add_argument("--seed", type=int, default=0)
    device_profile.set_defaults(handler=_cmd_device_profile)

    bench = commands.add_parser(
        "bench", help="latency and training throughput of the paper's models, side by side")
    bench.add_argument("--input-size", type=int, nargs="+", metavar="N",
                       help="default: 32 on CPU, 32 and 224 on CUDA")
    bench.add_argument("--device", default="auto", choices=DEVICES)
    bench.add_argument("--repeats", type=int, default=5, metavar="N")
    bench.add_argument("--train-batch", type=int, default=64, metavar="N")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=_cmd_bench)
