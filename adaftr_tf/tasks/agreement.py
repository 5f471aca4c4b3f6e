"""Measured gradient agreement of the two tasks, per instance.

`AgreementProbe` records the forward pass from a shared representation to
the two task losses on a persistent tape and returns, per instance, the
cosine of the two tasks' gradients with respect to that representation (see
losses/agreement.py for why one backward pass per task gives every row).
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from adaftr_tf import choices
from adaftr_tf import features as F
from adaftr_tf.losses import per_example_cosine

# A task that does not read the representation (single-task CVR) has a zero
# gradient there.
_ZERO = tf.UnconnectedGradients.ZERO


class AgreementProbe:
  """Per-instance gradient cosine of the two tasks.

  Args:
    source: `losses` (of the CTR and CTCVR losses) or `logits` (of the CTR
      and CVR logits, label-free).
    representation: `embeddings` (the flattened instance embeddings x) or
      `experts` (the backbone's shared experts' outputs, captured through
      the backbone's `tap` argument, layers/experts.py).

  Use:
    with probe.record(x) as recording:
      ... backbone(x, tap=recording.tap) ... the two task losses ...
    agreement = recording.agreement(outputs, first_loss, second_loss)
  """

  def __init__(self, source: str = "losses",
               representation: str = "embeddings"):
    self.source = choices.check("agreement_source", source,
                                choices.AgreementSource)
    self.representation = choices.check(
        "agreement_representation", representation,
        choices.AgreementRepresentation)

  @contextlib.contextmanager
  def record(self, x: tf.Tensor):
    """Records what runs inside on a tape watching x `[batch, e]` (or the
    tapped experts' outputs); yields the `_Recording`."""
    with tf.GradientTape(persistent=True) as tape:
      recording = _Recording(self, tape)
      if self.representation == "embeddings":
        recording.watch(x)
      yield recording


class _Recording:
  """One probe's tape and the shared tensor it watches."""

  def __init__(self, probe: AgreementProbe, tape: tf.GradientTape):
    self._probe, self._tape, self._shared = probe, tape, []

  def watch(self, tensor: tf.Tensor) -> tf.Tensor:
    self._tape.watch(tensor)
    self._shared.append(tensor)
    return tensor

  @property
  def tap(self):
    """The backbone's `tap` (None for `embeddings`, which x already is)."""
    return self.watch if self._probe.representation == "experts" else None

  def agreement(self, outputs, first_loss, second_loss) -> tf.Tensor:
    """Per-instance cosine `[batch]` (stop-gradient) of the recorded tasks'
    gradients with respect to the shared tensor `[batch, ...]`."""
    if self._probe.source == "logits":
      first, second = outputs[F.CTR_LOGIT], outputs[F.CVR_LOGIT]
    else:
      first, second = first_loss, second_loss
    shared = self._shared[0]
    rows = lambda g: tf.reshape(g, [tf.shape(g)[0], -1])
    cosine = per_example_cosine(
        rows(self._tape.gradient(first, shared, unconnected_gradients=_ZERO)),
        rows(self._tape.gradient(second, shared,
                                 unconnected_gradients=_ZERO)))
    del self._tape
    return tf.stop_gradient(cosine)
