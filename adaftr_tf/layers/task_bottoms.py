"""No-sharing backbones: one bottom MLP per task.

`TaskBottoms` gives every task its own MLP. Fed one shared input it is the
ESMM layout (shared embeddings, separate networks); fed one input per task
(separate embedding tables) it is the single-task reference with no sharing.
"""

import tf_keras

from adaftr_tf.layers import factored
from adaftr_tf.layers.mlp import MLP
from adaftr_tf.layers.mlp import derive_seed
from adaftr_tf.layers.mlp import validate_positive_int
from adaftr_tf.layers.mlp import validate_rate
from adaftr_tf.layers.mlp import validate_seed
from adaftr_tf.layers.mlp import validate_units


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class TaskBottoms(tf_keras.layers.Layer):
  """One MLP per task.

  Call:
    x: [batch, in] shared by all tasks, or a list of `num_tasks` tensors
      [batch, in_k] (one input per task).
    return_gates: accepted for the uniform backbone API; gates are `[]`.

  Returns:
    List of `num_tasks` tensors [batch, units[-1]] (or `(outputs, [])`).
  """

  def __init__(self, units, num_tasks=2, dropout=0.0, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.units = validate_units("units", units)
    self.num_tasks = validate_positive_int("num_tasks", num_tasks)
    self.dropout = validate_rate("dropout", dropout)
    self.seed = validate_seed(seed)
    self._mlps = [MLP(self.units, dropout=self.dropout,
                      seed=derive_seed(self.seed, "bottom", k),
                      name=f"bottom_{k}") for k in range(self.num_tasks)]

  def call(self, x, training=None, return_gates=False, tap=None):
    if tap is not None:
      raise ValueError("TaskBottoms share no layer: there is no shared "
                       "tensor to tap")
    inputs = list(x) if isinstance(x, (list, tuple)) else [x] * self.num_tasks
    if len(inputs) != self.num_tasks:
      raise ValueError(f"TaskBottoms got {len(inputs)} inputs for "
                       f"{self.num_tasks} tasks")
    outputs = [factored.call_layer(mlp, h, training=training)
               for mlp, h in zip(self._mlps, inputs)]
    return (outputs, []) if return_gates else outputs

  def get_config(self):
    config = super().get_config()
    config.update(units=list(self.units), num_tasks=self.num_tasks,
                  dropout=self.dropout, seed=self.seed)
    return config
