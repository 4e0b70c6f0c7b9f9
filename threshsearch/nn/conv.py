"""A 3x3 'same' convolution that skips the work its zero padding would cost on tiny maps.

The paper's models keep the ImageNet stem on 32x32 inputs, so their last stages run on 2x2
and 1x1 feature maps. There a padded 3x3 convolution multiplies zeros for 5/9 (2x2) and
8/9 (1x1) of its work, and a CPU's convolution kernels do that work: the 3x3 convolutions
on these maps were 43 % of a ThreshNet-79 training step at 32x32 (docs/benchmarks.md).
On a 1x1 map only the centre tap meets data; on a 2x2 map each output position meets 4 of
the 9 taps, so the convolution is one matrix product of the flattened map with the 16
(output position, input position) blocks of the kernel. Both give the convolution's
outputs and gradients to rounding. They are used in eager mode on the CPU, where they were
measured; CUDA keeps cuDNN's convolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable


def _kernel_blocks(weight: torch.Tensor) -> torch.Tensor:
    """A view of a channels_last ``[out, in, 3, 3]`` kernel as ``[p, q, out, a, b, in]``, the
    tap that input position (a, b) meets at output position (1 - p, 1 - q): kernel row
    a + p, column b + q. The output position is reversed because strides cannot be negative."""
    out_channels, in_channels = weight.shape[:2]
    return weight.as_strided(
        (2, 2, out_channels, 2, 2, in_channels),
        (3 * in_channels, in_channels, 9 * in_channels, 3 * in_channels, in_channels, 1),
        weight.storage_offset(),
    )


def _zeros_like_kernel(out_channels: int, in_channels: int, like: torch.Tensor) -> torch.Tensor:
    # channels_last, the layout the Trainer keeps weights in: a gradient in another layout
    # costs a transposing copy of the whole kernel before the optimizer sees it.
    return torch.empty(out_channels, in_channels, 3, 3, dtype=like.dtype, device=like.device,
                       memory_format=torch.channels_last).zero_()


class _CentreTapConv(torch.autograd.Function):
    """conv2d(x, weight, padding=1) for a 1x1 map ``x``: only the centre tap meets data."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        centre = weight[:, :, 1, 1]
        pixels = x.flatten(1)
        ctx.save_for_backward(pixels, centre)
        return (pixels @ centre.t()).view(x.shape[0], -1, 1, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels, centre = ctx.saved_tensors
        grad_rows = grad.flatten(1)
        grad_x = (grad_rows @ centre).view(*pixels.shape, 1, 1)
        grad_weight = _zeros_like_kernel(*centre.shape, grad_rows)
        grad_weight[:, :, 1, 1] = grad_rows.t() @ pixels
        return grad_x, grad_weight


class _TwoByTwoConv(torch.autograd.Function):
    """conv2d(x, weight, padding=1) for a 2x2 map ``x``, as one matrix product."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        batch, in_channels = x.shape[:2]
        out_channels = weight.shape[0]
        kernel = weight.contiguous(memory_format=torch.channels_last)
        blocks = _kernel_blocks(kernel).reshape(4 * out_channels, 4 * in_channels)
        # Free for channels_last input: rows are (a, b, channel) in memory order already.
        pixels = x.permute(0, 2, 3, 1).reshape(batch, 4 * in_channels)
        ctx.save_for_backward(pixels, blocks)
        out = (pixels @ blocks.t()).view(batch, 2, 2, out_channels).flip(1, 2)
        return out.permute(0, 3, 1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels, blocks = ctx.saved_tensors
        batch = pixels.shape[0]
        out_channels, in_channels = blocks.shape[0] // 4, blocks.shape[1] // 4
        grad_rows = grad.permute(0, 2, 3, 1).flip(1, 2).reshape(batch, 4 * out_channels)
        grad_x = (grad_rows @ blocks).view(batch, 2, 2, in_channels).permute(0, 3, 1, 2)
        grad_blocks = (grad_rows.t() @ pixels).view(2, 2, out_channels, 2, 2, in_channels)
        grad_weight = _zeros_like_kernel(out_channels, in_channels, grad_blocks)
        taps = _kernel_blocks(grad_weight)
        # One output position at a time: within one, every tap is a different kernel element,
        # across them the same element recurs (the centre four times).
        for p in range(2):
            for q in range(2):
                taps[p, q].add_(grad_blocks[p, q])
        return grad_x, grad_weight


class Conv3x3(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)``, computed without
    the padding's work on 1x1 maps, and on 2x2 maps for batches of two or more, on the CPU.
    Same parameters, same state dict."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        # Traced and exported graphs (ONNX, torch.export, torch.compile) get the plain
        # convolution: portable, and free of a branch on the input's shape.
        if (x.device.type == "cpu" and x.dtype == self.weight.dtype
                and not torch.is_autocast_enabled("cpu")
                and not torch.jit.is_tracing() and not torch.compiler.is_compiling()):
            if height == width == 1:
                return _CentreTapConv.apply(x, self.weight)
            # A single image is left to the convolution: its CPU kernel for batch 1 beat the
            # matrix product, which first copies the kernel's 16 blocks (4 against 1.4 ms
            # over ThreshNet-79's 2x2 layers); from batch 2 on, the product wins.
            if height == width == 2 and x.shape[0] > 1:
                return _TwoByTwoConv.apply(x, self.weight)
        return super().forward(x)
