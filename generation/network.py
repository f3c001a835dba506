"""The JAHS / NAS-Bench-201 network: a 4-node cell with 6 edges, N cells per stage, widths W, 2W, 4W.

Stem conv3x3 + BN -> stage 1 (N cells, W channels) -> ResNet block (stride 2) -> stage 2 (2W) ->
ResNet block -> stage 3 (4W) -> BN, activation, global average pool, linear. An edge op is
activation -> conv -> BN; ``none`` edges contribute zero and are skipped.
"""

from __future__ import annotations

import torch
from torch import nn

from jahs_gym.space import EDGES, Config

_ACT = {"ReLU": nn.ReLU, "Hardswish": nn.Hardswish, "Mish": nn.Mish}


def make_activation(name: str) -> nn.Module:
    """A new activation module.

    Args:
        name: ReLU, Hardswish or Mish.

    Returns:
        The module (not in place).
    """
    return _ACT[name](inplace=False)


class ActConvBN(nn.Sequential):
    """Activation -> conv (no bias, same padding) -> BatchNorm: an edge op and the ResNet block's halves."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, act: str) -> None:
        """Build it.

        Args:
            c_in: Input channels.
            c_out: Output channels.
            k: Kernel size.
            stride: Stride.
            act: The activation's name.
        """
        super().__init__(make_activation(act), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out))


def make_op(name: str, c: int, act: str) -> nn.Module | None:
    """The module of one cell edge.

    Args:
        name: One of :data:`jahs_gym.space.OPS`.
        c: Channels.
        act: The activation's name.

    Returns:
        The op, or None for ``none`` (the edge contributes zero and is skipped).

    Raises:
        ValueError: An unknown op.
    """
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    if name == "nor_conv_3x3":
        return ActConvBN(c, c, 3, 1, act)
    if name == "nor_conv_1x1":
        return ActConvBN(c, c, 1, 1, act)
    raise ValueError(f"unknown op {name!r}")


class Cell(nn.Module):
    """Node j = sum over edges (i, j) of op_ij(node i); nodes 1..4, node 1 is the input, node 4 the output."""

    def __init__(self, ops: tuple[str, ...], c: int, act: str) -> None:
        """Build it.

        Args:
            ops: The six edge ops, in :data:`jahs_gym.space.EDGES` order.
            c: Channels.
            act: The activation's name.
        """
        super().__init__()
        self.edges = nn.ModuleList()
        self.wiring: list[tuple[int, int, int]] = []  # (src, dst, module index)
        for (src, dst), name in zip(EDGES, ops):
            op = make_op(name, c, act)
            if op is not None:
                self.wiring.append((src, dst, len(self.edges)))
                self.edges.append(op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The cell's output node.

        Args:
            x: The input node, (batch, c, px, px).

        Returns:
            Node 4; zeros shaped like ``x`` when no path reaches it.
        """
        nodes: dict[int, torch.Tensor | None] = {1: x}
        for dst in (2, 3, 4):
            acc = None
            for src, d, idx in self.wiring:
                if d == dst and nodes[src] is not None:
                    y = self.edges[idx](nodes[src])
                    acc = y if acc is None else acc + y
            nodes[dst] = acc
        out = nodes[4]
        return torch.zeros_like(x) if out is None else out


class ResBlock(nn.Module):
    """The stride-2 ResNet basic block between stages (as in NAS-Bench-201)."""

    def __init__(self, c_in: int, c_out: int, act: str) -> None:
        """Build it.

        Args:
            c_in: Input channels.
            c_out: Output channels.
            act: The activation's name.
        """
        super().__init__()
        self.a = ActConvBN(c_in, c_out, 3, 2, act)
        self.b = ActConvBN(c_out, c_out, 3, 1, act)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output.

        Args:
            x: (batch, c_in, px, px).

        Returns:
            (batch, c_out, ceil(px / 2), ceil(px / 2)).
        """
        return self.b(self.a(x)) + self.shortcut(x)


class JAHSNetwork(nn.Module):
    """The whole network of a config at a fidelity (see the module docstring)."""

    def __init__(self, config: Config, n: int, w: int, in_channels: int = 3, n_classes: int = 10) -> None:
        """Build it.

        Args:
            config: The config (its ops and activation shape the network).
            n: Cells per stage.
            w: Channels of the first stage.
            in_channels: Image channels.
            n_classes: Output classes.
        """
        super().__init__()
        act, ops = config.Activation, config.ops
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w))
        layers: list[nn.Module] = []
        c = w
        for stage in range(3):
            if stage > 0:
                layers.append(ResBlock(c, 2 * c, act))
                c *= 2
            layers.extend(Cell(ops, c, act) for _ in range(n))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), make_activation(act), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            x: Images, (batch, in_channels, px, px).

        Returns:
            (batch, n_classes) logits.
        """
        return self.head(self.cells(self.stem(x)))


def n_params(model: nn.Module) -> int:
    """Trainable parameters.

    Args:
        model: A module.

    Returns:
        Their count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_mflops(model: nn.Module, in_channels: int, px: int) -> float:
    """Multiply-accumulates of conv and linear layers for one image, in millions.

    Args:
        model: The network.
        in_channels: Image channels.
        px: Image side.

    Returns:
        MFLOPs (multiply-accumulates / 1e6), counted with forward hooks on one zero image.
    """
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += out.numel() // out.shape[0] * k
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, px, px))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total / 1e6


def count_traffic(model: nn.Module, in_channels: int, px: int) -> tuple[float, int]:
    """(output elements in millions, layer calls) of one image's forward pass over the leaf modules.

    Proxies for memory traffic and per-call overhead; the encoding computes the same from the architecture.

    Args:
        model: The network.
        in_channels: Image channels.
        px: Image side.

    Returns:
        ``(output elements in millions, layer calls)``.
    """
    elems, calls = 0, 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal elems, calls
        elems += out.numel() // out.shape[0]
        calls += 1

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, px, px))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return elems / 1e6, calls


def count_melems(model: nn.Module, in_channels: int, px: int) -> float:
    """Output elements of every leaf module for one image, in millions: a proxy for memory traffic.

    Args:
        model: The network.
        in_channels: Image channels.
        px: Image side.

    Returns:
        MElems.
    """
    return count_traffic(model, in_channels, px)[0]
