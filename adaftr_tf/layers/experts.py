"""Parameter-sharing multi-task backbones: shared-bottom, MMoE and PLE.

All three map `x` [batch, in] to one representation per task and share the
call signature `call(x, training=None, return_gates=False, tap=None)`.

`tap`, when given, is called once with the tensor every task reads (the
shared experts' outputs, rows = instances) and must return it unchanged; a
GradientTape around the call can then differentiate with respect to it
(the gradient-agreement relatedness, `loss.agreement_representation=experts`).
"""

import math

import tensorflow as tf
import tf_keras

from adaftr_tf.layers import factored
from adaftr_tf.layers.mlp import MLP
from adaftr_tf.layers.mlp import derive_seed
from adaftr_tf.layers.mlp import validate_positive_int
from adaftr_tf.layers.mlp import validate_rate
from adaftr_tf.layers.mlp import validate_seed
from adaftr_tf.layers.mlp import validate_units

class _StackedExperts(tf_keras.layers.Layer):
  """`num_experts` ReLU MLPs of equal widths, one matmul per expert and layer.

  The variables hold all experts (kernel_i [E, in, w], bias_i [E, w]); each
  layer unstacks them and runs one [batch, in] x [in, w] matmul per expert.
  On CPU this beat the batched einsums it replaced (`bi,eio->beo`, then
  `bei,eio->beo`, run as broadcast batch matmuls with transposes) and one
  wide [in, E*w] first-layer matmul tied with it (issue 16; the variants are
  in pipelines/benchmarks/speed/prototypes.py).

  Call: x [batch, in] (or its `FactoredFields`, layers/factored.py) -> list
  of `num_experts` tensors [batch, units[-1]].
  """

  def __init__(self, num_experts, units, dropout, seed, **kwargs):
    super().__init__(**kwargs)
    self.num_experts = num_experts
    self.units = units
    self.seed = seed
    self._dropouts = [
        tf_keras.layers.Dropout(dropout, seed=derive_seed(seed, "dropout", i))
        if dropout > 0 else None
        for i in range(len(units))]

  def build(self, input_shape):
    in_dim = int(input_shape[-1])
    self.kernels, self.biases = [], []
    for i, width in enumerate(self.units):
      # Glorot-uniform per expert; the stock initializer would count the expert
      # axis into the fans and shrink the weights.
      limit = math.sqrt(6.0 / (in_dim + width))
      self.kernels.append(self.add_weight(
          f"kernel_{i}", shape=[self.num_experts, in_dim, width],
          initializer=tf_keras.initializers.RandomUniform(
              -limit, limit, seed=derive_seed(self.seed, "kernel", i))))
      self.biases.append(self.add_weight(
          f"bias_{i}", shape=[self.num_experts, width], initializer="zeros"))
      in_dim = width
    super().build(input_shape)

  def call(self, x, training=None):
    hidden = [x] * self.num_experts   # x dense or FactoredFields
    for kernel, bias, dropout in zip(self.kernels, self.biases,
                                     self._dropouts):
      hidden = [tf.nn.relu(factored.matmul(h, k) + b) for h, k, b in
                zip(hidden, tf.unstack(kernel), tf.unstack(bias))]
      if dropout is not None:   # one mask per expert
        hidden = [dropout(h, training=training) for h in hidden]
    return hidden


def _gate(num_outputs, seed, name):
  return tf_keras.layers.Dense(
      num_outputs, kernel_initializer=tf_keras.initializers.GlorotUniform(
          seed=seed), name=name)


def _mixture(weights, experts):
  """sum_e weights[:, e] * experts[e]: float32 weights [batch, E], experts a
  list of E tensors [batch, d] -> [batch, d] in the experts' dtype (summed in
  float32, as the batched matmul it replaced accumulated)."""
  mixed = tf.add_n([weights[:, e:e + 1] * tf.cast(h, tf.float32)
                    for e, h in enumerate(experts)])
  return tf.cast(mixed, experts[0].dtype)


def _mix(gate_layer, gate_input, experts):
  """Softmax-gated sum of experts (a list of E tensors [batch, d]) ->
  ([batch, d], [batch, E] float32 weights)."""
  if isinstance(gate_input, factored.FactoredFields):   # a built gate
    logits = gate_input.matmul(gate_layer.kernel) + gate_layer.bias
  else:
    logits = gate_layer(gate_input)
  # Softmax in float32 so that mixed-precision gates still sum to 1.
  weights = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
  return _mixture(weights, experts), weights


def _tap_experts(tap, experts):
  """Passes the experts (E tensors [batch, d]) through `tap` as one
  [batch, E, d] tensor (rows = instances) and returns them split again."""
  return tf.unstack(tap(tf.stack(experts, axis=1)), axis=1)


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class SharedBottom(tf_keras.layers.Layer):
  """One MLP shared by all tasks (hard parameter sharing).

  Call:
    x: [batch, in]. training: enables dropout.
    return_gates: accepted for a uniform backbone API; gates are `[]`.

  Returns:
    List of `num_tasks` tensors [batch, units[-1]] (the same tensor), or
    `(outputs, [])` when `return_gates`.
  """

  def __init__(self, units, num_tasks=2, dropout=0.0, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.units = validate_units("units", units)
    self.num_tasks = validate_positive_int("num_tasks", num_tasks)
    self.dropout = validate_rate("dropout", dropout)
    self.seed = validate_seed(seed)
    self._mlp = MLP(self.units, dropout=self.dropout, seed=self.seed,
                    name="bottom")

  def call(self, x, training=None, return_gates=False, tap=None):
    h = factored.call_layer(self._mlp, x, training=training)
    if tap is not None:
      h = tap(h)   # [batch, units[-1]]
    outputs = [h] * self.num_tasks
    return (outputs, []) if return_gates else outputs

  def get_config(self):
    config = super().get_config()
    config.update(units=list(self.units), num_tasks=self.num_tasks,
                  dropout=self.dropout, seed=self.seed)
    return config


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class MMoE(tf_keras.layers.Layer):
  """Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

  `out_k = sum_e softmax(G_k x)_e * expert_e(x)`, experts are ReLU MLPs.

  Call:
    x: [batch, in]. training: enables dropout.
    return_gates: also return the gate weights.

  Returns:
    List of `num_tasks` tensors [batch, expert_units[-1]]; with
    `return_gates`, `(outputs, gates)`, gates a list of `num_tasks` float32
    [batch, num_experts] softmax weights (rows sum to 1).
  """

  def __init__(self, num_experts, expert_units, num_tasks=2, dropout=0.0,
               seed=0, **kwargs):
    super().__init__(**kwargs)
    self.num_experts = validate_positive_int("num_experts", num_experts)
    self.expert_units = validate_units("expert_units", expert_units)
    self.num_tasks = validate_positive_int("num_tasks", num_tasks)
    self.dropout = validate_rate("dropout", dropout)
    self.seed = validate_seed(seed)
    self._experts = _StackedExperts(
        self.num_experts, self.expert_units, self.dropout,
        derive_seed(self.seed, "experts"), name="experts")
    self._gates = [_gate(self.num_experts, derive_seed(self.seed, "gate", k),
                         f"gate_{k}") for k in range(self.num_tasks)]

  def build(self, input_shape):
    for gate in self._gates:   # read as one kernel in `_gate_weights`
      with tf.name_scope(gate.name):   # the names calling it would give
        gate.build(input_shape)
    super().build(input_shape)

  def _gate_weights(self, x):
    """Every task's gate in one [in, T*E] matmul and one softmax (the gates
    all read x): x [batch, in] -> float32 [batch, T, E], rows summing to 1."""
    kernel = tf.concat([g.kernel for g in self._gates], axis=1)
    bias = tf.concat([g.bias for g in self._gates], axis=0)
    logits = factored.matmul(x, kernel) + bias
    # A 2-D softmax: oneDNN's on [batch, T, E] was ~5% of a serving request.
    weights = tf.nn.softmax(
        tf.reshape(tf.cast(logits, tf.float32), [-1, self.num_experts]))
    return tf.reshape(weights, [-1, self.num_tasks, self.num_experts])

  def call(self, x, training=None, return_gates=False, tap=None):
    experts = factored.call_layer(self._experts, x,
                                  training=training)   # E x [batch, d]
    if tap is not None:
      experts = _tap_experts(tap, experts)
    weights = self._gate_weights(x)
    gates = [weights[:, k] for k in range(self.num_tasks)]
    outputs = [_mixture(w, experts) for w in gates]
    return (outputs, gates) if return_gates else outputs

  def get_config(self):
    config = super().get_config()
    config.update(num_experts=self.num_experts,
                  expert_units=list(self.expert_units),
                  num_tasks=self.num_tasks, dropout=self.dropout,
                  seed=self.seed)
    return config


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class PLE(tf_keras.layers.Layer):
  """Progressive Layered Extraction (Tang et al., RecSys 2020).

  `num_levels` stacked CGC layers. At each level task k's gate, read from task
  k's input, mixes task k's experts and the shared experts; below the last
  level a shared gate, read from the shared input, mixes all experts of the
  level into the next level's shared input. Level 0 reads `x` everywhere.

  Call:
    x: [batch, in]. training: enables dropout.
    return_gates: also return the last level's gate weights.
    tap: see the module docstring; PLE taps the first level's shared experts
      (needs num_shared_experts >= 1).

  Returns:
    List of `num_tasks` tensors [batch, expert_units[-1]]; with
    `return_gates`, `(outputs, gates)`, gates a list of `num_tasks` float32
    [batch, num_task_experts + num_shared_experts] weights (task experts
    first), rows summing to 1.
  """

  def __init__(self, num_levels, num_shared_experts, num_task_experts,
               expert_units, num_tasks=2, dropout=0.0, seed=0, **kwargs):
    """Creates the PLE backbone.

    Args:
      num_levels: number of CGC levels, >= 1.
      num_shared_experts: shared experts per level, >= 0 (0 removes sharing).
      num_task_experts: experts per task per level, >= 1.
      expert_units: widths of every expert MLP, each >= 1.
      num_tasks: number of tasks, >= 1.
      dropout: dropout rate in [0, 1) inside the experts.
      seed: int seed; every expert group and gate derives its own from it.
      **kwargs: standard Layer arguments.

    Raises:
      ValueError: naming the argument that is out of range.
    """
    super().__init__(**kwargs)
    self.num_levels = validate_positive_int("num_levels", num_levels)
    self.num_shared_experts = validate_positive_int(
        "num_shared_experts", num_shared_experts, minimum=0)
    self.num_task_experts = validate_positive_int("num_task_experts",
                                                  num_task_experts)
    self.expert_units = validate_units("expert_units", expert_units)
    self.num_tasks = validate_positive_int("num_tasks", num_tasks)
    self.dropout = validate_rate("dropout", dropout)
    self.seed = validate_seed(seed)
    # Distinct seeds per group: identical task experts would stay symmetric.
    seed = lambda *tags: derive_seed(self.seed, *tags)
    self._task_experts, self._task_gates = [], []
    self._shared_experts, self._shared_gates = [], []
    per_task_pool = self.num_task_experts + self.num_shared_experts
    all_pool = self.num_tasks * self.num_task_experts + self.num_shared_experts
    for level in range(self.num_levels):
      self._task_experts.append([
          _StackedExperts(self.num_task_experts, self.expert_units,
                          self.dropout, seed(level, "task", k),
                          name=f"level{level}_task{k}_experts")
          for k in range(self.num_tasks)])
      self._task_gates.append([
          _gate(per_task_pool, seed(level, "task_gate", k),
                f"level{level}_task{k}_gate")
          for k in range(self.num_tasks)])
      self._shared_experts.append(
          _StackedExperts(self.num_shared_experts, self.expert_units,
                          self.dropout, seed(level, "shared"),
                          name=f"level{level}_shared_experts")
          if self.num_shared_experts else None)
      self._shared_gates.append(
          _gate(all_pool, seed(level, "shared_gate"),
                f"level{level}_shared_gate")
          if level < self.num_levels - 1 else None)

  def call(self, x, training=None, return_gates=False, tap=None):
    if tap is not None and not self.num_shared_experts:
      raise ValueError("PLE without shared experts has no shared tensor to "
                       "tap (num_shared_experts=0)")
    task_inputs = [x] * self.num_tasks
    shared_input = x
    for level in range(self.num_levels):
      task_out = [factored.call_layer(experts, inp, training=training)
                  for experts, inp in
                  zip(self._task_experts[level], task_inputs)]
      shared_out = (factored.call_layer(self._shared_experts[level],
                                        shared_input, training=training)
                    if self._shared_experts[level] is not None else [])
      if tap is not None and level == 0:
        # The first level's shared experts, as [batch, shared, units[-1]].
        shared_out = _tap_experts(tap, shared_out)
      mixed = [_mix(gate, inp, own + shared_out)
               for gate, inp, own in zip(self._task_gates[level], task_inputs,
                                         task_out)]
      if self._shared_gates[level] is not None:
        every = [e for own in task_out for e in own] + shared_out
        shared_input, _ = _mix(self._shared_gates[level], shared_input, every)
      task_inputs = [m for m, _ in mixed]
    gates = [g for _, g in mixed]
    return (task_inputs, gates) if return_gates else task_inputs

  def get_config(self):
    config = super().get_config()
    config.update(num_levels=self.num_levels,
                  num_shared_experts=self.num_shared_experts,
                  num_task_experts=self.num_task_experts,
                  expert_units=list(self.expert_units),
                  num_tasks=self.num_tasks, dropout=self.dropout,
                  seed=self.seed)
    return config
