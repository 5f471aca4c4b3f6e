"""Small files in the raw Tianchi layouts, built from the documented formats.

Helpers for the converter and TFDS tests (imported by them), plus checks that
the files follow the layouts: AliExpress raw (`{cc}_user_*.csv` 33 columns,
`{cc}_item_*.csv` 49 columns, label 0/1/2, joined on the search id) and
Ali-CCP raw (`sample_skeleton_*.csv`, `common_features_*.csv`, feature lists
of `field\\x02id\\x03value` tokens joined by `\\x01`).
"""

import os

import numpy as np

ITEM_CATEGORICAL = (19, 34, 35, 36, 40, 41, 42)
SKELETON_FIELDS = ("205", "206", "207", "216", "508", "509", "702", "301")
COMMON_FIELDS = ("101", "121", "122", "124", "125", "127", "128", "129")
LIST_FIELDS = ("109_14", "110_14", "127_14", "150_14")


def write_lines(path, lines):
  with open(path, "w", newline="") as f:
    f.write("\n".join(lines) + "\n")
  return str(path)


def aliexpress_raw_lines(searches=12, items_per_search=4, seed=0):
  """(user lines, item lines) of one split; ids small, labels mixed."""
  rng = np.random.default_rng(seed)
  users, items = [], []
  for s in range(searches):
    sid = 1000 + s
    cat = rng.integers(0, 5, 9)
    num = np.round(rng.random(23), 4)
    users.append(",".join([str(sid), *map(str, cat[:7]), *map(str, num),
                           *map(str, cat[7:])]))
    for _ in range(items_per_search):
      cells = [str(sid)]
      for j in range(2, 49):
        cells.append(str(rng.integers(0, 6)) if j in ITEM_CATEGORICAL
                     else str(round(float(rng.random()), 4)))
      cells.append(str(rng.choice([0, 0, 1, 2])))
      items.append(",".join(cells))
  return users, items


def write_aliexpress_raw(folder, cc="us", seed=0, splits=("train", "test"),
                         searches=12):
  os.makedirs(folder, exist_ok=True)
  for k, split in enumerate(splits):
    users, items = aliexpress_raw_lines(searches=searches, seed=seed + k)
    write_lines(os.path.join(folder, f"{cc}_user_{split}.csv"), users)
    write_lines(os.path.join(folder, f"{cc}_item_{split}.csv"), items)
  return str(folder)


def feature_list(tokens):
  """`field\\x02id\\x03value` tokens joined by `\\x01`."""
  return "\x01".join(f"{f}\x02{i}\x03{v}" for f, i, v in tokens)


def aliccp_raw_lines(samples=40, sessions=5, seed=0, cwc_every=0):
  """(skeleton lines, common lines); every 7th sample repeats field 210 and
  every `cwc_every`-th is a conversion without a click."""
  rng = np.random.default_rng(seed)
  common = []
  for s in range(sessions):
    tokens = [(f, 100 * (k + 1) + s % 3, 1.0)
              for k, f in enumerate(COMMON_FIELDS)]
    for k, f in enumerate(LIST_FIELDS):
      tokens += [(f, 5000 + 100 * k + int(i), 0.5)
                 for i in rng.integers(0, 20, 2 + (s + k) % 4)]
    common.append(f"cf{s:04x},{len(tokens)},{feature_list(tokens)}")
  skeleton = []
  for i in range(samples):
    tokens = [(f, 20000 + 100 * k + int(rng.integers(0, 8)), 1.0)
              for k, f in enumerate(SKELETON_FIELDS)]
    tokens += [("210", 30000 + int(x), 1.0)
               for x in rng.integers(0, 9, 1 + (i % 7 == 0))]
    click = int(rng.random() < 0.4)
    conversion = int(click and rng.random() < 0.5)
    if cwc_every and i % cwc_every == cwc_every - 1:
      click, conversion = 0, 1
    skeleton.append(f"{i + 1},{click},{conversion},cf{i % sessions:04x},"
                    f"{len(tokens)},{feature_list(tokens)}")
  return skeleton, common


def write_aliccp_raw(folder, seed=0, splits=("train", "test"), **kwargs):
  os.makedirs(folder, exist_ok=True)
  for k, split in enumerate(splits):
    skeleton, common = aliccp_raw_lines(seed=seed + k, **kwargs)
    write_lines(os.path.join(folder, f"sample_skeleton_{split}.csv"), skeleton)
    write_lines(os.path.join(folder, f"common_features_{split}.csv"), common)
  return str(folder)


def test_aliexpress_raw_sample_follows_the_layout():
  users, items = aliexpress_raw_lines()
  assert {len(u.split(",")) for u in users} == {33}
  assert {len(i.split(",")) for i in items} == {49}
  assert {i.split(",")[-1] for i in items} == {"0", "1", "2"}
  assert {i.split(",")[0] for i in items} == {u.split(",")[0] for u in users}


def test_aliccp_raw_sample_follows_the_layout():
  skeleton, common = aliccp_raw_lines()
  for line in skeleton:
    cells = line.split(",")
    assert len(cells) == 6
    tokens = cells[5].split("\x01")
    assert len(tokens) == int(cells[4])
    assert all(t.count("\x02") == 1 and t.count("\x03") == 1 for t in tokens)
  keys = {c.split(",")[0] for c in common}
  assert {s.split(",")[3] for s in skeleton} == keys
  assert any(s.count("210\x02") == 2 for s in skeleton)
