"""Models fit the data: head sized to the classes, first convolution to the channels; weights load offline."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision

import vision_files
import kernel
from vision_helpers import prepare
from kernel import KernelError

DIGITS32 = {"use": "vision.digits", "fraction": 0.1, "transforms": [{"use": "vision.Resize", "size": 32}]}


def _through(plan, model):
    inputs, _ = plan.data.batch("train", 2)
    model.eval()
    with torch.no_grad():
        return model(inputs)


def test_head_sized_to_the_classes_and_first_conv_to_one_channel():
    plan = prepare(DIGITS32, models=[{"use": "vision.resnet18"}])
    model, filled = plan.model(0)
    assert filled["num_classes"] == 10 and filled["in_channels"] == 1
    assert model.fc.out_features == 10 and model.conv1.in_channels == 1
    assert _through(plan, model).shape == (2, 10)


def test_head_follows_an_image_folder_with_three_classes(tmp_path):
    vision_files.image_folder(tmp_path, classes=("a", "b", "c"), per_class=2, size=(32, 32))
    plan = prepare({"use": "vision.ImageFolder", "params": {"root": str(tmp_path)}, "split": {"valid": 0.3}},
                   models=[{"use": "vision.mobilenet_v2", "params": {"width_mult": 0.5}}])
    model, filled = plan.model(0)
    assert filled["num_classes"] == 3 and model.classifier[-1].out_features == 3
    assert _through(plan, model).shape == (2, 3)


def test_segmentation_model_gives_per_pixel_scores():
    model = kernel.create("vision.lraspp_mobilenet_v3_large", num_classes=4, in_channels=3, input_shape=(3, 32, 32))
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 4, 32, 32)


def test_an_input_too_small_for_the_model_suggests_a_resize():
    with pytest.raises(KernelError) as err:
        kernel.create("vision.alexnet", num_classes=10, in_channels=1, input_shape=(1, 8, 8))
    text = str(err.value)
    assert "vision.alexnet" in text and "(1, 8, 8)" in text and 'use = "vision.Resize", size = 63' in text


def test_images_into_a_video_model_is_a_clear_error():
    with pytest.raises(KernelError, match=r"takes video clips shaped \(C, T, H, W\)"):
        kernel.create("vision.r3d_18", num_classes=10, in_channels=1, input_shape=(1, 32, 32))


def test_unknown_model_parameter_is_named():
    with pytest.raises(KernelError, match="unknown parameter 'widht_mult'.*did you mean 'width_mult'"):
        kernel.create("vision.mobilenet_v2", widht_mult=0.5)


def test_default_weights_not_in_the_cache_name_the_file_to_place(workspace):
    with pytest.raises(KernelError) as err:
        kernel.create("vision.resnet18", weights="DEFAULT", num_classes=10)
    text = str(err.value)
    expected = workspace.parent / "torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in text and "https://download.pytorch.org/models/resnet18-f37072fd.pth" in text
    assert "weights_path" in text


def test_unknown_weights_name_lists_the_choices(workspace):
    with pytest.raises(KernelError, match="not one of: DEFAULT, IMAGENET1K_V1"):
        kernel.create("vision.resnet18", weights="IMAGENET_V9")


def test_default_weights_load_from_the_cache_with_head_and_first_conv_fitted(workspace):
    torch.manual_seed(0)
    pretrained = torchvision.models.resnet18().state_dict()
    file = workspace.parent / "torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    file.parent.mkdir(parents=True)
    torch.save(pretrained, file)
    model = kernel.create("vision.resnet18", weights="DEFAULT", num_classes=10, in_channels=1,
                          input_shape=(1, 32, 32))
    assert torch.equal(model.layer1[0].conv1.weight, pretrained["layer1.0.conv1.weight"])
    assert model.fc.out_features == 10  # a new head for the data's classes
    # grey input: the pretrained filters summed over the colour channels
    assert torch.allclose(model.conv1.weight, pretrained["conv1.weight"].sum(1, keepdim=True))


@pytest.mark.parametrize("wrapped", [False, True], ids=["state dict", "checkpoint"])
def test_weights_path_loads_a_local_file_and_replaces_the_head(tmp_path, wrapped):
    torch.manual_seed(1)
    pretrained = torchvision.models.mobilenet_v2(num_classes=1000).state_dict()
    file = tmp_path / "mobilenet.pt"
    torch.save({"model": pretrained, "epoch": 3} if wrapped else pretrained, file)
    model = kernel.create("vision.mobilenet_v2", weights_path=str(file), num_classes=7, in_channels=3,
                          input_shape=(3, 32, 32))
    assert torch.equal(model.features[3].conv[0][0].weight, pretrained["features.3.conv.0.0.weight"])
    assert model.classifier[-1].out_features == 7
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def test_weights_path_that_does_not_fit_the_model(tmp_path):
    file = tmp_path / "resnet.pt"
    torch.save(torchvision.models.resnet18().state_dict(), file)
    with pytest.raises(KernelError, match="does not fit this model"):
        kernel.create("vision.mobilenet_v2", weights_path=str(file), num_classes=10)
    with pytest.raises(KernelError, match="not found"):
        kernel.create("vision.mobilenet_v2", weights_path=str(tmp_path / "nowhere.pt"))


def test_simple_cnn_refuses_tiny_images_with_a_resize_hint():
    with pytest.raises(KernelError, match='vision.Resize", size = 8'):
        kernel.create("vision.simple_cnn", input_shape=(1, 2, 2))


def test_list_models_by_task_tag(cli):
    proc = cli("list", "models", "--tag", "classification", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {c["name"] for c in json.loads(proc.stdout)}
    assert {"vision.resnet18", "vision.mobilenet_v2", "vision.simple_cnn", "vision.vit_b_16"} <= listed
    assert not listed & {"vision.fcn_resnet50", "vision.fasterrcnn_resnet50_fpn", "vision.r3d_18"}
    segmentation = cli("list", "models", "--tag", "segmentation", "--json")
    assert "vision.fcn_resnet50" in {c["name"] for c in json.loads(segmentation.stdout)}


def test_raft_estimates_flow_on_image_pairs_and_asks_for_a_size_it_takes(tmp_path):
    vision_files.flying_chairs(tmp_path, pairs=3, size=(64, 48))
    small = prepare({"use": "vision.FlyingChairs", "params": {"root": str(tmp_path)}},
                    models=[{"use": "vision.raft_small"}])
    with pytest.raises(KernelError, match='at least 8 \\* 16 = 128.*vision.Resize", size = \\[128, 128\\]'):
        small.model(0)
    plan = prepare({"use": "vision.FlyingChairs", "params": {"root": str(tmp_path)},
                    "transforms": [{"use": "vision.Resize", "size": [128, 128]}]},
                   models=[{"use": "vision.raft_small"}])
    model, _ = plan.model(0)
    assert _through(plan, model).shape == (2, 2, 128, 128)  # (u, v) per pixel
