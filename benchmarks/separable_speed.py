"""Where a separable CIFAR-10 network's training time goes on a CPU, and what makes it faster.

The network is the 97,696-param ``cifar10-sep-100k`` winner of 2026-11-26 (11.45 M MACs per image). Each
measurement times whole training steps (forward, backward, SGD update) on the same 32×32×3 images after
a warm-up that excludes tracing and compilation, and reports images/s and the achieved GFLOP/s
(images/s × 6 × MACs / 1e9: 2 FLOP per MAC forward, about twice that backward).

* ``plain``: ``model.fit`` on float32 NumPy arrays, batch 128: the reference.
* ``tool``: budgetnas's own trainer (``budgetnas.train_candidate``, no validation) with the budget's recipe (SGD
  one-cycle, label smoothing, weight decay, crop-flip augmentation): what a search trial or retrain runs; on
  TensorFlow its batch norms train through the fused kernel (``budgetnas.fuse_batch_norm``).
* ``plain-fused-bn`` (TensorFlow only): ``plain`` with the batch norms fused (``budgetnas.fuse_batch_norm``): the
  kernel's gain alone. Rows named "budgetnas trainer (recipe, Keras BN)" timed the trainer before the kernel.
* ``data``: the tool's input pipeline alone, no model (batches/s it can deliver).
* variants of ``plain``: batch 64 / 256 / 512, ``steps_per_execution`` 8, ``jit_compile`` (XLA).
* ``layers`` (TensorFlow only): forward + backward of each layer alone at its own input shape, summed by
  kind; each SeparableConv2D split into its depthwise part (DepthwiseConv2D) and pointwise part (1×1 Conv2D).

Thread settings take effect only before TensorFlow starts, so each setting is its own process::

    python benchmarks/separable_speed.py run                       # TensorFlow's defaults
    python benchmarks/separable_speed.py run --intra 1 --inter 1   # one thread
    KERAS_BACKEND=jax python benchmarks/separable_speed.py run     # Keras' JAX backend on the CPU
    python benchmarks/separable_speed.py table                     # -> benchmarks/separable_speed.md

Rows append to ``benchmarks/separable_speed.jsonl`` (one JSON object per measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "separable_speed.jsonl"
TABLE = ROOT / "benchmarks" / "separable_speed.md"
# The network every committed row timed: the cifar10-sep-100k winner of 2026-11-26 (trial 2 of its search
# of spaces/cifar10_separable.toml; reports/cifar10-sep-100k/HISTORY.md), pinned here so that the rows stay
# comparable now that a residual network is the budget's canonical result.
SPACE = ROOT / "spaces" / "cifar10_separable.toml"
VALUES = {"blocks[0].channels": 32, "blocks[0].depth_multiplier": 2, "blocks[1].channels": 64, "blocks[1].repeat": 1,
          "blocks[2].dropout": 0.05, "blocks[3].channels": 96, "blocks[3].repeat": 2, "blocks[4].dropout": 0.2,
          "blocks[5].channels": 160, "blocks[5].kernel": 3, "blocks[5].dilation": 1, "blocks[5].repeat": 3,
          "blocks[6].dropout": 0.2, "blocks[6].repeat": 1, "head.kind": "shrink", "head.dropout": 0.1}
MACS = 11_448_384


def _threads(intra: int | None, inter: int | None) -> None:
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or (intra is None and inter is None):
        return
    import tensorflow as tf

    if intra is not None:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter is not None:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


BUDGET = "cifar10-sep-100k"


def _winner():
    import budgetnas

    space = budgetnas.load_space(SPACE)
    return (lambda: budgetnas.build_model(VALUES, space=space, seed=0)), MACS


def _fused(make):
    """``make``, its batch norms trained through TensorFlow's fused kernel."""
    import budgetnas

    def build():
        model = make()
        budgetnas.fuse_batch_norm(model)
        return model

    return build


def _images(n: int):
    import budgetnas

    splits = budgetnas.load_splits(BUDGET, space=budgetnas.load_space(SPACE), budgets_file=ROOT / "budgets.toml",
                                   data_dir=os.environ.get("BUDGETNAS_DATA_DIR"))
    return splits.train.subset(n, 0)


def _plain(make, arrays, batch: int, steps_per_execution: int = 1, jit: bool = False, rounds: int = 2) -> float:
    import keras

    model = make()
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "categorical_crossentropy",
                  steps_per_execution=steps_per_execution, jit_compile=jit)
    x = arrays.x.astype("float32")
    y = keras.utils.to_categorical(arrays.y, 10)
    warm = batch * steps_per_execution * 2
    model.fit(x[:warm], y[:warm], batch_size=batch, epochs=1, verbose=0)  # trace / compile
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True)
        best = max(best, len(x) / (time.perf_counter() - t))
    return best


def _tool(arrays) -> float:
    """The trainer on the pinned network (``VALUES``), the budget's recipe, 3 epochs without validation."""
    import budgetnas

    t = budgetnas.train_candidate(VALUES, budget=BUDGET, space=SPACE, budgets_file=ROOT / "budgets.toml", epochs=3,
                                  seed=0, splits=budgetnas.Splits(arrays, None, None))
    return len(arrays) / min(t.history.epoch_seconds[1:])  # epoch 1 traces the graph


def _data(arrays) -> float:
    import budgetnas

    ds = budgetnas.input_pipeline(arrays, classes=10, batch_size=128, training=True, augment="crop-flip", seed=0)
    for _ in ds if hasattr(ds, "__iter__") else ():
        break
    t = time.perf_counter()
    n = 0
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        for x, _ in ds:
            n += int(x.shape[0])
    else:
        for i in range(len(ds)):
            n += len(ds[i][0])
    return n / (time.perf_counter() - t)


def split_separable(layer):
    """The two halves of a SeparableConv2D as layers of their own: a DepthwiseConv2D with its kernel,
    stride, padding, dilation and depth multiplier, then a 1×1 Conv2D with its filters and bias."""
    import keras

    cfg = layer.get_config()
    dw = keras.layers.DepthwiseConv2D(cfg["kernel_size"], cfg["strides"], cfg["padding"],
                                      depth_multiplier=cfg["depth_multiplier"], dilation_rate=cfg["dilation_rate"],
                                      use_bias=False)
    pw = keras.layers.Conv2D(cfg["filters"], 1, use_bias=cfg["use_bias"])
    return dw, pw


def _layers(make, batch: int = 128, repeats: int = 10) -> dict[str, float]:
    """Seconds per training step of each layer kind, each layer timed alone (forward + backward)."""
    import keras
    import tensorflow as tf

    model = make()

    def timed(layer, shape) -> float:
        x = tf.random.normal((batch, *shape[1:]))
        layer.build(x.shape)

        @tf.function(autograph=False)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = layer(x, training=True)
                loss = tf.reduce_sum(out)
            return tape.gradient(loss, [x, *layer.trainable_weights])

        step(x)
        t = time.perf_counter()
        for _ in range(repeats):
            step(x)
        return (time.perf_counter() - t) / repeats

    out: dict[str, float] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer",):
            continue
        shape = layer.input.shape if not isinstance(layer.input, list) else None
        if shape is None:  # Add: a sum of two equal tensors
            out[kind] = out.get(kind, 0.0) + timed(keras.layers.Lambda(lambda t: t + t), layer.input[0].shape)
            continue
        if kind == "SeparableConv2D":
            dw, pw = split_separable(layer)
            out["depthwise part"] = out.get("depthwise part", 0.0) + timed(dw, shape)
            mid = (None, *dw.compute_output_shape((batch, *shape[1:]))[1:])
            out["pointwise part"] = out.get("pointwise part", 0.0) + timed(pw, mid)
            continue
        clone = layer.__class__.from_config(layer.get_config())
        out[kind] = out.get(kind, 0.0) + timed(clone, shape)
        if kind == "BatchNormalization":  # the same layer through TensorFlow's fused kernel, as the trainer runs it
            import budgetnas

            fused = layer.__class__.from_config(layer.get_config())
            assert budgetnas.fuse_batch_norm(fused) == 1
            out[FUSED] = out.get(FUSED, 0.0) + timed(fused, shape)
    return out


FUSED = "BatchNormalization, fused (budgetnas/fused_bn.py)"  # the name its committed rows carry


def cmd_run(args) -> None:
    _threads(args.intra, args.inter)
    import keras

    make, macs = _winner()
    arrays = _images(args.images)
    backend = keras.backend.backend()
    setting = {"backend": backend, "intra": args.intra, "inter": args.inter, "images": len(arrays),
               "host": f"{os.cpu_count()}-core {platform.machine()} CPU", "macs": macs,
               "date": time.strftime("%Y-%m-%d")}

    def record(name: str, img_s: float, model: bool = True) -> None:
        row = {**setting, "measure": name, "images_per_s": round(img_s, 1),
               "gflops": round(img_s * 6 * macs / 1e9, 2) if model else None}
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name:32s} {img_s:8.1f} images/s" + (f"  {row['gflops']:6.2f} GFLOP/s" if model else ""), flush=True)

    wanted = set(args.only.split(",")) if args.only else None

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    if want("plain"):
        record("plain model.fit, batch 128", _plain(make, arrays, 128))
    if want("tool"):
        record("budgetnas trainer (recipe, fused BN)" if backend == "tensorflow" else "budgetnas trainer (recipe)",
               _tool(arrays))
    if want("plain-fused-bn") and backend == "tensorflow":
        record("plain, fused BN (budgetnas.fuse_batch_norm), batch 128", _plain(_fused(make), arrays, 128))
    if want("data"):
        record("input pipeline alone", _data(arrays), model=False)
    for b in (64, 256, 512):
        if want(f"batch{b}"):
            record(f"plain, batch {b}", _plain(make, arrays, b))
    if want("spe8"):
        record("plain, steps_per_execution 8", _plain(make, arrays, 128, steps_per_execution=8))
    if want("xla") and backend == "tensorflow":
        record("plain, jit_compile (XLA)", _plain(make, arrays, 128, jit=True))
    if want("layers") and backend == "tensorflow":
        parts = _layers(make)
        total = sum(v for k, v in parts.items() if k != FUSED)
        for kind, sec in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"  {kind:24s} {1000 * sec:8.1f} ms per 128-image step ({100 * sec / total:4.1f}%)")
        with RESULTS.open("a") as f:
            f.write(json.dumps({**setting, "measure": "layers", "ms_per_step": {k: round(1000 * v, 2)
                                                                                for k, v in parts.items()}}) + "\n")


def cmd_table(args) -> None:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    out = ["# Training speed of the separable CIFAR-10 network (97,696 params) on a CPU", "",
           "`python benchmarks/separable_speed.py run [--intra N --inter M]` (and `KERAS_BACKEND=jax`), then "
           "`table` (TensorFlow 2.21 / Keras 3.15; JAX 0.10.2 CPU wheel). 97,696 params, 11.45 M MACs per image; "
           "GFLOP/s = images/s × 6 × MACs; images: a seeded "
           "subset of the CIFAR-10 training set, timed after a warm-up (the trainer: its fastest epoch after the "
           "first). `vs plain`: against the first plain `model.fit` row; rows are in the order they ran, and "
           "repeats of one setting show the machine's own spread. Since 2026-11-27 the trainer runs its batch norms "
           "through TensorFlow's fused kernel (`budgetnas/fused_bn.py`, same arithmetic up to rounding): rows "
           "\"(recipe, fused BN)\"; \"(recipe, Keras BN)\" is the trainer before it; "
           "\"plain, fused BN\" is `plain-fused-bn`.", "",
           "| backend | threads (intra/inter) | measurement | images | images/s | GFLOP/s | vs plain | host | date |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    key = lambda r: (r["backend"], r["intra"], r["inter"])  # noqa: E731
    plain: dict = {}
    for r in rows:  # the first plain model.fit row of each setting
        if r["measure"].startswith("plain model.fit"):
            plain.setdefault(key(r), r["images_per_s"])
    ref = plain.get(("tensorflow", None, None))
    for r in rows:
        if r["measure"] == "layers":
            continue
        threads = "default" if r["intra"] is None and r["inter"] is None else f"{r['intra']}/{r['inter']}"
        ratio = f"{r['images_per_s'] / ref:.2f}" if ref and r["gflops"] is not None else "—"
        gflops = f"{r['gflops']:.1f}" if r["gflops"] is not None else "—"
        out.append(f"| {r['backend']} | {threads} | {r['measure']} | {r['images']} | {r['images_per_s']:.0f} | "
                   f"{gflops} | {ratio} | {r['host']} | {r['date']} |")
    for r in rows:
        if r["measure"] != "layers":
            continue
        total = sum(v for k, v in r["ms_per_step"].items() if k != FUSED)
        out += ["", f"Per layer kind, each layer alone, forward + backward, batch 128 ({r['backend']}, threads "
                    f"{r['intra'] or 'default'}/{r['inter'] or 'default'}): {total:.0f} ms per step in all", "",
                "| layer kind | ms per step | share |", "| --- | ---: | ---: |"]
        for kind, ms in sorted(r["ms_per_step"].items(), key=lambda kv: -kv[1]):
            out.append(f"| {kind} | {ms:.1f} | {100 * ms / total:.0f}% |")
    TABLE.write_text("\n".join(out) + "\n")
    print(TABLE.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--images", type=int, default=2560)
    r.add_argument("--intra", type=int)
    r.add_argument("--inter", type=int)
    r.add_argument("--only", help="comma-separated: plain,tool,plain-fused-bn,data,batch64,batch256,batch512,spe8,"
                                  "xla,layers")
    sub.add_parser("table")
    args = ap.parse_args(argv)
    {"run": cmd_run, "table": cmd_table}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
