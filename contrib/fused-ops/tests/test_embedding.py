"""kernel_fused::masked_mean_embedding against kernel.fused.masked_mean_embedding_reference.

Tolerances: float64 to 1e-12; float32 to rtol 1e-5 / atol 1e-6: both sum the same rows in token order
and divide by the count, but the reference's reduction may block its sum differently and its
backward accumulates a weight row's tokens in another order (float32 addition is not associative)."""
from __future__ import annotations

import pytest
import torch

kernel_fused_ops = pytest.importorskip("kernel_fused_ops",
                                       reason="kernel-fused-ops is not built: pip install contrib/fused-ops")

from kernel import fused  # noqa: E402
from kernel_fused_ops.testing import devices  # noqa: E402

DEVICES = devices("masked_mean_embedding")
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}


def sample(n, length, v, d, device, dtype=torch.float64, seed=0, padding=0.3):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(v, d, generator=g, dtype=dtype).to(device)
    indices = torch.randint(0, v, (n, length), generator=g)
    mask = torch.rand(n, length, generator=g) < padding
    indices[mask & (torch.rand(n, length, generator=g) < 0.5)] = 0  # a padding id, as tokenisers write
    return weight, indices.to(device), mask.to(device)


def out_and_grad(fn, weight, indices, mask):
    w = weight.detach().clone().requires_grad_(True)
    out = fn(w, indices, mask)
    upstream = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(5)).to(out.device)
    (grad,) = torch.autograd.grad(out, w, upstream) if out.numel() else (torch.zeros_like(w),)
    return out.detach(), grad


def assert_matches_reference(weight, indices, mask):
    out, grad = out_and_grad(torch.ops.kernel_fused.masked_mean_embedding, weight, indices, mask)
    ref_out, ref_grad = out_and_grad(fused.masked_mean_embedding_reference, weight, indices, mask)
    torch.testing.assert_close(out, ref_out, **TOL[weight.dtype])
    torch.testing.assert_close(grad, ref_grad, **TOL[weight.dtype])


# -- registration ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 5, 11, 4), (2, 7, 6, 17), (1, 1, 3, 9)])
def test_opcheck(device, shape):
    weight, indices, mask = sample(*shape, device, seed=sum(shape))
    mask[0] = True  # a row of padding only
    torch.library.opcheck(torch.ops.kernel_fused.masked_mean_embedding.default,
                          (weight.requires_grad_(), indices, mask))
    grad = torch.randn(shape[0], shape[3], dtype=weight.dtype, device=device)
    torch.library.opcheck(torch.ops.kernel_fused.masked_mean_embedding_backward.default,
                          (grad, indices, mask, shape[2]))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    weight, indices, mask = sample(4, 6, 5, 3, device, seed=1)  # few ids: rows shared by many tokens
    mask[2] = True
    weight.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w: torch.ops.kernel_fused.masked_mean_embedding(w, indices, mask),
                                    (weight,))


# -- agreement with the reference --------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_random(device, dtype):
    g = torch.Generator().manual_seed(2)
    for trial in range(12):
        n, length, v = (int(torch.randint(1, hi, (), generator=g)) for hi in (20, 40, 300))
        d = int(torch.randint(1, 80, (), generator=g))  # below, at and above the vector widths
        weight, indices, mask = sample(n, length, v, d, device, dtype, seed=trial, padding=[0.0, 0.3, 0.9][trial % 3])
        assert_matches_reference(weight, indices, mask)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["weight_column_slice", "weight_transposed", "tokens_transposed", "expanded"])
def test_any_strides(device, layout):
    weight, indices, mask = sample(6, 9, 30, 20, device, torch.float32, seed=3)
    if layout == "weight_column_slice":
        weight = torch.cat([weight, weight], 1)[:, 5:25]  # unit stride, longer rows
    elif layout == "weight_transposed":
        weight = weight.t().contiguous().t()
    elif layout == "tokens_transposed":
        indices, mask = indices.t().contiguous().t(), mask.t().contiguous().t()
    else:
        indices, mask = indices[:1].expand(6, 9), mask[:1].expand(6, 9)
    assert not (weight.is_contiguous() and indices.is_contiguous())
    assert_matches_reference(weight, indices, mask)


# -- edge cases ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_padding_rows_and_ids(device):
    weight, indices, mask = sample(5, 8, 10, 6, device, seed=4)
    mask[1] = True
    indices[1] = 12345  # padding positions may hold anything, even an id past the table
    indices[3, mask[3]] = -1
    out, grad = out_and_grad(torch.ops.kernel_fused.masked_mean_embedding, weight, indices, mask)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    keep = ~mask[3]
    torch.testing.assert_close(out[3], weight[indices[3, keep]].mean(0), rtol=1e-12, atol=1e-12)
    assert_matches_reference(weight, indices.clamp(0, 9), mask)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(0, 4, 10, 3), (3, 0, 10, 3), (3, 4, 10, 0), (2, 3, 0, 5)])
def test_empty(device, shape):
    n, length, v, d = shape
    weight = torch.randn(v, d, dtype=torch.float64, device=device, requires_grad=True)
    indices = torch.zeros(n, length, dtype=torch.long, device=device)
    mask = torch.ones(n, length, dtype=torch.bool, device=device)  # all padding: valid even for V = 0
    out = torch.ops.kernel_fused.masked_mean_embedding(weight, indices, mask)
    assert out.shape == (n, d) and torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert weight.grad.shape == (v, d) and torch.equal(weight.grad, torch.zeros_like(weight))


@pytest.mark.parametrize("device", DEVICES)
def test_bad_arguments(device):
    weight, indices, mask = sample(3, 4, 10, 5, device, seed=6, padding=0)
    bad = indices.clone()
    bad[1, 2] = 10
    with pytest.raises(RuntimeError, match=r"index 10 at position \(1, 2\) is out of range"):
        torch.ops.kernel_fused.masked_mean_embedding(weight, bad, mask)
    with pytest.raises(RuntimeError, match=r"index 10 at position \(1, 2\) is out of range"):
        torch.ops.kernel_fused.masked_mean_embedding_backward(torch.ones(3, 5, dtype=weight.dtype), bad, mask, 10)
    with pytest.raises(RuntimeError, match="padding_mask must have the shape"):
        torch.ops.kernel_fused.masked_mean_embedding(weight, indices, mask[:, :2])
    with pytest.raises(RuntimeError, match="padding_mask must be bool"):
        torch.ops.kernel_fused.masked_mean_embedding(weight, indices, mask.int())
    with pytest.raises(RuntimeError, match="indices must be int64"):
        torch.ops.kernel_fused.masked_mean_embedding(weight, indices.int(), mask)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        torch.ops.kernel_fused.masked_mean_embedding(weight.half(), indices, mask)


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_deterministic(device):
    # many tokens on few rows, split over threads: the same bits every time
    weight, indices, mask = sample(512, 64, 7, 33, device, torch.float32, seed=7)
    grad = torch.randn(512, 33, device=device)
    first = torch.ops.kernel_fused.masked_mean_embedding_backward(grad, indices, mask, 7)
    for _ in range(3):
        assert torch.equal(torch.ops.kernel_fused.masked_mean_embedding_backward(grad, indices, mask, 7), first)


# -- the dispatching function ------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_dispatch_takes_the_fused_kernel(device):
    assert fused.op("masked_mean_embedding") is not None and fused.has_kernel("masked_mean_embedding", device)
    weight, indices, mask = sample(4, 6, 20, 8, device, torch.float32, seed=8)
    weight.requires_grad_(True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], acc_events=True) as prof:
        fused.masked_mean_embedding(weight, indices.int(), mask).sum().backward()  # int32 ids are widened
    names = {e.name for e in prof.events()}
    assert {"kernel_fused::masked_mean_embedding", "kernel_fused::masked_mean_embedding_backward"} <= names
    assert "aten::embedding" not in names


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Your compiler for AOTAutograd")
def test_compiled_matches_eager():
    from torch._dynamo.testing import AotEagerAndRecordGraphs

    weight, indices, mask = sample(5, 7, 30, 12, "cpu", torch.float32, seed=9)

    def step(w):
        return fused.masked_mean_embedding(w * 2, indices, mask).square().sum()

    w_eager = weight.clone().requires_grad_(True)
    w_compiled = weight.clone().requires_grad_(True)
    eager = step(w_eager)
    eager.backward()
    # AOT eager traces through dynamo and AOT autograd (fake kernels, the autograd formula) as inductor
    # does, without its seconds of C++ code generation; it keeps the graphs to look into
    backend = AotEagerAndRecordGraphs()
    compiled = torch.compile(step, fullgraph=True, backend=backend)(w_compiled)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(w_compiled.grad, w_eager.grad)
    assert "kernel_fused.masked_mean_embedding.default" in backend.fw_graphs[0].code
    assert "kernel_fused.masked_mean_embedding_backward.default" in backend.bw_graphs[0].code
