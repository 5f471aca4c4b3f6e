"""Helpers of the speed benchmark (`python -m pipelines.benchmark_speed`).

  memory.py      peak resident memory (VmHWM) of the current process
  phases.py      one measurement: input pipeline, Keras fit, reference loop
  prototypes.py  opt-in monkeypatches of proposed real-path changes
  worker.py      runs one phase in a fresh process (separate memory peaks)
  plan.py        the list of measurements a run makes
  report.py      ratios, targets, the printed / Markdown table
"""
