"""Keras 2 (tf-keras) layers of adaftr-tf; all plain-argument, serialisable."""

from adaftr_tf.layers.embedding import FieldEmbedding
from adaftr_tf.layers.experts import MMoE
from adaftr_tf.layers.experts import PLE
from adaftr_tf.layers.experts import SharedBottom
from adaftr_tf.layers.mlp import MLP
from adaftr_tf.layers.relatedness import RelatednessNetwork
from adaftr_tf.layers.towers import ProjectionHead
from adaftr_tf.layers.towers import TaskTower

__all__ = [
    "MLP",
    "FieldEmbedding",
    "SharedBottom",
    "MMoE",
    "PLE",
    "TaskTower",
    "ProjectionHead",
    "RelatednessNetwork",
]
