"""Objectives, one each (TFRS Task style): a loss and its metrics.

* `FunnelTask` (ranking.py): the CTR -> CTCVR funnel, the model's main task
  on CTR/CVR data; `IndependentTask` (ranking.py) for two independent
  binary tasks (adaftr_tf/objective.py chooses).
* `AlignmentTask` (alignment.py): AdaFTR's adaptive InfoNCE alignment, with
  `ContrastiveTask` (contrastive.py) for the loss and its negatives.
* `CalibrationTask` (calibration.py): AITM's behavioural calibrator.
* `AgreementProbe` (agreement.py): the measured per-instance gradient
  agreement some objectives and diagnostics read.

Auxiliary objectives share one interface (see `models.CtrCvrModel`):
`objective(embeddings, outputs, labels, agreement=, step=, training=,
features=, oracle=, meta=)` ->
(per-example loss `[batch]`, extra outputs), `inference_outputs(...)`, a
`needs_agreement` flag and a `needs_recording` flag (the objective reads the
recorded forward pass, `meta`: tasks/meta_gradient.py).
"""

from adaftr_tf.tasks.agreement import AgreementProbe
from adaftr_tf.tasks.alignment import AlignmentTask
from adaftr_tf.tasks.calibration import CalibrationTask
from adaftr_tf.tasks.contrastive import ContrastiveTask
from adaftr_tf.tasks.ranking import AUC_THRESHOLDS
from adaftr_tf.tasks.ranking import FunnelTask
from adaftr_tf.tasks.ranking import IndependentTask
from adaftr_tf.tasks.ranking import ranking_metrics
from adaftr_tf.tasks.ranking import ranking_task

__all__ = ["AgreementProbe", "AlignmentTask", "AUC_THRESHOLDS",
           "CalibrationTask", "ContrastiveTask", "FunnelTask", "IndependentTask",
           "ranking_metrics", "ranking_task"]
