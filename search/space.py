"""Search spaces: declarative TOML files read into frozen, validated data.

A space is plain data and never imports Keras. Every block field is either a
fixed value, a list of choices, or a range table ``{min, max, step}``. A free
field becomes a named *parameter* (``blocks[2].channels``); a dict of chosen
values for all parameters turns the space into exactly one concrete network
(:meth:`Space.resolve`), so a space with no free fields *is* one network.
"""

from __future__ import annotations

import math
import random
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from budgetnas.errors import ConfigError

CONV_KINDS = ("conv", "separable", "depthwise", "pointwise", "factorized")  # factorized: k×1 then 1×k
POOL_KINDS = ("maxpool", "avgpool")
BLOCK_KINDS = CONV_KINDS + POOL_KINDS
# prelu: one learned slope per channel (Keras PReLU(shared_axes=[1, 2])); leaky_relu: slope 0.2
ACTIVATIONS = ("relu", "relu6", "elu", "gelu", "swish", "linear", "prelu", "leaky_relu")
BATCHNORM = ("none", "before", "after")  # position relative to the activation
PADDINGS = ("valid", "same")
HEAD_KINDS = ("gap", "shrink", "flatten")
HEAD_LAYERS = ("conv", "separable", "dense")
HEAD_DEFAULT_LAYER = {"gap": "conv", "shrink": "conv", "flatten": "dense"}  # when head.layer is not written

# Per-field type and the allowed values (None: any value of the type).
_BLOCK_FIELDS: dict[str, tuple[type, tuple | None]] = {
    "kind": (str, BLOCK_KINDS),
    "channels": (int, None),
    "depth_multiplier": (int, None),
    "kernel": (int, None),
    "stride": (int, None),
    "dilation": (int, None),
    "padding": (str, PADDINGS),
    "repeat": (int, None),
    "activation": (str, ACTIVATIONS),
    "batchnorm": (str, BATCHNORM),
    "dropout": (float, None),
    "bias": (bool, None),
    "residual": (bool, None),
    "shared": (bool, None),
}
# Block fields that only some convolution kinds use (other kinds build the same network whatever
# their value): the rule behind active-only sampling, for both drivers.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "channels": ("conv", "separable", "pointwise", "factorized"),
    "depth_multiplier": ("separable", "depthwise"),
    "kernel": ("conv", "separable", "depthwise", "factorized"),  # a pointwise block is always 1x1
}
# Fields that only make sense on convolutions; a pooling block may not set them.
_CONV_ONLY = ("channels", "depth_multiplier", "dilation", "activation", "batchnorm", "bias", "residual", "shared")
_BLOCK_DEFAULTS: dict[str, Any] = {
    "kernel": 3,
    "stride": 1,
    "dilation": 1,
    "padding": "valid",
    "repeat": 1,
    "activation": "relu",
    "batchnorm": "none",
    "dropout": 0.0,
    "bias": True,
    "depth_multiplier": 1,
    "residual": False,
    "shared": False,
}
_HEAD_FIELDS: dict[str, tuple[type, tuple | None]] = {
    "kind": (str, HEAD_KINDS),
    "layer": (str, HEAD_LAYERS),
    "batchnorm": (bool, None),
    "dropout": (float, None),
    "hidden": (list, None),
}


@dataclass(frozen=True)
class Domain:
    """The options of one free parameter, in the order they were written.

    ``low``/``high``/``step`` are set for ranges so samplers can keep the order.
    """

    options: tuple
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False  # an integer range sampled uniformly in log(value): as many 4-8 as 16-32

    @property
    def is_range(self) -> bool:
        return self.step is not None

    def sample(self, rng: random.Random) -> Any:
        if self.log:
            return min(int(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))), int(self.high))
        return rng.choice(self.options)


@dataclass(frozen=True)
class Param:
    """One named free choice of a space, e.g. ``blocks[2].channels``."""

    name: str
    domain: Domain


@dataclass(frozen=True)
class Block:
    """One block as written: each field is a fixed value, a Domain, or a shared default name."""

    index: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class ConcreteBlock:
    """A block with every value chosen, expanded by its repeat count."""

    kind: str
    channels: int | None
    depth_multiplier: int
    kernel: int
    stride: int
    dilation: int
    padding: str
    activation: str
    batchnorm: str
    dropout: float
    bias: bool
    source: int  # index of the block in the space file
    residual: bool = False  # this block's repeats, together, add their input back (see build.layer_specs)
    shared: bool = False  # this block's repeats apply one convolution, its weights counted once


@dataclass(frozen=True)
class ConcreteHead:
    kind: str
    layer: str
    batchnorm: bool
    dropout: float
    hidden: tuple[int, ...]


@dataclass(frozen=True)
class Architecture:
    """One concrete network: what the builder turns into a Keras model."""

    input_shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    blocks: tuple[ConcreteBlock, ...]
    head: ConcreteHead

    def key(self) -> str:
        """What the built network is, independent of how it was spelled (which block index, which
        parameter). Two values with the same key build the same Keras model."""
        import json
        from dataclasses import asdict

        d = asdict(self)
        for b in d["blocks"]:
            b.pop("source")
            for flag in ("residual", "shared"):
                if not b[flag]:
                    b.pop(flag)  # plain blocks keep the keys they had before these blocks existed
        return json.dumps(d, sort_keys=True)

    def describe(self) -> str:
        """A one-line architecture string, e.g. ``C16 C32 P1x1 M ... | gap-conv``.

        A residual block's repeats are drawn in parentheses followed by ``+``: ``(S64pB S64pB)+``; a shared
        block's once, in brackets, with the number of applications: ``[S26pb]x3``; a factorized block is
        ``F`` (``F12b``: 3×1 then 1×3, 12 wide); a PReLU or leaky-ReLU activation adds ``r`` or ``l``.
        """
        parts = []
        for i, b in enumerate(self.blocks):
            first = i == 0 or self.blocks[i - 1].source != b.source
            if b.shared and not first:
                continue
            if b.kind in POOL_KINDS:
                tag = ("M" if b.kind == "maxpool" else "A") + (str(b.kernel) if b.kernel != 2 else "")
            else:
                letter = {"conv": "C", "separable": "S", "depthwise": "D", "pointwise": "P", "factorized": "F"}[b.kind]
                width = f"x{b.depth_multiplier}" if b.kind == "depthwise" else str(b.channels)
                tag = f"{letter}{width}"
                if b.kind != "pointwise" and b.kernel != 3:
                    tag += f"k{b.kernel}"
                if b.stride != 1:
                    tag += f"s{b.stride}"
                if b.dilation != 1:
                    tag += f"d{b.dilation}"
                if b.padding == "same":
                    tag += "p"
                if b.batchnorm != "none":
                    tag += "b" if b.batchnorm == "after" else "B"
                tag += {"prelu": "r", "leaky_relu": "l"}.get(b.activation, "")
            if b.dropout:
                tag += f"~{b.dropout:g}"
            if b.shared:
                tag = f"[{tag}]x{sum(1 for o in self.blocks if o.source == b.source)}"
            if b.residual:
                if first:
                    tag = "(" + tag
                if b.shared or i == len(self.blocks) - 1 or self.blocks[i + 1].source != b.source:
                    tag += ")+"
            parts.append(tag)
        h = self.head
        head = f"{h.kind}-{h.layer}" + ("".join(f"-{u}" for u in h.hidden)) + ("+bn" if h.batchnorm else "")
        return " ".join(parts) + " | " + head


@dataclass(frozen=True)
class Space:
    """A validated search space. ``path`` is where it was read from (for messages)."""

    name: str
    path: str
    description: str
    input_shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    defaults: Mapping[str, Any]
    blocks: tuple[Block, ...]
    head: Mapping[str, Any]
    params: tuple[Param, ...] = field(default=())
    # named points a search begins with (``[[start]]`` tables): every parameter's value, first options filled in
    start: tuple[tuple[str, Mapping[str, Any]], ...] = field(default=())

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ConfigError(f"{self.path}: no free parameter named {name!r}")

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """Uniformly random values for the active parameters (see :meth:`choose`)."""
        return self.choose(lambda p: p.domain.sample(rng))

    # ---------------------------------------------------------------- conditional (active-only) choice
    def ask_order(self) -> tuple[Param, ...]:
        """Parameters in an order where each one's activity is known when it is asked for.

        Block by block, its ``repeat`` and ``kind`` first; then the head; ``defaults.*`` last
        (a shared default matters only if some present block uses it).
        """
        def key(p: Param) -> tuple[int, int, int]:
            if p.name.startswith("blocks["):
                index, field = p.name[7:].split("].", 1)
                return 0, int(index), {"repeat": 0, "kind": 1}.get(field, 2)
            return (1, 0, 0) if p.name.startswith("head.") else (2, 0, 0)

        return tuple(sorted(self.params, key=key))

    def is_active(self, name: str, values: Mapping[str, Any]) -> bool:
        """Whether parameter ``name`` changes the network, given the values chosen before it.

        A block's fields matter only when the block is present (``repeat`` > 0); ``channels`` only
        for conv/separable/pointwise/factorized, ``depth_multiplier`` only for separable/depthwise, ``kernel``
        not for pointwise (always 1x1), ``shared`` only for two or more repeats; a ``defaults.*`` choice only
        if a present block uses it.
        """
        if name.startswith("blocks["):
            index, fld = name[7:].split("].", 1)
            return self._block_uses(self.blocks[int(index)], fld, values)
        if name.startswith("defaults."):
            fld = name.split(".", 1)[1]
            return any(isinstance(b.fields.get(fld), _Shared) and b.fields[fld].name == name
                       and self._block_uses(b, fld, values) for b in self.blocks)
        return True

    def _block_uses(self, block: Block, fld: str, values: Mapping[str, Any]) -> bool:
        def value(key: str) -> Any:
            raw = block.fields[key]
            return values.get(f"blocks[{block.index}].{key}") if isinstance(raw, Domain) else raw

        if fld == "repeat":
            return True
        if value("repeat") == 0:
            return False
        if fld == "shared":  # one application shares nothing
            return value("repeat") >= 2
        kind = value("kind")
        return kind in KIND_FIELDS[fld] if fld in KIND_FIELDS and kind not in POOL_KINDS else True

    def choose(self, ask: Callable[[Param], Any]) -> dict[str, Any]:
        """Values for every parameter, calling ``ask(param)`` only for the active ones.

        Inactive parameters take their first option, so one network has one spelling: a sampler
        spends no trials (or model capacity) on choices that build nothing. Optuna's define-by-run
        trials and keras-tuner's conditional scopes both use this.
        """
        values: dict[str, Any] = {}
        for p in self.ask_order():
            values[p.name] = ask(p) if self.is_active(p.name, values) else p.domain.options[0]
        return {p.name: values[p.name] for p in self.params}

    def canonical(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with every inactive parameter at its first option (other keys kept as given)."""
        known = {p.name for p in self.params}
        out = dict(values)
        chosen: dict[str, Any] = {}
        for p in self.ask_order():
            if p.name in values:
                chosen[p.name] = values[p.name] if self.is_active(p.name, chosen) else p.domain.options[0]
        out.update({k: v for k, v in chosen.items() if k in known})
        return out

    def resolve(self, values: Mapping[str, Any]) -> Architecture:
        """Turn chosen values into one concrete architecture (values must cover every parameter)."""
        names = {p.name for p in self.params}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{self.path}: values name unknown parameter(s) {', '.join(unknown)}")
        for p in self.params:
            if p.name not in values:
                raise ConfigError(f"{self.path}: no value given for parameter {p.name}")
            if values[p.name] not in p.domain.options:
                raise ConfigError(
                    f"{self.path}: {p.name} = {values[p.name]!r} is not one of {list(p.domain.options)}"
                )

        def pick(raw: Any, name: str) -> Any:
            if isinstance(raw, Domain):
                return values[name]
            if isinstance(raw, _Shared):
                return values[raw.name] if raw.name in names else raw.value
            return raw

        blocks: list[ConcreteBlock] = []
        for block in self.blocks:
            got = {k: pick(v, f"blocks[{block.index}].{k}") for k, v in block.fields.items()}
            pooling = got["kind"] in POOL_KINDS
            for _ in range(got["repeat"]):
                blocks.append(
                    ConcreteBlock(
                        kind=got["kind"],
                        channels=None if pooling or got["kind"] == "depthwise" else got.get("channels"),
                        depth_multiplier=got["depth_multiplier"],
                        kernel=1 if got["kind"] == "pointwise" else got["kernel"],
                        stride=got["stride"] if got["stride"] is not None else got["kernel"],
                        dilation=1 if pooling else got["dilation"],
                        padding=got["padding"],
                        activation="linear" if pooling else got["activation"],
                        batchnorm="none" if pooling else got["batchnorm"],
                        dropout=float(got["dropout"]),
                        bias=got["bias"],
                        source=block.index,
                        residual=False if pooling else got["residual"],
                        shared=False if pooling else got["shared"] and got["repeat"] >= 2,
                    )
                )
        h = {k: pick(v, f"head.{k}") for k, v in self.head.items()}
        head = ConcreteHead(
            kind=h["kind"],
            layer=h["layer"] or HEAD_DEFAULT_LAYER[h["kind"]],
            batchnorm=h["batchnorm"],
            dropout=float(h["dropout"]),
            hidden=hidden_units(h["hidden"]),
        )
        _check_head(self.path, head)
        return Architecture(self.input_shape, self.classes, self.mean, self.std, tuple(blocks), head)


@dataclass(frozen=True)
class _Shared:
    """A block field that follows ``[defaults]``; free if the default is a choice."""

    name: str
    value: Any = None


def _check_head(path: str, head: ConcreteHead) -> None:
    allowed = {"gap": ("conv", "separable", "dense"), "shrink": ("conv", "separable"), "flatten": ("dense",)}
    if head.layer not in allowed[head.kind]:
        raise ConfigError(
            f"{path}: head.layer = {head.layer!r} does not go with head.kind = {head.kind!r} "
            f"(allowed: {', '.join(allowed[head.kind])})"
        )
    if head.hidden and head.layer != "dense":
        raise ConfigError(f"{path}: head.hidden (dense layers before the classes) needs head.layer = \"dense\", "
                          f"not {head.layer!r}")


def _domain(path: str, where: str, raw: Any, typ: type, allowed: tuple | None) -> Any:
    """Parse a fixed value, a list of choices, or a ``{min, max, step}`` range."""

    def one(v: Any, label: str) -> Any:
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if typ is int and isinstance(v, bool) or not isinstance(v, typ):
            raise ConfigError(f"{path}: {label} = {v!r} must be {typ.__name__}")
        if allowed is not None and v not in allowed:
            raise ConfigError(f"{path}: {label} = {v!r} must be one of {', '.join(map(str, allowed))}")
        return v

    if typ is list:  # head.hidden: a list of dense widths, or a list of such lists (a choice, by label)
        if isinstance(raw, list) and raw and all(isinstance(v, list) for v in raw):
            for v in raw:
                _hidden(path, where, v)
            labels = tuple(hidden_label(v) for v in raw)
            if len(set(labels)) != len(labels):
                raise ConfigError(f"{path}: {where} lists a choice twice")
            return labels[0] if len(labels) == 1 else Domain(labels)
        return raw
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{path}: {where} is an empty list of choices")
        opts = tuple(one(v, f"{where}[{i}]") for i, v in enumerate(raw))
        if len(set(opts)) != len(opts):
            raise ConfigError(f"{path}: {where} lists a choice twice")
        return opts[0] if len(opts) == 1 else Domain(opts)
    if isinstance(raw, dict):
        extra = set(raw) - {"min", "max", "step", "log"}
        if extra or not {"min", "max"} <= set(raw):
            raise ConfigError(f"{path}: {where} range must have keys min, max and optional step and log")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{path}: {where}.log = {log!r} must be true or false")
        if log and (typ is not int or raw.get("step", 1) != 1 or raw["min"] < 1):
            raise ConfigError(f"{path}: {where}: a log range is an int range with min ≥ 1 and step 1")
        if typ not in (int, float):
            raise ConfigError(f"{path}: {where} cannot be a range")
        lo, hi = one(raw["min"], f"{where}.min"), one(raw["max"], f"{where}.max")
        if "step" not in raw and typ is float:
            raise ConfigError(f"{path}: {where}: a float range needs a step")
        step = one(raw.get("step", 1), f"{where}.step")
        if step <= 0:
            raise ConfigError(f"{path}: {where}.step must be > 0")
        if hi < lo:
            raise ConfigError(f"{path}: {where}.max = {hi} is below min = {lo}")
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        opts = tuple(lo + i * step if typ is int else round(lo + i * step, 6) for i in range(n))
        return opts[0] if n == 1 else Domain(opts, lo, opts[-1], step, log)
    return one(raw, where)


def hidden_label(units) -> str:
    """The name of one choice of head.hidden: ``"none"``, ``"16"``, ``"32-16"`` (search libraries take strings)."""
    return "-".join(str(u) for u in units) if units else "none"


def hidden_units(value) -> tuple[int, ...]:
    """head.hidden as dense widths, from a fixed list or a chosen label (:func:`hidden_label`)."""
    if isinstance(value, str):
        return () if value == "none" else tuple(int(u) for u in value.split("-"))
    return tuple(value)


def _hidden(path: str, where: str, value: Any) -> None:
    if not (isinstance(value, list) and all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in value)):
        raise ConfigError(f"{path}: {where} must be a list of positive ints (dense units), or a list of such lists")


def _check_keys(path: str, where: str, table: Mapping, known) -> None:
    for key in table:
        if key not in known:
            prefix = f"{where}." if where else ""
            raise ConfigError(f"{path}: {prefix}{key}: unknown key (known: {', '.join(known)})")


def _positive(path: str, where: str, value: Any, minimum: float = 1) -> None:
    opts = value.options if isinstance(value, Domain) else (value,)
    for v in opts:
        if v < minimum:
            raise ConfigError(f"{path}: {where} = {v}, must be ≥ {minimum}")


def parse_space(data: Mapping[str, Any], path: str) -> Space:
    """Validate a parsed TOML mapping into a :class:`Space`; errors name ``path`` and the field."""
    _check_keys(path, "", data, ("name", "description", "input", "defaults", "blocks", "head", "start"))
    for key in ("name", "input", "blocks", "head"):
        if key not in data:
            raise ConfigError(f"{path}: {key}: required key is missing")
    inp = data["input"]
    if not isinstance(inp, dict):
        raise ConfigError(f"{path}: input must be a table")
    _check_keys(path, "input", inp, ("shape", "classes", "mean", "std"))
    shape = inp.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise ConfigError(f"{path}: input.shape = {shape!r} must be [height, width, channels] of positive ints")
    classes = inp.get("classes")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
        raise ConfigError(f"{path}: input.classes = {classes!r} must be an int ≥ 2")
    stats = {}
    for key, default in (("mean", 0.0), ("std", 1.0)):
        raw = inp.get(key, [default] * shape[2])
        if not (isinstance(raw, list) and len(raw) == shape[2] and all(isinstance(v, (int, float)) for v in raw)):
            raise ConfigError(f"{path}: input.{key} must list one number per channel ({shape[2]})")
        stats[key] = tuple(float(v) for v in raw)
    if any(v <= 0 for v in stats["std"]):
        raise ConfigError(f"{path}: input.std must be > 0")

    params: dict[str, Domain] = {}
    defaults_raw = data.get("defaults", {})
    if not isinstance(defaults_raw, dict):
        raise ConfigError(f"{path}: defaults must be a table")
    _check_keys(path, "defaults", defaults_raw, [k for k in _BLOCK_FIELDS if k not in ("kind", "repeat")])
    defaults: dict[str, Any] = {}
    for key, value in _BLOCK_DEFAULTS.items():
        defaults[key] = value
    for key, raw in defaults_raw.items():
        typ, allowed = _BLOCK_FIELDS[key]
        defaults[key] = _domain(path, f"defaults.{key}", raw, typ, allowed)
        if isinstance(defaults[key], Domain):
            params[f"defaults.{key}"] = defaults[key]

    raw_blocks = data["blocks"]
    if not isinstance(raw_blocks, list) or not raw_blocks or not all(isinstance(b, dict) for b in raw_blocks):
        raise ConfigError(f"{path}: blocks must be a non-empty array of tables ([[blocks]])")
    blocks = []
    for i, raw in enumerate(raw_blocks):
        where = f"blocks[{i}]"
        _check_keys(path, where, raw, tuple(_BLOCK_FIELDS))
        if "kind" not in raw:
            raise ConfigError(f"{path}: {where}.kind: required key is missing")
        fields: dict[str, Any] = {}
        for key, value in raw.items():
            typ, allowed = _BLOCK_FIELDS[key]
            fields[key] = _domain(path, f"{where}.{key}", value, typ, allowed)
        kinds = fields["kind"].options if isinstance(fields["kind"], Domain) else (fields["kind"],)
        pooling = kinds[0] in POOL_KINDS
        if any((k in POOL_KINDS) != pooling for k in kinds):
            raise ConfigError(f"{path}: {where}.kind mixes pooling and convolution choices")
        if pooling:
            for key in _CONV_ONLY:
                if key in raw:
                    raise ConfigError(f"{path}: {where}.{key}: not allowed on a pooling block")
            for key in _CONV_ONLY:
                fields[key] = _BLOCK_DEFAULTS.get(key)
            fields.setdefault("kernel", 2)
            fields.setdefault("stride", None)  # None: stride = pool size
            fields.setdefault("padding", "valid")
            fields.setdefault("dropout", 0.0)
        else:
            needs_channels = any(k in KIND_FIELDS["channels"] for k in kinds)
            if needs_channels and "channels" not in raw:
                raise ConfigError(f"{path}: {where}.channels: required for kind {'/'.join(kinds)}")
            for key in _BLOCK_FIELDS:
                if key not in fields and key != "channels":
                    default = defaults.get(key)
                    fields[key] = (
                        _Shared(f"defaults.{key}") if isinstance(default, Domain) else _Shared("", default)
                    )
        fields.setdefault("repeat", 1)
        for key, minimum in (("channels", 1), ("kernel", 1), ("stride", 1), ("dilation", 1),
                             ("depth_multiplier", 1), ("repeat", 0)):
            if key in fields and not isinstance(fields[key], _Shared) and fields[key] is not None:
                _positive(path, f"{where}.{key}", fields[key], minimum)
        if "dropout" in fields and not isinstance(fields["dropout"], _Shared):
            for v in fields["dropout"].options if isinstance(fields["dropout"], Domain) else (fields["dropout"],):
                if not 0.0 <= v < 1.0:
                    raise ConfigError(f"{path}: {where}.dropout = {v}, must be in [0, 1)")
        for key, value in fields.items():
            if isinstance(value, Domain):
                params[f"{where}.{key}"] = value
        blocks.append(Block(i, _frozen(fields)))

    head_raw = data["head"]
    if not isinstance(head_raw, dict):
        raise ConfigError(f"{path}: head must be a table")
    _check_keys(path, "head", head_raw, tuple(_HEAD_FIELDS))
    if "kind" not in head_raw:
        raise ConfigError(f"{path}: head.kind: required key is missing")
    head: dict[str, Any] = {"layer": None, "batchnorm": False, "dropout": 0.0, "hidden": []}
    for key, value in head_raw.items():
        typ, allowed = _HEAD_FIELDS[key]
        head[key] = _domain(path, f"head.{key}", value, typ, allowed)
        if isinstance(head[key], Domain):
            params[f"head.{key}"] = head[key]
    if not isinstance(head["hidden"], (Domain, str)):
        _hidden(path, "head.hidden", head["hidden"])
    if head["layer"] is None and not isinstance(head["kind"], Domain):
        head["layer"] = HEAD_DEFAULT_LAYER[head["kind"]]  # a choice of kinds: each kind's own layer (resolve)
    if not isinstance(head["kind"], Domain) and not isinstance(head["layer"], Domain):
        _check_head(path, ConcreteHead(head["kind"], head["layer"], False, 0.0, ()))

    name = data["name"]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: name must be a non-empty string")
    space = Space(
        name=name,
        path=path,
        description=str(data.get("description", "")),
        input_shape=tuple(shape),  # type: ignore[arg-type]
        classes=classes,
        mean=stats["mean"],
        std=stats["std"],
        defaults=_frozen(defaults),
        blocks=tuple(blocks),
        head=_frozen(head),
        params=tuple(Param(n, d) for n, d in params.items()),
    )
    return replace(space, start=_start_points(path, data.get("start", []), space))


def _start_points(path: str, raw: Any, space: Space) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """``[[start]]`` tables: a ``name`` and values for some parameters (the rest take their first option), each
    one network of the space; a search enqueues them before it samples (``budgetnas search --no-start`` not)."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(f"{path}: start must be an array of tables ([[start]])")
    out = []
    for i, table in enumerate(raw):
        where = f"start[{i}]"
        label = table.get("name")
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{path}: {where}.name: a start point needs a name")
        values = {p.name: p.domain.options[0] for p in space.params}
        for key, value in table.items():
            if key == "name":
                continue
            if key not in values:
                raise ConfigError(f"{path}: {where}.{key}: not a free parameter of this space")
            opts = space.param(key).domain.options
            if value not in opts or isinstance(value, bool) != isinstance(opts[0], bool):
                raise ConfigError(f"{path}: {where}.{key} = {value!r} is not one of {list(opts)}")
            values[key] = opts[opts.index(value)]  # the option as written in the space (0.0, not 0)
        space.resolve(values)  # the head must go with its layer, as for any sample
        out.append((label, _frozen(space.canonical(values))))
    return tuple(out)


def _frozen(d: dict) -> Mapping[str, Any]:
    from types import MappingProxyType

    return MappingProxyType(dict(d))


def read_toml(p: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; every failure is one ConfigError line naming the file."""
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such {what} file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: malformed TOML: {exc}") from None


def shipped(rel: str = "") -> Path:
    """A file shipped inside the installed package (``budgets.toml``, ``spaces/...``)."""
    from importlib.resources import files

    return Path(str(files(__package__))) / rel


def load_space(path: str | Path) -> Space:
    """Read and validate a space file; a name without ``.toml`` (``mnist_tiny``, ``anchors/golf_820``) names a
    shipped space."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and (shipped("spaces") / f"{p}.toml").is_file():
        p = shipped("spaces") / f"{p}.toml"
    return parse_space(read_toml(p, "space"), str(p))
