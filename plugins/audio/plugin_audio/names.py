"""The torchaudio transforms offered as ``audio.<Name>``, as plain data: listing them (``kernel
list``) must not import torchaudio. A test checks this table against the installed torchaudio.

Each entry: summary, the input it takes (what the conformance check feeds it), and example
parameters when the defaults cannot build it.
"""

WAVE = "waveform"
SPEC = "power spectrogram"
COMPLEX = "complex spectrogram"
MEL = "mel spectrogram"
CODES = "mu-law codes"

#: name -> (summary, input, example parameters)
TRANSFORMS = {
    "AmplitudeToDB": ("Amplitude or power to decibels", SPEC, {}),
    "ComputeDeltas": ("Delta coefficients along time (of a spectrogram or MFCC)", SPEC, {}),
    "Deemphasis": ("De-emphasis filter (undoes Preemphasis)", WAVE, {}),
    "Fade": ("Fade in and out", WAVE, {"fade_in_len": 100, "fade_out_len": 100}),
    "FrequencyMasking": ("SpecAugment: mask a random band of frequencies", SPEC, {"freq_mask_param": 8}),
    "GriffinLim": ("Waveform from a power spectrogram (Griffin-Lim)", SPEC, {"n_iter": 2}),
    "InverseMelScale": ("Linear spectrogram from a mel spectrogram (least squares)", MEL,
                        {"n_stft": 201, "n_mels": 32, "sample_rate": 8000}),
    "InverseSpectrogram": ("Waveform from a complex spectrogram (inverse STFT)", COMPLEX, {}),
    "LFCC": ("Linear-frequency cepstral coefficients", WAVE, {}),
    "Loudness": ("Loudness in LUFS (ITU-R BS.1770-4)", WAVE, {"sample_rate": 8000}),
    "MFCC": ("Mel-frequency cepstral coefficients", WAVE,
             {"sample_rate": 8000, "n_mfcc": 13, "melkwargs": {"n_mels": 32}}),
    "MelScale": ("Mel filterbank applied to a spectrogram", SPEC,
                 {"n_mels": 32, "sample_rate": 8000, "n_stft": 201}),
    "MelSpectrogram": ("Mel spectrogram of a waveform (set sample_rate to the data's)", WAVE,
                       {"sample_rate": 8000, "n_mels": 32}),
    "MuLawDecoding": ("Mu-law codes back to a waveform", CODES, {}),
    "MuLawEncoding": ("Waveform to mu-law codes", WAVE, {}),
    "PitchShift": ("Shift the pitch by n_steps semitones", WAVE, {"sample_rate": 8000, "n_steps": 2}),
    "PSD": ("Power spectral density matrices of a multi-channel complex spectrogram", COMPLEX, {}),
    "Preemphasis": ("Pre-emphasis filter", WAVE, {}),
    "Resample": ("Resample from orig_freq to new_freq", WAVE, {"orig_freq": 8000, "new_freq": 16000}),
    "SlidingWindowCmn": ("Sliding-window cepstral mean (and variance) normalisation", SPEC, {}),
    "SpecAugment": ("SpecAugment: time and frequency masks (and warp)", SPEC,
                    {"n_time_masks": 1, "time_mask_param": 4, "n_freq_masks": 1, "freq_mask_param": 8}),
    "SpectralCentroid": ("Spectral centroid over time", WAVE, {"sample_rate": 8000}),
    "Spectrogram": ("Spectrogram (power, magnitude, or complex with power unset)", WAVE, {}),
    "Speed": ("Change speed (and so length and pitch) by a factor", WAVE, {"orig_freq": 8000, "factor": 1.1}),
    "SpeedPerturbation": ("Random speed change among factors (augmentation)", WAVE,
                          {"orig_freq": 8000, "factors": [0.9, 1.0, 1.1]}),
    "TimeMasking": ("SpecAugment: mask a random span of time", SPEC, {"time_mask_param": 4}),
    "TimeStretch": ("Stretch a complex spectrogram in time without changing pitch", COMPLEX,
                    {"n_freq": 201, "fixed_rate": 1.2}),
    "Vad": ("Trim silence before the first voice activity", WAVE, {"sample_rate": 8000}),
    "Vol": ("Change the volume by a gain", WAVE, {"gain": 0.5}),
}

#: In torchaudio.transforms but not offered: they take several inputs per call (a signal and a
#: noise, two signals, a spectrogram and masks) or are a loss, so they cannot transform one sample.
NOT_OFFERED = {
    "AddNoise": "takes a waveform, a noise and an SNR",
    "Convolve": "takes two signals",
    "FFTConvolve": "takes two signals",
    "MVDR": "beamforming: a spectrogram and masks",
    "RTFMVDR": "beamforming: a spectrogram, a relative transfer function and a noise PSD",
    "SoudenMVDR": "beamforming: a spectrogram, PSD matrices and a reference channel",
    "RNNTLoss": "a loss, not a transform",
}

#: How the conformance check makes each kind of input from a spoken digit (transforms before it).
INPUT_RECIPES = {
    WAVE: [],
    SPEC: [{"use": "audio.Spectrogram"}],
    COMPLEX: [{"use": "audio.Spectrogram", "power": None}],
    MEL: [{"use": "audio.MelSpectrogram", "sample_rate": 8000, "n_mels": 32}],
    CODES: [{"use": "audio.MuLawEncoding"}],
}
