"""kernel_fused::cross_entropy against F.cross_entropy (kernel.fused.cross_entropy_reference).

Tolerances: float64 agrees to 1e-10 (only the summation order differs); float32 to rtol 1e-5 /
atol 1e-6, because the kernel sums in another order and uses a 20-ulp polynomial exp (2e-6 relative
per term, far below what a float32 loss of O(1) resolves after summing)."""
from __future__ import annotations

import pytest
import torch

kernel_fused_ops = pytest.importorskip("kernel_fused_ops",
                                       reason="kernel-fused-ops is not built: pip install contrib/fused-ops")

from kernel import fused  # noqa: E402
from kernel_fused_ops.testing import devices  # noqa: E402

DEVICES = devices("cross_entropy")
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}


def fused_op(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    return torch.ops.kernel_fused.cross_entropy(logits, target, weight, ignore_index, label_smoothing,
                                                fused.REDUCTIONS[reduction])


def loss_and_grad(fn, logits, target, **kw):
    """The loss, and the gradient of the logits under a fixed random upstream gradient."""
    x = logits.detach().clone().requires_grad_(True)
    loss = fn(x, target, **kw)
    loss = loss[0] if isinstance(loss, tuple) else loss
    upstream = torch.randn(loss.shape, dtype=loss.dtype, device=loss.device,
                           generator=torch.Generator(loss.device).manual_seed(7))
    (grad,) = torch.autograd.grad(loss, x, upstream) if loss.numel() else (torch.zeros_like(x),)
    return loss.detach(), grad


def assert_matches_reference(logits, target, **kw):
    loss, grad = loss_and_grad(fused_op, logits, target, **kw)
    ref_loss, ref_grad = loss_and_grad(fused.cross_entropy_reference, logits, target, **kw)
    torch.testing.assert_close(loss, ref_loss, equal_nan=True, **TOL[logits.dtype])
    torch.testing.assert_close(grad, ref_grad, equal_nan=True, **TOL[logits.dtype])


def sample(n, c, device, dtype=torch.float64, seed=0, ignore_index=-100, ignored=0.2):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=dtype) * 3).to(device)
    target = torch.randint(0, c, (n,), generator=g)
    target[torch.rand(n, generator=g) < ignored] = ignore_index
    weight = (torch.rand(c, generator=g, dtype=dtype) + 0.1).to(device)
    return logits, target.to(device), weight


# -- registration ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", [
    dict(), dict(weight=True, reduction="sum"), dict(label_smoothing=0.1, reduction="none"),
    dict(weight=True, label_smoothing=0.3, ignore_index=1), dict(transposed=True, label_smoothing=1.0),
])
def test_opcheck(device, case):
    case = dict(case)
    logits, target, weight = sample(6, 4, device, seed=1, ignore_index=case.get("ignore_index", -100))
    if case.pop("transposed", False):
        logits = logits.t().contiguous().t()
    weight = weight if case.pop("weight", False) else None
    reduction = fused.REDUCTIONS[case.pop("reduction", "mean")]
    args = (logits.requires_grad_(), target, weight, case.get("ignore_index", -100),
            case.get("label_smoothing", 0.0), reduction)
    torch.library.opcheck(torch.ops.kernel_fused.cross_entropy.default, args)
    loss, lse = torch.ops.kernel_fused.cross_entropy(*args)
    grad = torch.ones_like(loss)
    torch.library.opcheck(torch.ops.kernel_fused.cross_entropy_backward.default,
                          (grad, logits.detach(), target, weight, lse.detach(), *args[3:]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted,label_smoothing", [(False, 0.0), (True, 0.0), (False, 0.2), (True, 0.2)])
def test_gradcheck(device, reduction, weighted, label_smoothing):
    logits, target, weight = sample(5, 4, device, seed=2)
    target[0] = 3  # at least one row counts
    logits.requires_grad_(True)
    w = weight if weighted else None
    assert torch.autograd.gradcheck(
        lambda x: fused_op(x, target, w, label_smoothing=label_smoothing, reduction=reduction)[0], (logits,))


# -- agreement with F.cross_entropy ------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_random(device, dtype):
    g = torch.Generator().manual_seed(3)
    for trial in range(24):
        n = int(torch.randint(1, 70, (), generator=g))
        c = int(torch.randint(1, 40, (), generator=g)) if trial % 3 else int(torch.randint(100, 1100, (), generator=g))
        ignore_index = [-100, 0, c // 2][trial % 3]
        logits, target, weight = sample(n, c, device, dtype, seed=trial, ignore_index=ignore_index)
        kw = dict(weight=weight if trial % 2 else None, ignore_index=ignore_index,
                  label_smoothing=[0.0, 0.1, 1.0, 0.35][trial % 4], reduction=["none", "mean", "sum"][trial % 3])
        assert_matches_reference(logits, target, **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["transposed", "row_slice", "column_slice", "expanded"])
def test_any_strides(device, layout):
    base, target, weight = sample(16, 12, device, torch.float32, seed=4)
    logits = {"transposed": base.t().contiguous().t(),      # (C, N).t(): class stride N
              "row_slice": torch.cat([base, base])[::2],    # every other row
              "column_slice": torch.cat([base, base], 1)[:, 3:15],  # unit class stride, wider rows
              "expanded": base[:1].expand(16, 12)}[layout]  # row stride 0
    assert not logits.is_contiguous()
    for reduction in ("none", "mean"):
        assert_matches_reference(logits, target, weight=weight, label_smoothing=0.1, reduction=reduction)


@pytest.mark.parametrize("device", DEVICES)
def test_lse_is_logsumexp(device):
    logits, target, _ = sample(9, 300, device, torch.float64, seed=5)
    _, lse = fused_op(logits, target)
    torch.testing.assert_close(lse, torch.logsumexp(logits, 1), rtol=1e-12, atol=1e-12)
    # huge scores: the max shift keeps it finite
    _, lse = fused_op(logits + 1e4, target)
    torch.testing.assert_close(lse, torch.logsumexp(logits + 1e4, 1), rtol=1e-12, atol=1e-9)


# -- edge cases ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_empty_batch(device, label_smoothing):
    logits = torch.zeros(0, 5, dtype=torch.float64, device=device, requires_grad=True)
    target = torch.zeros(0, dtype=torch.long, device=device)
    none, lse = fused_op(logits, target, label_smoothing=label_smoothing, reduction="none")
    assert none.shape == (0,) and lse.shape == (0,)
    assert fused_op(logits, target, reduction="sum")[0].item() == 0
    mean = fused_op(logits, target, label_smoothing=label_smoothing)[0]
    assert mean.shape == () and torch.isnan(mean)  # 0 / 0, as F.cross_entropy
    fused_op(logits, target, reduction="sum")[0].backward()
    assert logits.grad.shape == (0, 5)


@pytest.mark.parametrize("device", DEVICES)
def test_one_class(device):
    logits, target, weight = sample(7, 1, device, seed=6)
    for label_smoothing in (0.0, 0.5, 1.0):
        for reduction in ("none", "mean", "sum"):
            assert_matches_reference(logits, target, weight=weight, label_smoothing=label_smoothing,
                                     reduction=reduction)
    assert fused_op(logits, target, reduction="sum")[0].item() == 0  # log_softmax of one class is 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_all_targets_ignored(device, weighted, label_smoothing):
    logits, _, weight = sample(4, 3, device, seed=7)
    target = torch.full((4,), -100, device=device)
    w = weight if weighted else None
    loss, grad = loss_and_grad(fused_op, logits, target, weight=w, label_smoothing=label_smoothing)
    assert torch.isnan(loss)  # mean over no rows, as PyTorch gives
    assert torch.equal(grad, torch.zeros_like(grad))
    assert fused_op(logits, target, w, label_smoothing=label_smoothing, reduction="sum")[0].item() == 0
    none = fused_op(logits, target, w, label_smoothing=label_smoothing, reduction="none")[0]
    assert torch.equal(none, torch.zeros(4, dtype=none.dtype, device=device))
    assert_matches_reference(logits, target, weight=w, label_smoothing=label_smoothing, reduction="sum")


@pytest.mark.parametrize("device", DEVICES)
def test_ignore_index_that_is_a_class(device):
    # ignore_index inside [0, C): the rows of that class are skipped, other classes still score it
    logits, target, weight = sample(30, 5, device, seed=8, ignored=0)
    target[::3] = 2
    for label_smoothing in (0.0, 0.1, 1.0):
        for reduction in ("none", "mean", "sum"):
            assert_matches_reference(logits, target, weight=weight, ignore_index=2, label_smoothing=label_smoothing,
                                     reduction=reduction)
    none = fused_op(logits, target, ignore_index=2, reduction="none")[0]
    assert torch.equal(none[::3], torch.zeros_like(none[::3]))


@pytest.mark.parametrize("device", DEVICES)
def test_bad_arguments(device):
    logits, target, weight = sample(5, 4, device, seed=9, ignored=0)
    bad = target.clone()
    bad[3] = 4
    with pytest.raises(RuntimeError, match=r"target 4 at index 3 is out of bounds"):
        fused_op(logits, bad)
    bad[3] = -1
    with pytest.raises(RuntimeError, match=r"target -1 at index 3"):
        fused_op(logits, bad)
    with pytest.raises(RuntimeError, match="weight must be"):
        fused_op(logits, target, weight[:3])
    with pytest.raises(RuntimeError, match="weight must have the logits' dtype"):
        fused_op(logits, target, weight.float())
    with pytest.raises(RuntimeError, match="label_smoothing must be in"):
        fused_op(logits, target, label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="target must be int64"):
        fused_op(logits, target.int())
    with pytest.raises(RuntimeError, match="float32 or float64"):
        fused_op(logits.half(), target)


# -- the dispatching function ------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_dispatch_takes_the_fused_kernel(device):
    assert fused.op("cross_entropy") is not None and fused.has_kernel("cross_entropy", device)
    logits, target, weight = sample(8, 5, device, torch.float32, seed=10)
    logits.requires_grad_(True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], acc_events=True) as prof:
        fused.CrossEntropyLoss(weight=weight, label_smoothing=0.1)(logits, target).backward()
    names = {e.name for e in prof.events()}
    assert {"kernel_fused::cross_entropy", "kernel_fused::cross_entropy_backward"} <= names
    assert "aten::log_softmax" not in names


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Your compiler for AOTAutograd")
def test_compiled_matches_eager():
    from torch._dynamo.testing import AotEagerAndRecordGraphs

    logits, target, weight = sample(12, 7, "cpu", torch.float32, seed=11)

    def step(x):
        return fused.cross_entropy(x * 2, target, weight, label_smoothing=0.1)

    x_eager = logits.clone().requires_grad_(True)
    x_compiled = logits.clone().requires_grad_(True)
    eager = step(x_eager)
    eager.backward()
    # AOT eager traces through dynamo and AOT autograd (fake kernels, the autograd formula) as inductor
    # does, without its seconds of C++ code generation; it keeps the graphs to look into
    backend = AotEagerAndRecordGraphs()
    compiled = torch.compile(step, fullgraph=True, backend=backend)(x_compiled)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(x_compiled.grad, x_eager.grad)
    assert "kernel_fused.cross_entropy.default" in backend.fw_graphs[0].code
    assert "kernel_fused.cross_entropy_backward.default" in backend.bw_graphs[0].code
