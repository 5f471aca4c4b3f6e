"""The loss section: the objective's weights, the temperature and what sets
it, the relatedness signal."""

from __future__ import annotations

import dataclasses

from adaftr_tf import choices as C
from adaftr_tf.config.checks import ConfigError
from adaftr_tf.config.checks import positive as _positive


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The objective `L = L_ctr + L_ctcvr + contrastive_weight * L_cl (+ ...)`.

  Attributes:
    contrastive_weight: lambda; 0 disables the alignment objective.
    temperature_mode, tau_min, tau_max, fixed_tau: tau per `instance`, one
      `global` or `fixed` (None: the bounds' geometric mean), in the bounds.
    relatedness_input, relatedness_stop_gradient: what the relatedness
      network reads (choices.py) and whether its gradient reaches it.
    symmetric, negatives: both InfoNCE directions; which negatives (default
      one random negative per instance: with in-batch negatives the gate's
      step costs ~45% more than its ESMM backbone's, with one random
      negative ~6%; README "Does adaptive relatedness help?" section 7).
    one_way: the CTR representation enters the alignment behind a
      stop-gradient, so only the CVR side (and both projections) move.
    relatedness_signal, relatedness_loss_weight: what trains the relatedness
      network (default the transfer gate, the best validated signal; the
      paper reading is `contrastive`) and the weight of its loss (the
      agreement regression,
      losses/agreement.py; the transfer gate's probe; the meta-gradient's
      hypergradient loss, tasks/meta_gradient.py).
    meta_gradient_every: the meta-gradient signal runs on every k-th
      training step only (its cost is ~0.9 of an AdaFTR step where it runs).
    alignment_start: the fraction of the training steps (train.epochs x the
      steps per epoch) before the InfoNCE term switches on; the relatedness
      signal's own loss (the gate's probe, the agreement regression) trains
      from the first step, so tau is learned before it shapes the
      representations. 0: from the first step.
    agreement_source, agreement_representation: the agreement is the cosine
      of the CTR and CVR `logits`' or CTCVR `losses`' gradients with respect
      to the `embeddings` or the shared `experts` outputs.
    aitm_calibration_weight: weight of AITM's behavioural calibrator.
    tau_source, tau_field: where tau comes from (choices.py: the relatedness
      network, or a training-only control from the planted r); `field_hash`
      hashes the id of the categorical field `tau_field`; `noisy_oracle`
      mixes that hash into r with weight `oracle_noise` in [0, 1].
    gate_quantile: the transfer gate maps its slopes linearly onto tau
      between their `gate_quantile` and `1 - gate_quantile` batch quantiles,
      in [0, 0.5); the slopes beyond take the bounds (tasks/transfer_gate.py).
    teacher_dir: with `tau_source=teacher`, the model directory of a trained
      AdaFTR model whose relatedness network sets tau (e.g. a transfer gate
      run): its tau for each training batch, frozen, clipped to this run's
      bounds (pipelines/training/teacher.py). Training only: the teacher is
      in no checkpoint or export of this model. Cross-fitting: K
      comma-separated model directories, the k-th trained with
      `train.folds=K, train.holdout_fold=k`; each training row reads the
      teacher that left its fold out (adaftr_tf/folds.py), evaluation the
      teachers' mean tau. An ensemble: K directories of teachers trained
      on every row (e.g. K seeds); every row reads their mean tau.
    teacher_field_share: with `tau_source=teacher` and a linear teacher
      (`model.relatedness_units=()`), read each teacher's gate through the
      fields carrying at least this share of its logit's variance in the
      batch, in [0, 1); 0 reads every field (tasks/teacher_fields.py).
    gate_field_share: the same reading of this run's own linear transfer
      gate (`relatedness_signal=transfer_gate`,
      `model.relatedness_units=()`): tau, in training and as a teacher,
      reads the fields carrying at least this share of the gate's logit's
      variance in the batch; the gate's probe still trains on every field.
      0: every field.
  """

  contrastive_weight: float = 0.1
  temperature_mode: C.TemperatureMode = "instance"
  tau_min: float = 0.05
  tau_max: float = 1.0
  fixed_tau: float | None = None
  relatedness_input: C.RelatednessInput = "embeddings"
  relatedness_stop_gradient: bool = True
  symmetric: bool = True
  negatives: C.Negatives = "random_one"
  one_way: bool = False
  relatedness_signal: C.RelatednessSignal = "transfer_gate"
  relatedness_loss_weight: float = 1.0
  meta_gradient_every: int = 1
  alignment_start: float = 0.0
  agreement_source: C.AgreementSource = "losses"
  agreement_representation: C.AgreementRepresentation = "embeddings"
  aitm_calibration_weight: float = 0.6
  tau_source: C.TauSource = "network"
  tau_field: str = "categorical_1"
  oracle_noise: float = 0.5
  gate_quantile: float = 0.05
  teacher_dir: str = ""
  teacher_field_share: float = 0.0
  gate_field_share: float = 0.0

  @property
  def teacher_dirs(self) -> tuple[str, ...]:
    """The teacher model directories of `teacher_dir`, in fold order."""
    return tuple(d.strip() for d in self.teacher_dir.split(",") if d.strip())

  def validate(self) -> None:
    C.check_fields(self, ConfigError, "loss")
    if self.relatedness_signal == "transfer_gate" and (
        self.relatedness_input != "embeddings"):
      raise ConfigError("loss.relatedness_signal=transfer_gate needs "
                        "loss.relatedness_input=embeddings (a network that "
                        "reads the CTR tower could mimic the CTR logit)")
    if self.relatedness_signal == "meta_gradient" and (
        not self.relatedness_stop_gradient):
      raise ConfigError("loss.relatedness_signal=meta_gradient trains the "
                        "relatedness network alone: it needs "
                        "loss.relatedness_stop_gradient=true")
    if self.tau_source != "network" and (
        self.temperature_mode != "instance"
        or self.relatedness_signal != "contrastive"):
      raise ConfigError(f"loss.tau_source={self.tau_source} sets tau per "
                        "instance without the relatedness network: it needs "
                        "loss.temperature_mode=instance and "
                        "loss.relatedness_signal=contrastive")
    if (self.tau_source == "teacher") != bool(self.teacher_dir):
      raise ConfigError(
          "loss.tau_source=teacher needs loss.teacher_dir (a trained AdaFTR "
          "model directory)" if self.tau_source == "teacher" else
          f"loss.teacher_dir={self.teacher_dir!r} is read only with "
          f"loss.tau_source=teacher (got {self.tau_source})")
    for name in ("teacher_field_share", "gate_field_share"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ConfigError(f"loss.{name}={getattr(self, name)} must lie in "
                          "[0, 1)")
    if self.gate_field_share and self.relatedness_signal != "transfer_gate":
      raise ConfigError(f"loss.gate_field_share={self.gate_field_share} is "
                        "read only with loss.relatedness_signal="
                        f"transfer_gate (got {self.relatedness_signal})")
    if self.teacher_field_share and self.tau_source != "teacher":
      raise ConfigError(f"loss.teacher_field_share="
                        f"{self.teacher_field_share} is read only with "
                        f"loss.tau_source=teacher (got {self.tau_source})")
    if not 0.0 <= self.alignment_start < 1.0:
      raise ConfigError(f"loss.alignment_start={self.alignment_start} must "
                        "lie in [0, 1) (a fraction of the training steps)")
    if not 0.0 <= self.oracle_noise <= 1.0:
      raise ConfigError(f"loss.oracle_noise={self.oracle_noise} must lie in "
                        "[0, 1]")
    if not 0.0 <= self.gate_quantile < 0.5:
      raise ConfigError(f"loss.gate_quantile={self.gate_quantile} must lie in "
                        "[0, 0.5)")
    _positive(self, "loss", "meta_gradient_every")
    _positive(self, "loss", "contrastive_weight", "relatedness_loss_weight",
              "aitm_calibration_weight", allow_zero=True)
    needs_mode = {"gradient_agreement": "instance", "fixed": "fixed",
                  "transfer_gate": "instance", "meta_gradient": "instance"
                  }.get(self.relatedness_signal)
    if needs_mode and self.temperature_mode != needs_mode:
      raise ConfigError(f"loss.relatedness_signal={self.relatedness_signal} "
                        f"needs loss.temperature_mode={needs_mode}, got "
                        f"{self.temperature_mode} (a {self.temperature_mode} "
                        "tau needs loss.relatedness_signal=contrastive)")
    _positive(self, "loss", "tau_min")
    if not self.tau_min < self.tau_max:
      raise ConfigError(f"loss.tau_min={self.tau_min} must be < "
                        f"loss.tau_max={self.tau_max}")
    if self.fixed_tau is not None and not (
        self.tau_min <= self.fixed_tau <= self.tau_max):
      raise ConfigError(f"loss.fixed_tau={self.fixed_tau} must lie in "
                        f"[tau_min, tau_max] = [{self.tau_min}, "
                        f"{self.tau_max}]")
