"""Measurement variants of the model, built here from the library's parts.

They exist to *measure* what a part of the library costs or saved
(`--prototypes=` and the paired row of pipelines.benchmark_speed); training
never uses them. Each is a subclass of a library objective, swapped in when
the model is built (`build_model`); nothing is patched.

  keras_auc        the prediction tasks use tf_keras AUC (O(batch x T)
                   update, T = 1001) instead of the library's BucketedAUC
                   (O(batch log T)): what adopting BucketedAUC saved.
  unfused_info_nce symmetric in-batch InfoNCE as two matmuls (one per
                   direction), uncompiled, instead of the XLA-compiled loss
                   with one shared u v^T: what both changes saved.
  uncompiled_info_nce  the fused loss without XLA: what XLA saved.
  no_metrics       the prediction tasks skip their metric updates (what the
                   AUC and log-loss metrics cost; not a proposal by itself).
  einsum_experts   the MMoE experts as before issue 16: batched einsums
                   (`bi,eio->beo`, then `bei,eio->beo`) mixed by
                   `be,bed->bd`, instead of one matmul per expert.
  wide_experts     the MMoE experts' first layer as ONE [batch, in] x
                   [in, E*w] matmul (every expert reads the same input),
                   later layers as batched matmuls in an [E, batch, w]
                   layout, mixed from that layout.
Both expert variants keep the library's variables (names, shapes, initial
values), so they compute the library's loss on the same weights.

Models are built under the Keras dtype policy of
`runtime.mixed_precision`, as training builds them (train_lib).
"""

from __future__ import annotations

from typing import Iterable

import tensorflow as tf
import tf_keras

from adaftr_tf import features as F
from adaftr_tf import losses
from adaftr_tf import models
from adaftr_tf import tasks
from adaftr_tf.layers import MMoE
from adaftr_tf.layers import experts as experts_lib
from adaftr_tf.layers.mlp import derive_seed
from pipelines.training import train_lib

PROTOTYPES = ("keras_auc", "unfused_info_nce", "uncompiled_info_nce",
              "no_metrics", "einsum_experts", "wide_experts")


class KerasAucFunnel(tasks.FunnelTask):
  """The funnel objective with tf_keras's own AUC metric."""

  def make_metrics(self, prefix):
    return [tf_keras.metrics.AUC(thresholds=list(tasks.AUC_THRESHOLDS),
                                 from_logits=True, name=f"{prefix}_auc"),
            *tasks.ranking_metrics(prefix)[1:]]


class NoMetricsFunnel(tasks.FunnelTask):
  """The funnel objective's losses without any metric update."""

  def call(self, labels, outputs):
    click = labels[F.CLICK][:, None]
    conversion = labels[F.CONVERSION][:, None]
    return (self.ctr_task(click, outputs[F.CTR_LOGIT][:, None],
                          compute_metrics=False),
            self.ctcvr_task(conversion, outputs[F.CTCVR_LOGIT][:, None],
                            compute_metrics=False))


class UnfusedContrastive(tasks.ContrastiveTask):
  """Both directions with their own similarity matrix (u v^T and v u^T)."""

  def local_symmetric_loss(self, u, v, tau):
    return losses.symmetric_info_nce(u, v, v, u, tau)


class UncompiledContrastive(tasks.ContrastiveTask):
  """The fused loss (one shared u v^T) without XLA."""

  def local_symmetric_loss(self, u, v, tau):
    return losses.symmetric_in_batch_info_nce(u, v, tau)


# The library's experts: their variables, seeds and dropout layers.
# pylint: disable-next=protected-access
_StackedExperts = experts_lib._StackedExperts


class EinsumExperts(_StackedExperts):
  """The experts before issue 16: x [batch, in] -> [batch, E, units[-1]]."""

  def call(self, x, training=None):
    h = x
    for i, (kernel, bias, dropout) in enumerate(zip(
        self.kernels, self.biases, self._dropouts)):
      equation = "bi,eio->beo" if i == 0 else "bei,eio->beo"
      h = tf.nn.relu(tf.einsum(equation, h, kernel) + bias)
      if dropout is not None:
        h = dropout(h, training=training)
    return h


class WideExperts(_StackedExperts):
  """x [batch, in] -> [E, batch, units[-1]]: the first layer one wide matmul
  with the kernel seen as [in, E*w], the later ones [E, b, i] x [E, i, o]."""

  def call(self, x, training=None):
    h = None
    for i, (kernel, bias, dropout) in enumerate(zip(
        self.kernels, self.biases, self._dropouts)):
      if i == 0:
        experts, in_dim, width = kernel.shape
        wide = tf.reshape(tf.transpose(kernel, [1, 0, 2]), [in_dim, -1])
        h = tf.nn.relu(tf.matmul(x, wide) + tf.reshape(bias, [-1]))
        h = tf.transpose(tf.reshape(h, [-1, experts, width]), [1, 0, 2])
      else:
        h = tf.nn.relu(tf.matmul(h, kernel) + bias[:, None, :])
      if dropout is not None:
        h = dropout(h, training=training)
    return h


class EinsumMMoE(MMoE):
  """MMoE on EinsumExperts, mixed by `be,bed->bd` (the layer before issue
  16)."""

  experts_class = EinsumExperts

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._experts = self.experts_class(
        self.num_experts, self.expert_units, self.dropout,
        derive_seed(self.seed, "experts"), name="experts")

  def call(self, x, training=None, return_gates=False, tap=None):
    if tap is not None:
      raise ValueError("the expert prototypes have no gradient-agreement tap")
    experts = self._experts(x, training=training)
    gates = [tf.nn.softmax(tf.cast(gate(x), tf.float32), axis=-1)
             for gate in self._gates]
    outputs = [self.mix(tf.cast(w, experts.dtype), experts) for w in gates]
    return (outputs, gates) if return_gates else outputs

  @staticmethod
  def mix(weights, experts):
    """[batch, E] x [batch, E, d] -> [batch, d]."""
    return tf.einsum("be,bed->bd", weights, experts)


class WideMMoE(EinsumMMoE):
  """MMoE on WideExperts, mixed from their [E, batch, d] layout."""

  experts_class = WideExperts

  @staticmethod
  def mix(weights, experts):
    """[batch, E] x [E, batch, d] -> [batch, d]."""
    return tf.reduce_sum(tf.transpose(weights)[:, :, None] * experts, axis=0)


_BACKBONES = {"einsum_experts": EinsumMMoE, "wide_experts": WideMMoE}
_CONTRASTIVE = {"unfused_info_nce": UnfusedContrastive,
                "uncompiled_info_nce": UncompiledContrastive}
_FUNNEL = {"keras_auc": KerasAucFunnel, "no_metrics": NoMetricsFunnel}


def check(names: Iterable[str]) -> list[str]:
  """The names, if all valid; ValueError lists the valid ones."""
  names = list(names)
  unknown = [n for n in names if n not in PROTOTYPES]
  if unknown:
    raise ValueError(f"unknown prototype(s) {unknown}; valid: {PROTOTYPES}")
  groups = (_FUNNEL, _CONTRASTIVE, _BACKBONES)
  if any(sum(n in group for n in names) > 1 for group in groups):
    raise ValueError(f"prototypes {names} replace the same part twice; "
                     "combine at most one of each of "
                     f"{' and '.join(str(sorted(g)) for g in groups)}")
  return names


def build_model(config, schema, names: Iterable[str] = ()):
  """`models.build_model` with the named prototypes' parts swapped in, under
  the dtype policy of `runtime.mixed_precision` (as training builds it)."""
  names = check(names)
  with train_lib.precision(config.runtime.mixed_precision):
    objectives = models.build_objectives(config)
    for name in names:
      if name in _CONTRASTIVE:
        for objective in objectives:
          if isinstance(objective, tasks.AlignmentTask):
            objective.contrastive = _CONTRASTIVE[name].from_config(
                objective.contrastive.get_config())
    funnel = next((_FUNNEL[n] for n in names if n in _FUNNEL), None)
    model = models.build_model(
        config, schema, objectives=objectives,
        task=funnel(name="funnel") if funnel else None)
    backbone = next((_BACKBONES[n] for n in names if n in _BACKBONES), None)
    if backbone:
      model.backbone = _swap_backbone(model.backbone, backbone)
  return model


def _swap_backbone(library, prototype):
  """The prototype backbone with the library one's config (same variables
  and seeds); ValueError unless the library's is an MMoE."""
  if not isinstance(library, MMoE):
    raise ValueError(f"the expert prototypes replace MMoE; this model's "
                     f"backbone is {type(library).__name__} (set "
                     "model.backbone=mmoe)")
  return prototype.from_config(library.get_config())
