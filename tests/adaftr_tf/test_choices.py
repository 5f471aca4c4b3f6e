"""Tests of adaftr_tf.choices: the Literal types are the one list of each."""

import ast
import os
import typing

import pytest

from adaftr_tf import choices
from adaftr_tf import config as C

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_options_and_check():
  assert choices.options(choices.Negatives) == ("in_batch", "random_one")
  assert choices.check("negatives", "in_batch", choices.Negatives) == "in_batch"
  with pytest.raises(ValueError, match=r"negatives='hard' is not valid; choose "
                     r"one of \('in_batch', 'random_one'\)"):
    choices.check("negatives", "hard", choices.Negatives)


def test_every_choice_field_of_the_config_is_a_choices_type():
  declared = {getattr(choices, n) for n in dir(choices)
              if choices.is_choice(getattr(choices, n))}
  for section in (C.DataConfig, C.ModelConfig, C.LossConfig, C.TrainConfig,
                  C.RuntimeConfig):
    for name, hint in typing.get_type_hints(section).items():
      if choices.is_choice(hint):
        assert hint in declared, f"{section.__name__}.{name}"


def test_no_module_spells_a_choice_list_again():
  """A tuple literal equal to a choice list outside choices.py is a copy."""
  lists = {choices.options(getattr(choices, n)) for n in dir(choices)
           if choices.is_choice(getattr(choices, n))}
  copies = []
  for folder in ("adaftr_tf", "pipelines", "export"):
    for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
      for name in names:
        path = os.path.join(dirpath, name)
        if not name.endswith(".py") or name == "choices.py":
          continue
        with open(path) as f:
          tree = ast.parse(f.read())
        for node in ast.walk(tree):
          if isinstance(node, (ast.Tuple, ast.List)) and all(
              isinstance(e, ast.Constant) for e in node.elts):
            if tuple(e.value for e in node.elts) in lists:
              copies.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
  assert not copies, f"choice lists spelled again: {copies}"
