"""The measurements one speed benchmark run makes, as phase specs.

Rows (key: what runs):
  input/rows            make_dataset alone (parsed batches, no model) on
                        per-row records (one tf.train.Example per row)
  input/blocks          the same on row blocks (pipelines/data/blocks.py)
  real/adaftr           Keras fit on make_dataset, AdaFTR (the config with
                        the paper reading's relatedness signal and in-batch
                        negatives, ADAFTR; data.layout, row blocks by default)
  real_rows/adaftr      the same on per-row records (real_blocks/adaftr when
                        data.layout=rows)
  real/no_cl            the same with model.name=multitask (no InfoNCE)
  real_cached/adaftr    Keras fit on pre-parsed batches cycled from memory
                        (real minus the file input)
  reference/adaftr      the minimal tf.function loop on pre-parsed batches
  reference/no_cl       the same without the contrastive loss
  variant/<name>        real/adaftr with one config change (VARIANTS)
  prototype/<name>      real/adaftr (or the reference) with a measurement
                        variant of pipelines/benchmarks/speed/prototypes.py
  paired/reference      reference steps of AdaFTR and of PAIRED entries,
                        interleaved in one process (steady ratios)
  scale/<rows>/<opt>    real/adaftr on data whose embedding table has <rows>
                        rows in total, per optimizer
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from adaftr_tf import choices
from adaftr_tf.experiments import relatedness
from adaftr_tf.experiments.methods import PAPER_READING

# AdaFTR as the published speed figures measure it: the paper reading, whose
# in-batch InfoNCE is the heaviest form (the library default, the transfer
# gate with one random negative, is the paired entry transfer_gate_random_one).
ADAFTR = ["model.name=adaftr"] + [f"loss.{key}={value}"
                                  for key, value in PAPER_READING.items()]
NO_CL = ["model.name=multitask"]
# The paired row writes untrained teachers where an entry names one of these
# teacher_dirs: the teachers of the registry's student `adaftr_B_<student>`
# on the config's backbone B, with initial weights (their forward passes
# cost what trained ones' do; pipelines/benchmarks/speed/paired.py).
UNTRAINED_TEACHER = "untrained-gate-teacher"
UNTRAINED_CROSSFIT_TEACHERS = "untrained-gate-teacher-crossfit-2"
UNTRAINED_TEACHERS = {UNTRAINED_TEACHER: "gate_teacher",
                      UNTRAINED_CROSSFIT_TEACHERS: "gate_teacher_crossfit_2"}
GATE_TEACHER = ["loss.tau_source=teacher",
                f"loss.teacher_dir={UNTRAINED_TEACHER}"]
GATE_TEACHER_CROSSFIT = ["loss.tau_source=teacher",
                         f"loss.teacher_dir={UNTRAINED_CROSSFIT_TEACHERS}"]
# The registry's linear gate with the steeper map and one random negative
# (adaftr_B_transfer_gate_linear_quantile_0.25, the gate teacher's form).
LINEAR_GATE = ["loss.relatedness_signal=transfer_gate",
               "loss.negatives=random_one", "model.relatedness_units=()",
               f"loss.gate_quantile={relatedness.STEEP_QUANTILE}"]
PRUNED_SHARE = relatedness.PRUNED_FIELD_SHARE
BF16 = ["runtime.mixed_precision=mixed_bfloat16"]
# The record layouts (pipelines/data/layout.py) the input rows read, and
# how the table names them.
LAYOUT_ROWS = ("rows", "blocks")
LAYOUT_WORDS = {"rows": "per-row records", "blocks": "row blocks"}

# name -> (description, overrides on top of real/adaftr).
VARIANTS = {
    "spe1": ("steps_per_execution=1", ["train.steps_per_execution=1"]),
    "jit": ("XLA (jit_compile=true)", ["runtime.jit_compile=true"]),
    "adagrad": ("Adagrad (sparse updates)", ["train.optimizer=adagrad"]),
    "lazy_adam": ("LazyAdam (sparse rows only)", ["train.optimizer=lazy_adam"]),
    "random_one": ("one random negative (loss.negatives=random_one)",
                   ["loss.negatives=random_one"]),
    "asymmetric": ("one InfoNCE direction (loss.symmetric=false)",
                   ["loss.symmetric=false"]),
    "gradient_agreement": ("relatedness from per-instance gradient agreement",
                           ["loss.relatedness_signal=gradient_agreement"]),
}
# Entries of the paired row (pipelines/benchmarks/speed/paired.py): name -> (overrides,
# prototypes) on top of AdaFTR; "adaftr" (the baseline) always runs first.
PAIRED = {
    "no_cl": (NO_CL, []),
    "random_one": (["loss.negatives=random_one"], []),
    "asymmetric": (["loss.symmetric=false"], []),
    "gradient_agreement": (["loss.relatedness_signal=gradient_agreement"], []),
    "transfer_gate": (["loss.relatedness_signal=transfer_gate"], []),
    "transfer_gate_random_one": (["loss.relatedness_signal=transfer_gate",
                                  "loss.negatives=random_one"], []),
    "transfer_gate_linear_random_one": (LINEAR_GATE, []),
    # Its tau read through the fields above the share, in the same run.
    "transfer_gate_linear_pruned_random_one": (
        LINEAR_GATE + [f"loss.gate_field_share={PRUNED_SHARE}"], []),
    "gate_teacher": (GATE_TEACHER, []),
    "gate_teacher_random_one": (GATE_TEACHER + ["loss.negatives=random_one"],
                                []),
    "gate_teacher_pruned_random_one": (
        GATE_TEACHER + ["loss.negatives=random_one",
                        f"loss.teacher_field_share={PRUNED_SHARE}"], []),
    # Cross-fitted: two fold teachers, each row reads its fold's teacher.
    "gate_teacher_crossfit_2": (GATE_TEACHER_CROSSFIT, []),
    "gate_teacher_crossfit_2_random_one": (
        GATE_TEACHER_CROSSFIT + ["loss.negatives=random_one"], []),
    "meta_gradient": (["loss.relatedness_signal=meta_gradient"], []),
    "meta_gradient_every_8": (["loss.relatedness_signal=meta_gradient",
                               "loss.meta_gradient_every=8"], []),
    "jit": (["runtime.jit_compile=true"], []),
    "lazy_adam": (["train.optimizer=lazy_adam"], []),
    "no_metrics": ([], ["no_metrics"]),
    "keras_auc": ([], ["keras_auc"]),
    "unfused_info_nce": ([], ["unfused_info_nce"]),
    "uncompiled_info_nce": ([], ["uncompiled_info_nce"]),
    # The MMoE experts' formulations (prototypes.py) and bfloat16 (issue 16).
    "einsum_experts": ([], ["einsum_experts"]),
    "wide_experts": ([], ["wide_experts"]),
    "no_cl_einsum_experts": (NO_CL, ["einsum_experts"]),
    "bfloat16": (BF16, []),
    "bfloat16_einsum_experts": (BF16, ["einsum_experts"]),
    "bfloat16_wide_experts": (BF16, ["wide_experts"]),
    "no_cl_bfloat16": (NO_CL + BF16, []),
}


@dataclasses.dataclass(frozen=True)
class Row:
  """One measurement: a table row and the spec of the phase that makes it."""

  key: str
  group: str          # core | variant | prototype | scale
  description: str
  spec: dict


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the flags chose (see pipelines/benchmark_speed.py)."""

  preset: str
  overrides: tuple[str, ...]
  steps: int
  warmup: int
  input_steps: int
  reference_batches: int
  steps_per_execution: int
  variants: tuple[str, ...]
  prototypes: tuple[str, ...]
  scale_steps: int
  scale_warmup: int
  scale_steps_per_execution: int
  scale_optimizers: tuple[str, ...] = choices.options(choices.Optimizer)
  paired: tuple[str, ...] = ()
  paired_rounds: int = 4
  paired_steps: int = 5
  layout: str = "blocks"   # data.layout: what rows without one in the key read


def round_up(steps: int, multiple: int) -> int:
  """The smallest multiple of `multiple` that is >= steps (and >= multiple)."""
  return max(multiple, -(-steps // multiple) * multiple)


def _spec(s: Settings, phase: str, data_dir: str, overrides, steps, warmup,
          prototypes=(), steps_per_execution=None) -> dict:
  if phase in ("fit", "fit_cached"):  # whole executions: timestamp each
    spe = steps_per_execution or s.steps_per_execution
    steps, warmup = round_up(steps, spe), round_up(warmup, spe)
  return {"phase": phase, "preset": s.preset,
          "overrides": list(s.overrides) + list(overrides),
          "data_dir": data_dir, "steps": steps, "warmup": warmup,
          "prototypes": list(prototypes),
          "reference_batches": s.reference_batches}


def real_key(layout: str, default: str) -> str:
  """The real AdaFTR row reading `layout`: real/adaftr on the config's
  layout (`default`), real_<layout>/adaftr on the other one."""
  return "real/adaftr" if layout == default else f"real_{layout}/adaftr"


def core_rows(s: Settings, dirs: dict[str, str]) -> list[Row]:
  """`dirs`: {layout: main data dir}; rows without a layout in their key
  read the config's `data.layout` (row blocks by default)."""
  data_dir = dirs[s.layout]
  inputs = [Row(f"input/{name}", "core",
                f"TFRecord files ({LAYOUT_WORDS[name]}) -> parsed batches "
                "(make_dataset)",
                _spec(s, "input", dirs[name], [], s.input_steps, s.warmup))
            for name in LAYOUT_ROWS]
  reals = [Row(real_key(name, s.layout), "core",
               f"files ({LAYOUT_WORDS[name]}) -> make_dataset -> Keras fit",
               _spec(s, "fit", dirs[name], ADAFTR, s.steps, s.warmup))
           for name in sorted(LAYOUT_ROWS, key=lambda n: n != s.layout)]
  return inputs + reals + [
      Row("real/no_cl", "core", "real/adaftr with model.name=multitask",
          _spec(s, "fit", data_dir, NO_CL, s.steps, s.warmup)),
      Row("real_cached/adaftr", "core",
          "Keras fit on pre-parsed batches in memory (no file input)",
          _spec(s, "fit_cached", data_dir, ADAFTR, s.steps, s.warmup)),
      Row("reference/adaftr", "core", "pre-parsed batches, tf.function loop",
          _spec(s, "reference", data_dir, ADAFTR, s.steps, s.warmup)),
      Row("reference/no_cl", "core", "same, model.name=multitask",
          _spec(s, "reference", data_dir, NO_CL, s.steps, s.warmup)),
  ]


def select(rows: list[Row], text: str) -> list[Row]:
  """The rows `--rows` names (comma list of keys, 'all' or '' = none)."""
  keys = parse_names(text, [r.key for r in rows], "rows")
  return [r for r in rows if r.key in keys]


def extra_rows(s: Settings, data_dir: str) -> list[Row]:
  """Variant rows, then prototype rows (one per patch)."""
  rows = []
  for name in s.variants:
    description, overrides = VARIANTS[name]
    spe = 1 if name == "spe1" else None
    rows.append(Row(f"variant/{name}", "variant", description,
                    _spec(s, "fit", data_dir, ADAFTR + overrides, s.steps,
                          s.warmup, steps_per_execution=spe)))
  for name in s.prototypes:
    rows.append(Row(f"prototype/{name}", "prototype", f"real/adaftr + {name}",
                    _spec(s, "fit", data_dir, ADAFTR, s.steps, s.warmup,
                          prototypes=[name])))
  if "no_metrics" in s.prototypes:
    rows.append(Row("prototype/reference_no_metrics", "prototype",
                    "reference/adaftr + no_metrics",
                    _spec(s, "reference", data_dir, ADAFTR, s.steps, s.warmup,
                          prototypes=["no_metrics"])))
  return rows


def paired_rows(s: Settings, data_dir: str) -> list[Row]:
  """One row: AdaFTR's reference step and the chosen PAIRED entries,
  timed in interleaved rounds in one process."""
  if not s.paired:
    return []
  entries = [{"name": "adaftr", "overrides": [], "prototypes": []}]
  entries += [{"name": n, "overrides": PAIRED[n][0],
               "prototypes": PAIRED[n][1]} for n in s.paired]
  spec = _spec(s, "paired", data_dir, ADAFTR, s.paired_steps,
               min(s.warmup, 3))
  spec.update(entries=entries, rounds=s.paired_rounds)
  return [Row("paired/reference", "paired",
              "reference steps, interleaved in one process", spec)]


def scale_rows(s: Settings, scale_dirs: dict[int, str]) -> list[Row]:
  """real/adaftr per total table size and optimizer."""
  spe = s.scale_steps_per_execution
  rows = []
  for total, data_dir in sorted(scale_dirs.items()):
    for name in s.scale_optimizers:
      rows.append(Row(
          f"scale/{total}/{name}", "scale",
          f"{total} table rows, {name}, steps_per_execution={spe}",
          _spec(s, "fit", data_dir,
                ADAFTR + [f"train.optimizer={name}",
                          f"train.steps_per_execution={spe}"],
                s.scale_steps, s.scale_warmup, steps_per_execution=spe)))
  return rows


def parse_int_list(text: str, name: str) -> list[int]:
  """'10000,1000000' -> [10000, 1000000]; ValueError names the flag."""
  try:
    values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
  except ValueError:
    raise ValueError(f"--{name}={text!r} must be a comma-separated list of "
                     "integers") from None
  if any(v < 1 for v in values):
    raise ValueError(f"--{name}={text!r}: every value must be >= 1")
  return values


def parse_names(text: str, valid: Sequence[str], name: str) -> list[str]:
  """Comma list of names from `valid` ('all' = every one, '' = none)."""
  if text.strip() == "all":
    return list(valid)
  names = [n.strip() for n in text.split(",") if n.strip()]
  unknown = [n for n in names if n not in valid]
  if unknown:
    raise ValueError(f"--{name}: unknown {unknown}; valid: {list(valid)} "
                     "or 'all'")
  return names
