"""The names the hook module lists without importing torchvision match the installed torchvision."""
from __future__ import annotations

import subprocess
import sys

from plugin_vision import inventory, names


def test_dataset_names_match_torchvision():
    assert names.DATASETS == inventory.live_datasets()


def test_transform_names_match_torchvision():
    assert names.TRANSFORMS == inventory.live_transforms()


def test_model_names_and_tasks_match_torchvision():
    assert names.MODELS == inventory.live_models()


def test_every_listed_name_is_a_target():
    import plugin_vision.datasets as D
    import plugin_vision.models as M
    import plugin_vision.transforms as T

    for module, listed in ((D, names.DATASETS), (T, names.TRANSFORMS), (M, names.MODELS)):
        for name in listed:
            assert callable(getattr(module, name)), name


def test_the_hook_module_imports_no_torch():
    code = ("import sys; from plugin_vision import plugin as p; "
            "[getattr(p, h)() for h in dir(p) if h.startswith('kernel_')]; "
            "print(','.join(m for m in ('torch', 'torchvision', 'PIL', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
