"""Tuned winners and sweep spaces: data beside the methods."""

from adaftr_tf import choices

# Method -> the winning trial of an equal-budget `pipelines.sweep` on `bench`
# (4 trials, selected on the validation split's mean CTR/CVR/CTCVR AUC; the
# test split never read). Trial 1 is the method as defined, so a method whose
# definition won has no entry (shared_bottom, esmm, aitm). Trials and
# scores: docs/results/sweep.md.
TUNED: dict[str, tuple[str, ...]] = {
    "single_task": ("model.embedding_l2=1e-6", "model.expert_units=64,32",
                    "train.learning_rate=0.001"),
    "mmoe": ("model.embedding_l2=1e-5", "model.expert_units=64,32",
                "model.num_experts=4", "train.learning_rate=0.002"),
    "ple": ("model.embedding_l2=1e-5", "model.expert_units=128,64",
            "model.ple_levels=1", "model.ple_shared_experts=2",
            "train.learning_rate=0.001"),
    "adaftr": ("loss.contrastive_weight=0.1", "model.projection_dim=32",
               "loss.relatedness_input=embeddings", "loss.symmetric=true",
               "loss.tau_max=1.0", "loss.tau_min=0.02",
               "model.embedding_l2=0.0", "model.tower_units=32,32",
               "train.learning_rate=0.002"),
}

SHARED_SPACE = {
    "train.learning_rate": ["0.001", "0.002", "0.004"],
    "model.embedding_l2": ["0.0", "1e-6", "1e-5"],
}
# The main knobs of each family; AdaFTR's own: lambda, tau range, what the
# relatedness network reads, projection size, symmetry, tower sizes.
SWEEP_SPACES = {
    "adaftr": {
        "loss.contrastive_weight": ["0.01", "0.03", "0.1", "0.3"],
        "loss.tau_min": ["0.02", "0.05", "0.1"],
        "loss.tau_max": ["0.5", "1.0", "2.0"],
        "loss.relatedness_input": list(choices.options(choices.RelatednessInput)),
        "model.projection_dim": ["8", "16", "32"],
        "loss.symmetric": ["true", "false"],
        "model.tower_units": ["64,32", "64,16", "32,32"],
    },
    "mixture": {
        "model.num_experts": ["2", "4", "8"],
        "model.expert_units": ["128,64", "64,32", "256,64"],
    },
    "bottom": {"model.expert_units": ["128,64", "64,32", "256,64"]},
    "ple": {"model.ple_levels": ["1", "2"],
            "model.ple_shared_experts": ["1", "2"],
            "model.expert_units": ["128,64", "64,32"]},
    "aitm": {"loss.aitm_calibration_weight": ["0.1", "0.3", "0.6", "1.0"],
             "model.num_experts": ["2", "4", "8"]},
}
