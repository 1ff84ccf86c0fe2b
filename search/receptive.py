"""Per-layer tables: output shape, params, MACs, kernel/stride/dilation, jump, receptive field, start.

Geometry per axis, with pixel centres at 0, 1, 2, ... of the input image:

* ``jump``: distance in input pixels between neighbouring units of a layer's output;
* ``rf``: how many input pixels one output unit sees (its extent, holes from dilation included);
* ``start``: input coordinate of the centre of the first output unit (negative when padding).

For a layer with kernel k, stride s, dilation d and ``pad`` pixels of padding before the first
input: ``k' = d(k-1)+1``, ``rf += (k'-1)·jump``, ``start += ((k'-1)/2 - pad)·jump``, ``jump *= s``.
A merge (``Add`` of a residual block) sees what any of its branches sees: the union of their fields,
which must lie on one grid (equal jumps). MACs count multiply-accumulates of convolutions and dense
layers for one image.
An unsupported layer raises :class:`UnsupportedLayerError`; it is never treated as 1×1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from budgetnas.errors import UnsupportedLayerError
from budgetnas.report.layers import layer_markdown, layer_table

Pair = tuple[float, float]

_CONV = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")
_POOL = ("MaxPooling2D", "AveragePooling2D")
_GLOBAL = ("GlobalAveragePooling2D", "GlobalMaxPooling2D")
_MERGE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
_POINTWISE = ("InputLayer", "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU",
              "Softmax", "Dropout", "SpatialDropout2D", "GaussianNoise", "Rescaling", "Normalization",
              "LayerNormalization", "Identity")


@dataclass(frozen=True)
class Row:
    """One layer of the table (pairs are (height, width))."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    kernel: tuple[int, int] | None
    stride: tuple[int, int] | None
    dilation: tuple[int, int] | None
    jump: Pair
    rf: Pair
    start: Pair
    collapses: bool = False  # the layer turns the spatial map into one vector (GAP, Flatten, 1x1 shrink)

    def as_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | int:
            return int(v) if float(v).is_integer() else float(v)

        return {
            "name": self.name, "kind": self.kind, "output_shape": list(self.output_shape),
            "params": self.params, "macs": self.macs,
            "kernel": list(self.kernel) if self.kernel else None,
            "stride": list(self.stride) if self.stride else None,
            "dilation": list(self.dilation) if self.dilation else None,
            "jump": [num(v) for v in self.jump], "rf": [num(v) for v in self.rf],
            "start": [num(v) for v in self.start],
        }


@dataclass(frozen=True)
class LayerTable:
    rows: tuple[Row, ...]
    total_params: int
    trainable_params: int

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def final_rf(self) -> Pair:
        """Receptive field of the last feature map before the head collapses it to a vector."""
        last = self.rows[0].rf
        for r in self.rows:
            if r.collapses:
                break
            if len(r.output_shape) == 3:
                last = r.rf
        return last

    @property
    def min_spatial(self) -> int:
        sizes = [min(r.output_shape[0], r.output_shape[1]) for r in self.rows if len(r.output_shape) == 3]
        return min(sizes) if sizes else 1

    def kinds(self) -> set[str]:
        return {r.kind for r in self.rows}

    def as_dict(self) -> dict[str, Any]:
        """The totals and every row, as JSON-ready data."""
        return {"total_params": self.total_params, "trainable_params": self.trainable_params, "macs": self.macs,
                "final_rf": list(self.final_rf), "layers": [r.as_dict() for r in self.rows]}

    def _repr_html_(self) -> str:
        """The table in Jupyter."""
        import markdown

        return markdown.markdown(layer_markdown(self), extensions=["tables"], output_format="html")

    def __rich__(self):
        return layer_table(self)


@dataclass(frozen=True)
class _State:
    jump: Pair
    rf: Pair
    start: Pair
    grid: tuple[int, int] | None  # spatial size folded by a Flatten, waiting for a Dense


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def _window(state: _State, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int], padding: str,
            in_hw: tuple[int, int], out_hw: tuple[int, int]) -> _State:
    jump, rf, start = [], [], []
    for a in range(2):
        eff = d[a] * (k[a] - 1) + 1
        pad = 0
        if padding == "same":  # TensorFlow puts the odd pixel of padding after the image
            pad = max((out_hw[a] - 1) * s[a] + eff - in_hw[a], 0) // 2
        rf.append(state.rf[a] + (eff - 1) * state.jump[a])
        start.append(state.start[a] + ((eff - 1) / 2 - pad) * state.jump[a])
        jump.append(state.jump[a] * s[a])
    return _State(tuple(jump), tuple(rf), tuple(start), None)  # type: ignore[arg-type]


def _layer_step(name: str, kind: str, cfg: dict[str, Any], ins: Sequence[_State],
                in_shapes: Sequence[tuple[int, ...]], out_shape: tuple[int, ...]):
    """Geometry and MACs of one layer. Returns (state, macs, kernel, stride, dilation, collapses)."""
    st = ins[0]
    in_shape = in_shapes[0]
    if kind in _CONV or kind in _POOL:
        if len(in_shape) != 3:
            raise UnsupportedLayerError(f"layer {name!r} ({kind}) needs a H×W×C input, got {in_shape}")
        k = _pair(cfg["kernel_size"] if kind in _CONV else cfg["pool_size"])
        s = _pair(cfg.get("strides") or k)
        d = _pair(cfg.get("dilation_rate", 1)) if kind in _CONV else (1, 1)
        padding = str(cfg.get("padding", "valid")).lower()
        if padding not in ("valid", "same"):
            raise UnsupportedLayerError(f"layer {name!r} ({kind}) has padding {padding!r}")
        oh, ow = out_shape[0], out_shape[1]
        new = _window(st, k, s, d, padding, (in_shape[0], in_shape[1]), (oh, ow))
        cin = in_shape[2]
        dm = int(cfg.get("depth_multiplier", 1))
        if kind == "Conv2D":
            groups = int(cfg.get("groups", 1))
            macs = oh * ow * k[0] * k[1] * (cin // groups) * out_shape[2]
        elif kind == "SeparableConv2D":
            macs = oh * ow * (k[0] * k[1] * cin * dm + cin * dm * out_shape[2])
        elif kind == "DepthwiseConv2D":
            macs = oh * ow * k[0] * k[1] * cin * dm
        else:
            macs = 0
        collapses = (oh, ow) == (1, 1) and (in_shape[0], in_shape[1]) != (1, 1) and padding == "valid" and \
            (k[0] * d[0] >= in_shape[0] and k[1] * d[1] >= in_shape[1])
        return new, macs, k, s, d, collapses
    if kind in _GLOBAL:
        if len(in_shape) != 3:
            raise UnsupportedLayerError(f"layer {name!r} ({kind}) needs a H×W×C input, got {in_shape}")
        hw = (in_shape[0], in_shape[1])
        new = _window(st, hw, hw, (1, 1), "valid", hw, (1, 1))
        return new, 0, hw, hw, (1, 1), True
    if kind == "ZeroPadding2D":
        pad = cfg["padding"]
        top, left = (pad[0][0], pad[1][0]) if isinstance(pad[0], (list, tuple)) else (pad[0], pad[1])
        start = (st.start[0] - top * st.jump[0], st.start[1] - left * st.jump[1])
        return _State(st.jump, st.rf, start, st.grid), 0, None, None, None, False
    if kind == "Flatten":
        grid = (in_shape[0], in_shape[1]) if len(in_shape) == 3 else st.grid
        return _State(st.jump, st.rf, st.start, grid), 0, None, None, None, len(in_shape) == 3
    if kind == "Dense":
        units = out_shape[-1]
        macs = math.prod(in_shape) * units
        if len(in_shape) == 3:
            # A Dense on a feature map acts on each position alone, like a 1x1 conv.
            return st, macs, None, None, None, False
        if st.grid is not None:
            g = st.grid
            new = _window(st, g, g, (1, 1), "valid", g, (1, 1))
            return new, macs, g, None, None, False
        return st, macs, None, None, None, False
    if kind in _MERGE:
        # An output unit sees what any branch sees: the union of the branches' fields. Branches
        # must step over the input alike (one jump); their centres may differ, e.g. a strided 3x3
        # conv with TensorFlow's "same" padding and the strided 1x1 projection beside it.
        first = ins[0]
        for other in ins[1:]:
            if other.jump != first.jump:
                raise UnsupportedLayerError(
                    f"layer {name!r} ({kind}) merges branches on different grids (jump {first.jump} vs {other.jump})")
        lo = [min(s.start[a] - (s.rf[a] - 1) / 2 for s in ins) for a in range(2)]
        hi = [max(s.start[a] + (s.rf[a] - 1) / 2 for s in ins) for a in range(2)]
        rf = tuple(hi[a] - lo[a] + 1 for a in range(2))
        start = tuple((lo[a] + hi[a]) / 2 for a in range(2))
        return _State(first.jump, rf, start, first.grid), 0, None, None, None, False  # type: ignore
    if kind in _POINTWISE:
        return st, 0, None, None, None, False
    raise UnsupportedLayerError(f"layer {name!r}: unsupported layer type {kind} (no receptive-field rule for it)")


_START = _State((1.0, 1.0), (1.0, 1.0), (0.0, 0.0), None)


def table_from_model(model) -> LayerTable:
    """The per-layer table of any Keras model made of supported layers (functional or Sequential).

    A layer called more than once (a shared block) has one row per call, in the order the graph runs them:
    ``conv2d_3``, then ``conv2d_3@2``, ...; its params are counted on the first row, as Keras counts them once.
    """
    from budgetnas.compat import layer_calls

    states: dict[int, tuple[_State, tuple[int, ...]]] = {}
    rows: list[Row] = []
    for inp in model.inputs:
        states[id(inp)] = (_START, tuple(inp.shape[1:]))
    pending = []  # (layer, call number, its inputs, its output), in layer order then call order
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if hasattr(layer, "layers") and kind not in ("Rescaling",):
            raise UnsupportedLayerError(f"layer {layer.name!r}: nested model {kind} is not supported")
        pending += [(layer, n, ins, out) for n, (ins, out) in enumerate(layer_calls(layer), start=1)]
    done: dict[int, int] = {}  # id(layer) -> its calls tabled so far (a call from another graph never is)
    while pending:
        # the first call whose inputs are known: the graph's own order (a plain network: the layer order)
        ready = next((p for p in pending if all(id(t) in states for t in p[2])), None)
        if ready is None:
            break
        pending.remove(ready)
        layer, _, inputs, output = ready
        n = done.get(id(layer), 0) + 1
        kind = type(layer).__name__
        got = [states[id(t)] for t in inputs]
        out_shape = tuple(int(v) for v in output.shape[1:])
        name = layer.name if n == 1 else f"{layer.name}@{n}"
        state, macs, k, s, d, collapses = _layer_step(
            name, kind, layer.get_config(), [g[0] for g in got], [g[1] for g in got], out_shape)
        states[id(output)] = (state, out_shape)
        rows.append(Row(name, kind, out_shape, int(layer.count_params()) if n == 1 else 0, int(macs), k, s, d,
                        state.jump, state.rf, state.start, collapses))
        done[id(layer)] = n
    for layer, _, _, _ in pending:  # calls in other graphs are skipped; a layer never reached is an error
        if id(layer) not in done:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({type(layer).__name__}): its input comes from outside the model")
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return LayerTable(tuple(rows), int(model.count_params()), trainable)


def table_from_plan(plan) -> LayerTable:
    """The same table computed from a :class:`budgetnas.build.Plan` (no Keras needed)."""
    rows: list[Row] = []
    states: list[tuple[_State, tuple[int, ...]]] = []
    state, prev = _START, plan.input_shape
    for spec, name, out_shape, params in zip(plan.specs, plan.names, plan.shapes, plan.layer_params):
        ins = [states[j] for j in spec.src] if spec.src else [(state, prev)]
        cfg = dict(spec.args)
        if cfg.get("kernel_size") == "map":
            cfg["kernel_size"] = (ins[0][1][0], ins[0][1][1])
        if len(out_shape) == 3 and min(out_shape[:2]) < 1:
            break
        state, macs, k, s, d, collapses = _layer_step(name, spec.kind, cfg, [i[0] for i in ins], [i[1] for i in ins],
                                                      out_shape)
        rows.append(Row(name, spec.kind, out_shape, params, int(macs), k, s, d, state.jump, state.rf,
                        state.start, collapses))
        prev = out_shape
        states.append((state, out_shape))
    return LayerTable(tuple(rows), plan.total_params, plan.trainable_params)
