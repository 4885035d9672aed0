"""kernel_fused::image_batch (both overloads) against kernel.fused.image_batch_reference.

Tolerance: the kernel computes x * (1 / (255 std)) + (-mean / std) in one multiply-add, the reference
(x / 255 - mean) / std in three roundings, so they differ by a few float32 ulps of the output's size:
rtol 1e-6 with atol 2e-6 (outputs here reach about 5, whose ulp is 4.8e-7)."""
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

kernel_fused_ops = pytest.importorskip("kernel_fused_ops", reason="kernel-fused-ops is not built: pip install contrib/fused-ops")
from kernel import fused  # noqa: E402
from kernel_fused_ops.testing import OpRecorder, devices  # noqa: E402

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261]
TOL = dict(rtol=1e-6, atol=2e-6)


def close(actual, expected):
    assert actual.dtype == torch.float32 and actual.is_contiguous()
    torch.testing.assert_close(actual, expected, **TOL)


def images_nhwc(n, h, w, c, device, layout="nhwc", seed=0):
    """Random uint8 images, logical (N, H, W, C), in NHWC memory or NCHW memory (stacked CHW, permuted)."""
    g = torch.Generator().manual_seed(seed)
    if layout == "nchw":
        return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8).to(device).permute(0, 2, 3, 1)
    return torch.randint(0, 256, (n, h, w, c), generator=g, dtype=torch.uint8).to(device)


def random_flip(n, device, seed=0):
    return (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5).to(device)


def channel_stats(c):
    return (MEAN * 2)[:c], (STD * 2)[:c]


# -- agreement with the reference ------------------------------------------------------------------------------
@pytest.mark.parametrize("device", devices("image_batch"))
@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("with_flip", [False, True])
def test_matches_reference_over_random_shapes(device, layout, with_flip):
    g = torch.Generator().manual_seed(1)
    for trial in range(6):
        n, h, w = (int(v) for v in torch.randint(1, 20, (3,), generator=g))
        c = [1, 2, 3, 4, 3, 5][trial]  # 1, 3, 4: the dense-pixel paths; 2, 5: the generic one
        x = images_nhwc(n, h, w, c, device, layout, seed=trial)
        flip = random_flip(n, device, seed=trial) if with_flip else None
        mean, std = channel_stats(c)
        close(torch.ops.kernel_fused.image_batch(x, mean, std, flip), fused.image_batch_reference(x, mean, std, flip))


@pytest.mark.parametrize("device", devices("image_batch"))
@pytest.mark.parametrize("view", ["transposed_hw", "sliced", "expanded_batch", "channels_reversed_copy",
                                  "channel_slice", "nhcw_memory", "width_one", "height_one"])
def test_matches_reference_for_other_strides(device, view):
    base = images_nhwc(6, 9, 11, 3, device, seed=3)
    x = {"transposed_hw": base.transpose(1, 2),                   # W stride > H stride
         "sliced": base[1::2, 1:8:2, ::3],                        # every stride stepped
         "expanded_batch": base[:1].expand(5, -1, -1, -1),        # batch stride 0
         "channels_reversed_copy": base[..., [2, 1, 0]],
         "channel_slice": images_nhwc(6, 9, 11, 5, device)[..., 1:4],  # pixels 5 apart, 3 channels
         "nhcw_memory": images_nhwc(6, 9, 3, 11, device).permute(0, 1, 3, 2),  # neither W nor C stride 1
         "width_one": base[:, :, :1],
         "height_one": base[:, :1].permute(0, 1, 2, 3)}[view]
    flip = random_flip(x.shape[0], device, seed=4)
    for f in (None, flip):
        close(torch.ops.kernel_fused.image_batch(x, MEAN, STD, f), fused.image_batch_reference(x, MEAN, STD, f))


@pytest.mark.parametrize("device", devices("image_batch"))
def test_extreme_pixel_values_and_broadcast_statistics(device):
    x = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8, device=device).view(1, 2, 3, 1).expand(2, 2, 3, 3)
    for mean, std in (([0.5], [0.25]), (MEAN, STD), ([0.0, -1.0, 2.0], [1e-3, -0.5, 100.0])):
        flip = torch.tensor([False, True], device=device)
        close(torch.ops.kernel_fused.image_batch(x, mean, std, flip), fused.image_batch_reference(x, mean, std, flip))


@pytest.mark.parametrize("device", devices("image_batch"))
def test_flip_mirrors_exactly_the_flagged_samples(device):
    x = images_nhwc(3, 4, 5, 3, device)
    plain = torch.ops.kernel_fused.image_batch(x, MEAN, STD)
    mirrored = torch.ops.kernel_fused.image_batch(x, MEAN, STD, torch.tensor([True, False, True], device=device))
    assert torch.equal(mirrored[0], plain[0].flip(-1)) and torch.equal(mirrored[2], plain[2].flip(-1))
    assert torch.equal(mirrored[1], plain[1]) and not torch.equal(mirrored[0], plain[0])


@pytest.mark.parametrize("device", devices("image_batch"))
def test_empty_batches(device):
    for shape in ((0, 32, 32, 3), (4, 0, 32, 3), (4, 32, 0, 3)):
        x = torch.zeros(shape, dtype=torch.uint8, device=device)
        out = torch.ops.kernel_fused.image_batch(x, MEAN, STD, torch.zeros(shape[0], dtype=torch.bool, device=device))
        assert out.shape == (shape[0], 3, shape[1], shape[2]) and out.dtype == torch.float32
    # an empty list dispatches on the flip mask (no image to dispatch on); the function takes the reference
    empty = torch.ops.kernel_fused.image_batch.list([], MEAN, STD, torch.zeros(0, dtype=torch.bool, device=device))
    assert empty.shape == (0, 3, 0, 0) and empty.shape == fused.image_batch([], MEAN, STD).shape


# -- the list overload -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", devices("image_batch"))
def test_list_equals_the_stacked_batch(device):
    for c in (1, 3, 4):
        x = images_nhwc(5, 7, 9, c, device, seed=c)
        mean, std = channel_stats(c)
        # the samples in mixed layouts: HWC, CHW permuted, a transposed copy transposed back
        images = [x[0], x[1].permute(2, 0, 1).contiguous().permute(1, 2, 0), x[2],
                  x[3].transpose(0, 1).contiguous().transpose(0, 1), x[4]]
        flip = random_flip(5, device, seed=c)
        expected = fused.image_batch_reference(x, mean, std, flip)
        close(torch.ops.kernel_fused.image_batch.list(images, mean, std, flip), expected)
        close(torch.ops.kernel_fused.image_batch.list(images, mean, std), fused.image_batch_reference(x, mean, std))


# -- argument checks -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", devices("image_batch"))
def test_rejects_bad_arguments_saying_what_was_expected(device):
    x = images_nhwc(2, 4, 4, 3, device)
    batch = torch.ops.kernel_fused.image_batch
    with pytest.raises(RuntimeError, match="images must be uint8, got Float"):
        batch(x.float(), MEAN, STD)
    with pytest.raises(RuntimeError, match=r"4 dimensions \(N, H, W, C\)"):
        batch(x[0], MEAN, STD)
    with pytest.raises(RuntimeError, match=r"mean must have one value per channel \(3\) or a single value, got 2"):
        batch(x, MEAN[:2], STD)
    with pytest.raises(RuntimeError, match=r"std must have one value per channel \(3\)"):
        batch(x, MEAN, STD * 2)
    with pytest.raises(RuntimeError, match=r"std must be nonzero, got std\[1\] = 0"):
        batch(x, MEAN, [0.2, 0.0, 0.2])
    with pytest.raises(RuntimeError, match=r"flip must have shape \(2,\)"):
        batch(x, MEAN, STD, torch.zeros(3, dtype=torch.bool, device=device))
    with pytest.raises(RuntimeError, match="flip must be a bool tensor, got Long"):
        batch(x, MEAN, STD, torch.zeros(2, dtype=torch.long, device=device))
    images = [x[0], x[1], x[0][:3]]
    with pytest.raises(RuntimeError, match=r"images\[2\] has \[3, 4, 3\]"):
        batch.list(images, MEAN, STD)
    with pytest.raises(RuntimeError, match=r"images\[1\] must be uint8"):
        batch.list([x[0], x[1].float()], MEAN, STD)


# -- registration ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", devices("image_batch"))
def test_opcheck(device):
    x = images_nhwc(3, 5, 6, 3, device)
    flip = torch.tensor([True, False, True], device=device)
    samples = [(x, MEAN, STD, None), (x, [0.5], [0.25], flip),
               (images_nhwc(2, 4, 4, 3, device, "nchw"), MEAN, STD, None), (x[:0], MEAN, STD, None)]
    for args in samples:
        torch.library.opcheck(torch.ops.kernel_fused.image_batch.default, args)
    mixed_layouts = [x[0], x[1].transpose(0, 1).contiguous().transpose(0, 1)]
    for args in ((list(x), MEAN, STD, flip), (mixed_layouts, [0.5], [0.2], None), ([], MEAN, STD, flip[:0])):
        torch.library.opcheck(torch.ops.kernel_fused.image_batch.list, args)


@pytest.mark.parametrize("device", devices("image_batch"))
def test_dispatching_function_takes_the_fused_kernel(device):
    assert fused.op("image_batch") is not None and fused.has_kernel("image_batch", device)
    x = images_nhwc(4, 6, 6, 3, device, "nchw")
    flip, images = random_flip(4, device), list(x)
    with OpRecorder() as stacked:
        out = fused.image_batch(x, MEAN, STD, flip)
    with OpRecorder() as listed:
        out_list = fused.image_batch(images, MEAN, STD, flip)
    assert stacked.ops == ["kernel_fused.image_batch.default"] and listed.ops == ["kernel_fused.image_batch.list"]
    close(out, fused.image_batch_reference(x, MEAN, STD, flip))
    close(out_list, out)


@pytest.mark.slow
@pytest.mark.parametrize("device", devices("image_batch"))
def test_torch_compile_fullgraph_equals_eager(device):
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(lambda x, flip: fused.image_batch(x, MEAN, STD, flip), fullgraph=True, backend=counter)
    x = images_nhwc(4, 8, 8, 3, device, "nchw")
    flip = random_flip(4, device)
    out = compiled(x, flip)
    assert "kernel_fused.image_batch.default" in counter.graphs[0].code  # the fused kernel, not the reference
    assert torch.equal(out, fused.image_batch(x, MEAN, STD, flip))
