"""The one list of each option's choices: the configuration's validation checks values against them and
the command line offers them (this module imports nothing, so either may read it)."""
from __future__ import annotations

FIT_MODES = ("pad", "crop", "resize")  # how images are brought to the training size
FIT_CHOICES = ("auto", *FIT_MODES)  # data.fit, ganforge train --fit
OPTIMIZERS = ("adam", "sgd")  # g_optim.name, d_optim.name, ganforge train --optimizer
PRECISIONS = ("auto", "fp32", "bf16")  # train.precision, --precision
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")  # train.compile: torch.compile's modes
SCHEDULE_SHAPES = ("none", "linear", "cosine")  # schedule.shape
EXTRACTORS = ("auto", "inception", "domain")  # train.eval_extractor, ganforge eval --extractor
CLASS_MIXES = ("balanced", "data")  # ganforge sample --class-mix: how a conditional run's classes are drawn

# configuration key -> its choices (validation.validate checks every one)
CONFIG_CHOICES = {
    "data.fit": FIT_CHOICES,
    "g_optim.name": OPTIMIZERS,
    "d_optim.name": OPTIMIZERS,
    "train.precision": PRECISIONS,
    "train.compile": COMPILE_MODES,
    "schedule.shape": SCHEDULE_SHAPES,
    "train.eval_extractor": EXTRACTORS,
}
