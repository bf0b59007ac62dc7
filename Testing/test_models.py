"""The U-Nets, their settings, and the verified model file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from ThighMuscleSegLib import io
from ThighMuscleSegLib.models import (FORMAT_VERSION, ModelFileError, ModelSettings, UNet, build_net,
                                      count_parameters, file_sha256, load_model, random_model, save_model,
                                      window_hu)
from ThighMuscleSegLib.models.model_file import sha256_bytes


@pytest.mark.parametrize("arch", ["2.5d", "2d", "3d"])
def test_parameter_count_at_default_width_is_between_0_1_and_0_5_million(arch):
    settings = ModelSettings.for_architecture(arch)
    n = count_parameters(build_net(settings))
    print(f"{arch}: width {settings.width}, {n} parameters")
    assert 100_000 <= n <= 500_000


def test_2d_net_takes_three_channels_and_gives_eleven_classes_at_any_size():
    net = UNet(2, 3, 11, 4).eval()
    with torch.inference_mode():
        assert net(torch.rand(2, 3, 37, 22)).shape == (2, 11, 37, 22)
        assert net(torch.rand(1, 3, 180, 128)).shape == (1, 11, 180, 128)


def test_3d_net_takes_one_channel_at_any_size():
    net = build_net(ModelSettings.for_architecture("3d", width=2)).eval()
    with torch.inference_mode():
        assert net(torch.rand(1, 1, 9, 13, 6)).shape == (1, 11, 9, 13, 6)


def test_views_follow_the_architecture():
    assert ModelSettings().views == ("axial", "coronal", "sagittal")
    assert ModelSettings.for_architecture("2d").views == ("axial",)
    assert ModelSettings.for_architecture("3d").in_channels == 1
    assert ModelSettings().channel_offsets_voxels() == (-2, 0, 2)
    with pytest.raises(ValueError, match="views"):
        ModelSettings(architecture="2d").validated()
    with pytest.raises(ValueError, match="whole"):
        ModelSettings(channel_offsets_mm=(-3.0, 0.0, 3.0)).validated()
    with pytest.raises(ValueError, match="architecture"):
        ModelSettings(architecture="4d").validated()


def test_settings_survive_json():
    s = ModelSettings(width=8, version="1.2", training={"epochs": 3, "cases": ["a", "b"]})
    assert ModelSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_window_clips_to_minus_100_250_and_scales_to_0_1():
    hu = np.array([-1000, -100, 75, 250, 3000], np.int16)
    np.testing.assert_allclose(window_hu(hu, (-100, 250)), [0, 0, 0.5, 1, 1], atol=1e-6)
    assert window_hu(hu, (-100, 250)).dtype == np.float32


def _outputs(model, x):
    with torch.inference_mode():
        return {v: model.net(v)(x).numpy() for v in model.settings.views}


def test_round_trip_gives_the_same_outputs(tmp_path):
    model = random_model(ModelSettings(width=4, training={"note": "test"}), seed=3)
    path = save_model(tmp_path / "m.tmsmodel", model.settings, model.nets)
    loaded = load_model(path)
    assert loaded.settings == model.settings
    x = torch.rand(2, 3, 20, 12)
    for view, out in _outputs(model, x).items():
        np.testing.assert_array_equal(_outputs(loaded, x)[view], out)
    assert load_model(path, expected_file_sha256=file_sha256(path)).settings == model.settings
    assert [p.name for p in tmp_path.iterdir()] == ["m.tmsmodel"]  # no temporary left behind


def test_random_models_depend_on_the_seed_only():
    a, b, c = (random_model(ModelSettings(width=4), seed=s) for s in (1, 1, 2))
    wa, wb, wc = (m.net("axial").enc0[0].weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_saving_mismatched_nets_fails_and_keeps_the_existing_file(tmp_path):
    model = random_model(ModelSettings(width=4))
    path = save_model(tmp_path / "m.tmsmodel", model.settings, model.nets)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="views"):
        save_model(path, model.settings, {"axial": model.nets["axial"]})
    assert path.read_bytes() == before


@pytest.fixture
def saved(tmp_path):
    model = random_model(ModelSettings(width=4))
    return save_model(tmp_path / "good.tmsmodel", model.settings, model.nets)


def _rewrite(src, dest, header_edit=None, weights=None, keep_digest=False):
    with zipfile.ZipFile(src) as z:
        header = json.loads(z.read("settings.json"))
        old_weights = z.read("weights.pt")
    weights = old_weights if weights is None else weights
    if header_edit:
        header_edit(header)
    if not keep_digest:
        header["weights_sha256"] = sha256_bytes(weights)
    with zipfile.ZipFile(dest, "w") as z:
        z.writestr("settings.json", json.dumps(header))
        z.writestr("weights.pt", weights)
    return dest


def test_model_file_error_is_an_input_error():
    assert issubclass(ModelFileError, io.InputError)


def test_random_bytes_are_not_a_model_file(tmp_path):
    p = tmp_path / "junk.tmsmodel"
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ModelFileError, match="not a ThighMuscleSeg model file"):
        load_model(p)


def test_truncated_file_is_reported(saved, tmp_path):
    data = saved.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        p = tmp_path / f"cut{cut}.tmsmodel"
        p.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="download it again"):
            load_model(p)


def test_other_zip_or_other_format_is_not_a_model_file(saved, tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match="not a ThighMuscleSeg model file"):
        load_model(other)
    renamed = _rewrite(saved, tmp_path / "f.tmsmodel", lambda h: h.update(format="Other model"))
    with pytest.raises(ModelFileError, match="not a ThighMuscleSeg model file"):
        load_model(renamed)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.tmsmodel")


def test_changed_weights_fail_the_checksum(saved, tmp_path):
    with zipfile.ZipFile(saved) as z:
        weights = bytearray(z.read("weights.pt"))
    weights[len(weights) // 2] ^= 0xFF
    bad = _rewrite(saved, tmp_path / "bad.tmsmodel", weights=bytes(weights), keep_digest=True)
    with pytest.raises(ModelFileError, match="checksum mismatch: the file is damaged; download it again"):
        load_model(bad)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(saved, expected_file_sha256="0" * 64)


def test_newer_format_asks_for_an_update(saved, tmp_path):
    newer = _rewrite(saved, tmp_path / "n.tmsmodel", lambda h: h.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="update ThighMuscleSeg"):
        load_model(newer)


def test_settings_that_do_not_fit_the_weights_are_reported(saved, tmp_path):
    wider = _rewrite(saved, tmp_path / "w.tmsmodel", lambda h: h["settings"].update(width=6))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(wider)
    two_d = _rewrite(saved, tmp_path / "v.tmsmodel",
                     lambda h: h["settings"].update(architecture="2d", views=["axial"]))
    with pytest.raises(ModelFileError, match="views"):
        load_model(two_d)
    nonsense = _rewrite(saved, tmp_path / "s.tmsmodel", lambda h: h["settings"].update(architecture="4d"))
    with pytest.raises(ModelFileError, match="unusable settings"):
        load_model(nonsense)
