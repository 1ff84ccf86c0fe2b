"""Turn chosen values into a network: never chooses values, only builds.

``layer_specs`` lowers an :class:`~budgetnas.space.Architecture` to a flat list of
Keras layer descriptions. ``plan`` propagates shapes and counts parameters over
that list in pure Python (microseconds, used by the gate's repair step);
``build_model`` creates the Keras model from the same list, so both always
describe one network. Tests check ``plan`` against Keras's own count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from budgetnas.space import Architecture, ConcreteBlock, Space


# Keras's default 0.99 leaves ~20% of the initial statistics in the running averages after the
# ~150 steps of a short search trial, which distorts validation scores; 0.9 settles in ~30 steps.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class LayerSpec:
    """One Keras layer: its class name, constructor arguments and where its inputs come from.

    ``src`` holds the indices (in the layer list) of the layers feeding this one; empty means the
    layer just before it, so a plain network is a list in order and a residual block adds a skip
    branch (``src`` = the layer before the block) and an ``Add`` of two indices. ``share`` names an
    earlier spec whose Keras layer this one calls again, as a shared block's repeats do.
    """

    kind: str
    args: tuple[tuple[str, Any], ...]
    src: tuple[int, ...] = ()
    share: int | None = None  # applies the layer of spec ``share`` again (same weights): a shared block's repeat

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.args).get(key, default)


def _spec(kind: str, **args: Any) -> LayerSpec:
    return LayerSpec(kind, tuple(args.items()))


LEAKY_SLOPE = 0.2  # activation = "leaky_relu"


def _activation(name: str) -> list[LayerSpec]:
    if name == "linear":
        return []
    if name == "prelu":  # one slope per channel; Keras' default (shared_axes=None) learns one per pixel too
        return [_spec("PReLU", shared_axes=(1, 2))]
    if name == "leaky_relu":
        return [_spec("LeakyReLU", negative_slope=LEAKY_SLOPE)]
    return [_spec("Activation", activation=name)]


def _block_specs(b: ConcreteBlock) -> list[LayerSpec]:
    if b.kind in ("maxpool", "avgpool"):
        kind = "MaxPooling2D" if b.kind == "maxpool" else "AveragePooling2D"
        out = [_spec(kind, pool_size=b.kernel, strides=b.stride, padding=b.padding)]
    else:
        common = dict(strides=b.stride, padding=b.padding, use_bias=b.bias)
        if b.kind == "conv":
            convs = [_spec("Conv2D", filters=b.channels, kernel_size=b.kernel, dilation_rate=b.dilation, **common)]
        elif b.kind == "pointwise":
            convs = [_spec("Conv2D", filters=b.channels, kernel_size=1, dilation_rate=1, **common)]
        elif b.kind == "factorized":  # k×1 then 1×k, each with the block's BatchNorm and activation
            s, pad, bias = b.stride, b.padding, b.bias
            convs = [_spec("Conv2D", filters=b.channels, kernel_size=(b.kernel, 1), dilation_rate=(b.dilation, 1),
                           strides=(s, 1), padding=pad, use_bias=bias),
                     _spec("Conv2D", filters=b.channels, kernel_size=(1, b.kernel), dilation_rate=(1, b.dilation),
                           strides=(1, s), padding=pad, use_bias=bias)]
        elif b.kind == "separable":
            convs = [_spec("SeparableConv2D", filters=b.channels, kernel_size=b.kernel, dilation_rate=b.dilation,
                           depth_multiplier=b.depth_multiplier, **common)]
        else:
            convs = [_spec("DepthwiseConv2D", kernel_size=b.kernel, dilation_rate=b.dilation,
                           depth_multiplier=b.depth_multiplier, **common)]
        out = []
        for conv in convs:
            out.append(conv)
            if b.batchnorm == "before":
                out.append(_spec("BatchNormalization", momentum=BN_MOMENTUM))
            out.extend(_activation(b.activation))
            if b.batchnorm == "after":
                out.append(_spec("BatchNormalization", momentum=BN_MOMENTUM))
    if b.dropout > 0:
        out.append(_spec("Dropout", rate=b.dropout))
    return out


_WEIGHTED = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")


def _add_block(b: ConcreteBlock, specs: list[LayerSpec], first: dict[int, list[int]]) -> None:
    """Append one block's layers; a shared block's repeats call the convolutions of its first application
    again (``first`` maps a block's source index to where those convolutions are in ``specs``)."""
    new = _block_specs(b)
    convs = [len(specs) + j for j, s in enumerate(new) if s.kind in _WEIGHTED]
    if b.shared and b.source in first:
        owners = iter(first[b.source])
        new = [replace(s, share=next(owners)) if s.kind in _WEIGHTED else s for s in new]
    elif b.shared:
        first[b.source] = convs
    specs.extend(new)


def _residual_specs(group: list[ConcreteBlock], entry: int, channels_in: int, specs: list[LayerSpec],
                    first: dict[int, list[int]]) -> None:
    """Append a residual block: its repeats, then ``Add`` of their output and the block's input.

    The input is added back as it is when the block keeps its channel count and stride 1;
    otherwise through a 1x1 projection of the block's own layer family (so a separable-only
    budget stays separable-only), with BatchNorm when the block uses it. A block that shrinks
    its map (``padding = "valid"`` with a kernel > 1) cannot be added back: :func:`plan` says so.
    """
    for b in group:
        _add_block(b, specs, first)
    out = len(specs) - 1
    channels_out = _channels_after(group, channels_in)
    stride = math.prod(b.stride for b in group)
    skip = entry
    if channels_out != channels_in or stride != 1:
        b = group[0]
        common = dict(kernel_size=1, strides=stride, padding="valid", use_bias=b.bias, dilation_rate=1)
        if b.kind == "separable":
            proj = LayerSpec("SeparableConv2D", tuple(dict(filters=channels_out, depth_multiplier=1,
                                                           **common).items()), (entry,))
        elif b.kind == "depthwise":
            proj = LayerSpec("DepthwiseConv2D", tuple(dict(depth_multiplier=channels_out // channels_in,
                                                           **common).items()), (entry,))
        else:
            proj = LayerSpec("Conv2D", tuple(dict(filters=channels_out, **common).items()), (entry,))
        specs.append(proj)
        if b.batchnorm != "none":
            specs.append(_spec("BatchNormalization", momentum=BN_MOMENTUM))
        skip = len(specs) - 1
    specs.append(LayerSpec("Add", (), (out, skip)))


def _channels_after(blocks, channels: int) -> int:
    for b in blocks:
        if b.kind == "depthwise":
            channels *= b.depth_multiplier
        elif b.kind not in ("maxpool", "avgpool"):
            channels = b.channels
    return channels


def layer_specs(arch: Architecture) -> list[LayerSpec]:
    """The layer list of ``arch``, input rescaling first and softmax last."""
    scale = [1.0 / (255.0 * s) for s in arch.std]
    offset = [-m / s for m, s in zip(arch.mean, arch.std)]
    specs = [_spec("Rescaling", scale=scale, offset=offset)]
    channels, i = arch.input_shape[2], 0
    first: dict[int, list[int]] = {}
    while i < len(arch.blocks):
        b = arch.blocks[i]
        group = [b]
        if b.residual:  # the repeats of one space block form one residual block
            while i + len(group) < len(arch.blocks) and arch.blocks[i + len(group)].source == b.source:
                group.append(arch.blocks[i + len(group)])
            _residual_specs(group, len(specs) - 1, channels, specs, first)
        else:
            _add_block(b, specs, first)
        channels = _channels_after(group, channels)
        i += len(group)
    h, n = arch.head, arch.classes
    if h.kind == "gap":
        as_map = h.layer in ("conv", "separable")
        specs.append(_spec("GlobalAveragePooling2D", keepdims=as_map))
        if h.dropout > 0 and not h.hidden:
            specs.append(_spec("Dropout", rate=h.dropout))
        for units in h.hidden:  # only with layer = "dense" (space._check_head)
            specs.append(_spec("Dense", units=units, activation="relu"))
            if h.dropout > 0:
                specs.append(_spec("Dropout", rate=h.dropout))
        if h.layer == "conv":
            specs.append(_spec("Conv2D", filters=n, kernel_size=1, strides=1, padding="valid",
                               use_bias=True, dilation_rate=1))
        elif h.layer == "separable":
            specs.append(_spec("SeparableConv2D", filters=n, kernel_size=1, strides=1, padding="valid",
                               use_bias=True, dilation_rate=1, depth_multiplier=1))
        else:
            specs.append(_spec("Dense", units=n))
        if h.batchnorm:
            specs.append(_spec("BatchNormalization", momentum=BN_MOMENTUM))
        if as_map:
            specs.append(_spec("Flatten"))
    elif h.kind == "shrink":
        if h.dropout > 0:
            specs.append(_spec("Dropout", rate=h.dropout))
        # kernel_size "map" is resolved to the incoming spatial size by plan()/build_model().
        kind = "Conv2D" if h.layer == "conv" else "SeparableConv2D"
        extra = {"depth_multiplier": 1} if kind == "SeparableConv2D" else {}
        specs.append(_spec(kind, filters=n, kernel_size="map", strides=1, padding="valid",
                           use_bias=True, dilation_rate=1, **extra))
        if h.batchnorm:
            specs.append(_spec("BatchNormalization", momentum=BN_MOMENTUM))
        specs.append(_spec("Flatten"))
    else:
        specs.append(_spec("Flatten"))
        for units in h.hidden:
            specs.append(_spec("Dense", units=units, activation="relu"))
            if h.dropout > 0:
                specs.append(_spec("Dropout", rate=h.dropout))
        specs.append(_spec("Dense", units=n))
        if h.batchnorm:
            specs.append(_spec("BatchNormalization", momentum=BN_MOMENTUM))
    specs.append(_spec("Activation", activation="softmax"))
    return specs


@dataclass(frozen=True)
class Plan:
    """Shapes and parameter counts of a layer list, computed without Keras."""

    input_shape: tuple[int, ...]
    specs: tuple[LayerSpec, ...]
    names: tuple[str, ...]  # the Keras layer names build_architecture gives the same layers
    shapes: tuple[tuple[int, ...], ...]
    layer_params: tuple[int, ...]
    total_params: int
    trainable_params: int
    problems: tuple[str, ...]  # e.g. a feature map shrunk below 1x1


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _out_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    eff = dilation * (kernel - 1) + 1
    if padding == "same":
        return math.ceil(size / stride)
    return (size - eff) // stride + 1


def plan(arch: Architecture) -> Plan:
    """Propagate shapes through ``layer_specs(arch)`` and count params exactly as Keras does."""
    specs = layer_specs(arch)
    shape: tuple[int, ...] = tuple(arch.input_shape)
    shapes: list[tuple[int, ...]] = []
    layer_params: list[int] = []
    problems: list[str] = []
    total = trainable = 0
    inputs: list[tuple[int, ...]] = []
    for i, s in enumerate(specs):
        kind = s.kind
        if s.src:
            shape = shapes[s.src[0]]
        if len(shape) == 3 and (shape[0] < 1 or shape[1] < 1):
            break
        if s.share is not None and inputs[s.share][-1] != shape[-1]:
            problems.append(f"layer {i} ({kind}): a shared block applies one layer to its own output, so its input "
                            f"width must equal its output width (the layer takes {inputs[s.share][-1]} channels "
                            f"and gets {shape[-1]})")
            break
        inputs.append(shape)
        before = total
        if kind in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D"):
            h, w, c = shape
            k = s.get("kernel_size")
            kh, kw = (h, w) if k == "map" else _pair(k)
            (sh, sw), (dh, dw), pad = _pair(s.get("strides")), _pair(s.get("dilation_rate")), s.get("padding")
            if max(sh, sw) > 1 and max(dh, dw) > 1:
                problems.append(f"layer {i} ({kind}): stride {s.get('strides')} with dilation "
                                f"{s.get('dilation_rate')} is not supported by Keras")
            oh, ow = _out_size(h, kh, sh, dh, pad), _out_size(w, kw, sw, dw, pad)
            dm = s.get("depth_multiplier", 1)
            bias = s.get("use_bias")
            if kind == "Conv2D":
                f = s.get("filters")
                n = kh * kw * c * f + (f if bias else 0)
            elif kind == "SeparableConv2D":
                f = s.get("filters")
                n = kh * kw * c * dm + c * dm * f + (f if bias else 0)
            else:
                f = c * dm
                n = kh * kw * c * dm + (f if bias else 0)
            if s.share is not None:
                n = 0  # the weights are the shared layer's, counted where it was first applied (as Keras counts)
            total += n
            trainable += n
            shape = (oh, ow, f)
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            h, w, c = shape
            k, st, pad = s.get("pool_size"), s.get("strides"), s.get("padding")
            shape = (_out_size(h, k, st, 1, pad), _out_size(w, k, st, 1, pad), c)
        elif kind == "BatchNormalization":
            c = shape[-1]
            total += 4 * c
            trainable += 2 * c
        elif kind == "PReLU":  # one slope per channel (shared over height and width)
            total += shape[-1]
            trainable += shape[-1]
        elif kind == "GlobalAveragePooling2D":
            shape = (1, 1, shape[-1]) if s.get("keepdims") else (shape[-1],)
        elif kind == "Flatten":
            shape = (math.prod(shape),)
        elif kind == "Dense":
            u = s.get("units")
            n = shape[-1] * u + u
            total += n
            trainable += n
            shape = shape[:-1] + (u,)
        elif kind == "Add":
            merged = [shapes[j] for j in s.src]
            if any(m != merged[0] for m in merged):
                problems.append(f"layer {i} (Add): a residual block turns {'x'.join(map(str, merged[1]))} into "
                                f"{'x'.join(map(str, merged[0]))}; only padding = \"same\" blocks can add "
                                "their input back")
                break
        shapes.append(shape)
        layer_params.append(total - before)
        if len(shape) == 3 and (shape[0] < 1 or shape[1] < 1):
            problems.append(f"layer {i} ({kind}) shrinks the feature map to {shape[0]}x{shape[1]}, below 1x1")
    kept = tuple(specs)[: len(shapes)]
    return Plan(tuple(arch.input_shape), kept, layer_names(kept), tuple(shapes), tuple(layer_params), total,
                trainable, tuple(problems))


def keras_layer(spec: LayerSpec, incoming: tuple[int, ...], name: str | None = None):
    """Create the Keras layer for ``spec``; ``incoming`` resolves a ``"map"`` kernel."""
    from keras import layers

    args: dict[str, Any] = dict(spec.args)
    if args.get("kernel_size") == "map":
        args["kernel_size"] = (incoming[0], incoming[1])
    return getattr(layers, spec.kind)(name=name, **args)


def build_model(space: Space, values: Mapping[str, Any], name: str | None = None, seed: int | None = None):
    """Build the Keras model for ``values`` in ``space`` (a plain dict replays any trial)."""
    return build_architecture(space.resolve(values), name=name or space.name, seed=seed)


def build_architecture(arch: Architecture, name: str = "budgetnas", seed: int | None = None):
    """Create the Keras model; ``seed`` fixes the initial weights (all Python/NumPy/TF RNGs are seeded)."""
    import keras

    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=arch.input_shape, name="image")
    x = inputs
    specs = layer_specs(arch)
    outs = []
    made: dict[int, Any] = {}  # spec index -> its Keras layer, for the specs that call it again
    for i, (spec, layer_name) in enumerate(zip(specs, layer_names(specs))):
        if spec.kind == "Add":
            x = keras_layer(spec, (), name=layer_name)([outs[j] for j in spec.src])
        else:
            x = outs[spec.src[0]] if spec.src else x
            if spec.share is not None:
                layer = made[spec.share]
            else:
                layer = keras_layer(spec, tuple(x.shape[1:]), name=layer_name)
            made[i] = layer
            x = layer(x)
        outs.append(x)
    return keras.Model(inputs, x, name=_safe(name))


def layer_names(specs) -> tuple[str, ...]:
    """Keras-style names, numbered per kind: conv2d_1, batch_normalization_1, ...; the second application of a
    shared layer is ``conv2d_3@2`` (Keras holds one layer, called again)."""
    counts: dict[str, int] = {}
    calls: dict[int, int] = {}
    names: list[str] = []
    for spec in specs:
        if spec.share is not None:
            calls[spec.share] = calls.get(spec.share, 1) + 1
            names.append(f"{names[spec.share]}@{calls[spec.share]}")
            continue
        counts[spec.kind] = counts.get(spec.kind, 0) + 1
        names.append(f"{_snake(spec.kind)}_{counts[spec.kind]}")
    return tuple(names)


def _snake(kind: str) -> str:
    out = ""
    for i, ch in enumerate(kind):
        if ch.isupper() and i and not kind[i - 1].isupper() and not kind[i - 1].isdigit():
            out += "_"
        out += ch.lower()
    return out


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)
