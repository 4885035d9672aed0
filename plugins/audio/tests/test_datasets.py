"""Audio datasets: the folder layout, torchaudio's layouts built locally, spoken digits, bad files."""

import numpy as np
import pytest
import soundfile as sf
import torch

import layouts
from kernel import KernelError
from plugin_audio.datasets import folder_dataset
from plugin_audio.layouts import gtzan, speechcommands, yesno


def test_folder_splits_by_class_and_shapes_every_clip(tone_folder):
    splits = folder_dataset(str(tone_folder), sample_rate=16000, duration=0.5, valid=0.34)
    train, valid = splits["train"], splits["valid"]
    assert train.classes == ["high", "low"] and train.sample_rate == 16000
    assert len(train) == 4 and len(valid) == 2  # one of three clips per class held out
    assert sorted(valid.targets) == [0, 1]
    x, y = train[0]
    assert x.shape == (1, 8000) and x.dtype == torch.float32 and y in (0, 1)
    assert not set(train.files) & set(valid.files)


def test_training_crops_at_random_and_validation_at_the_centre(tmp_path):
    rate = 8000
    ramp = (np.arange(rate, dtype=np.float32) / rate)[:, None]  # the value says where a crop starts
    for c in ("a", "b"):
        for j in range(2):
            layouts.write(tmp_path / c / f"{j}.wav", ramp, rate, "WAV")
    splits = folder_dataset(str(tmp_path), duration=0.5, valid=0.5)
    starts = {round(float(splits["train"][0][0][0, 0]), 3) for _ in range(20)}
    assert len(starts) > 1
    centre = {round(float(splits["valid"][0][0][0, 0]), 3) for _ in range(5)}
    assert centre == {0.25}


def test_short_clips_are_padded_and_whole_clips_pad_per_batch(tmp_path):
    layouts.write(tmp_path / "a" / "short.wav", layouts.tone(200, 0.1, 8000), 8000)
    layouts.write(tmp_path / "a" / "long.wav", layouts.tone(200, 0.3, 8000), 8000)
    padded = folder_dataset(str(tmp_path), duration=0.2, valid=0.0)["train"]
    assert {padded[i][0].shape[-1] for i in range(2)} == {1600}
    whole = folder_dataset(str(tmp_path), valid=0.0)["train"]
    inputs, targets = whole.collate_fn([whole[0], whole[1]])
    assert inputs.shape == (2, 1, 2400) and targets.tolist() == [0, 0]


def test_stereo_is_downmixed_or_refused_when_mono_is_expected(tmp_path):
    stereo = layouts.tone(200, 0.2, 8000, channels=2)
    stereo[:, 1] = 0
    layouts.write(tmp_path / "a" / "st.flac", stereo, 8000)
    layouts.write(tmp_path / "a" / "mono.flac", layouts.tone(300, 0.2, 8000), 8000)
    mixed = folder_dataset(str(tmp_path), valid=0.0)["train"]
    x, _ = mixed[mixed.files.index(str(tmp_path / "a" / "st.flac"))]
    assert x.shape[0] == 1 and float(x.abs().max()) == pytest.approx(0.25, abs=0.03)
    with pytest.raises(KernelError, match=r"st\.flac: has 2 channels where mono is expected"):
        folder_dataset(str(tmp_path), channels="mono", valid=0.0)
    kept = folder_dataset(str(tmp_path), channels="mono", valid=0.0, on_bad="skip")["train"]
    assert [f.rsplit("/", 1)[-1] for f in kept.files] == ["mono.flac"] and len(kept.skipped) == 1


def test_resampling_changes_the_length_by_the_rate(tmp_path):
    layouts.write(tmp_path / "a" / "x.wav", layouts.tone(200, 0.5, 8000), 8000)
    ds = folder_dataset(str(tmp_path), sample_rate=22050, valid=0.0)["train"]
    assert ds[0][0].shape == (1, 11025) and ds.sample_rate == 22050


def test_mixed_sample_rates_need_a_target_rate(tmp_path):
    layouts.write(tmp_path / "a" / "x.wav", layouts.tone(200, 0.2, 8000), 8000)
    layouts.write(tmp_path / "b" / "y.wav", layouts.tone(200, 0.2, 16000), 16000)
    with pytest.raises(KernelError, match=r"different sample rates \(8000, 16000 Hz\); set sample_rate"):
        folder_dataset(str(tmp_path))
    assert folder_dataset(str(tmp_path), sample_rate=16000)["train"].sample_rate == 16000


def test_bad_files_stop_the_build_or_are_skipped_and_counted(tone_folder, capsys):
    (tone_folder / "low" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    cut = tone_folder / "high" / "cut.flac"
    sf.write(str(cut), layouts.tone(440, 1.0, 8000), 8000)
    cut.write_bytes(cut.read_bytes()[:2000])
    sf.write(str(tone_folder / "high" / "empty.wav"), np.zeros((0,), np.float32), 8000)
    with pytest.raises(KernelError, match=r"audio\.folder: .*(broken\.wav|empty\.wav).*on_bad = \"skip\""):
        folder_dataset(str(tone_folder))
    splits = folder_dataset(str(tone_folder), on_bad="skip", valid=0.0)
    assert len(splits["train"]) == 6 and len(splits["train"].skipped) == 3
    assert "skipped 3 bad audio file(s) of 9" in capsys.readouterr().err


def test_a_file_damaged_after_the_build_is_named_when_read(tone_folder):
    ds = folder_dataset(str(tone_folder), valid=0.0)["train"]
    flac = next(i for i, f in enumerate(ds.files) if f.endswith(".flac"))
    path = ds.files[flac]
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 3])
    with pytest.raises(KernelError, match=r"\.flac: cannot be decoded"):
        ds[flac]


def test_missing_folder_says_what_to_make(tmp_path):
    with pytest.raises(KernelError, match="folder not found.*one sub-folder of audio files per class"):
        folder_dataset(str(tmp_path / "nowhere"))


def test_speechcommands_uses_the_official_lists(tmp_path):
    splits = speechcommands(str(layouts.speechcommands(tmp_path)))
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "valid": 2, "test": 2}
    assert splits["train"].classes == ["no", "yes"]  # _background_noise_ is not a word
    assert all("1b2c3d4e" in f for f in splits["valid"].files)
    assert splits["train"][0][0].shape == (1, 16000)  # one second, padded


def test_yesno_targets_are_the_eight_labels_of_the_file_name(tmp_path):
    splits = yesno(str(layouts.yesno(tmp_path)), valid=0.25)
    ds = splits["train"]
    x, y = ds[ds.files.index(str(tmp_path / "waves_yesno" / "0_1_0_0_1_0_1_1.wav"))] \
        if str(tmp_path / "waves_yesno" / "0_1_0_0_1_0_1_1.wav") in ds.files else splits["valid"][0]
    assert y.dtype == torch.float32 and y.shape == (8,)
    assert sum(len(s) for s in splits.values()) == 4 and ds.sample_rate == 8000


def test_gtzan_reads_the_genre_folders(tmp_path):
    splits = gtzan(str(layouts.gtzan(tmp_path)), duration=0.2, valid=0.34)
    assert splits["train"].classes[0] == "blues" and len(splits["train"].classes) == 10
    assert len(splits["train"]) == 4 and len(splits["valid"]) == 2


@pytest.mark.parametrize("fn, names", [(speechcommands, "SpeechCommands/speech_commands_v0.02/<word>"),
                                       (yesno, "waves_yesno/"), (gtzan, "genres/<genre>")])
def test_absent_datasets_name_the_files_and_download_nothing(tmp_path, fn, names):
    with pytest.raises(KernelError, match="files not found under .*" + names.replace("/", ".") +
                       ".*Nothing is downloaded"):
        fn(str(tmp_path))


def test_spoken_digits_are_synthesised_once_and_identical_for_the_same_parameters(tmp_path):
    from plugin_audio.digits import spoken_digits

    params = dict(voices=["en", "en+f3"], rates=[160], pitches=[40, 60], valid=0.25)
    first = spoken_digits(cache_dir=str(tmp_path / "one"), **params)
    again = spoken_digits(cache_dir=str(tmp_path / "two"), **params)
    train = first["train"]
    assert train.classes[3] == "three" and train.sample_rate == 22050
    assert len(train) + len(first["valid"]) == 40
    for a, b in zip(sorted(train.files), sorted(again["train"].files)):
        assert open(a, "rb").read() == open(b, "rb").read()
    x, _ = first["valid"][0]
    assert x.shape == (1, 22050) and float(x.abs().max()) > 0.1  # someone is speaking
    # the second build in the same cache reads the files: no synthesis process this time
    folder = train.cache_folder
    stamp = {f: __import__("os").stat(f).st_mtime_ns for f in train.files}
    spoken_digits(cache_dir=str(tmp_path / "one"), **params)
    assert {f: __import__("os").stat(f).st_mtime_ns for f in train.files} == stamp and folder


def test_unknown_voice_is_named(tmp_path):
    from plugin_audio.digits import spoken_digits

    with pytest.raises(KernelError, match="no voice 'xx-nowhere'"):
        spoken_digits(voices=["xx-nowhere"], cache_dir=str(tmp_path))
