"""Small files in the raw Tianchi layouts, built from the documented formats.

Used by the converter, TFDS and entrypoint tests: AliExpress raw
(`{cc}_user_*.csv` 33 columns, `{cc}_item_*.csv` 49 columns, label 0/1/2,
joined on the search id) and Ali-CCP raw (`sample_skeleton_*.csv`,
`common_features_*.csv`, feature lists of `field\\x02id\\x03value` tokens
joined by `\\x01`), generated (`*_raw_lines`) or holding the real sample rows
of tests/data/samples (`*_from_sample`).
"""

import os

import numpy as np

from pipelines.data.formats import aliexpress_raw


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


# Ali-CCP user-side fields: they go to the common features file.
COMMON = {"101", "121", "122", "124", "125", "126", "127", "128", "129",
          "109_14", "110_14", "127_14", "150_14"}


def aliexpress_from_sample(shared_data_dir, folder, test_rows=30):
  """us_{user,item}_{train,test}.csv holding the rows of the MTReclib sample
  (shuffled: the file lists its clicks first)."""
  os.makedirs(folder)
  with open(os.path.join(shared_data_dir, "aliexpress_train_sample.csv")) as f:
    header, *rows = [line.split(",") for line in f.read().splitlines()]
  rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
  col = {name: j for j, name in enumerate(header)}
  cat = iter(f"categorical_{i}" for i in range(1, 17))
  num = iter(f"numerical_{i}" for i in range(1, 64))
  # The raw column order (aliexpress_raw): user then item features.
  user = ([next(cat) for _ in range(7)] + [next(num) for _ in range(23)]
          + [next(cat) for _ in range(2)])
  item = [next(cat) if j in aliexpress_raw.ITEM_CATEGORICAL else next(num)
          for j in range(2, 49)]
  for split, part in (("train", rows[:-test_rows]),
                      ("test", rows[-test_rows:])):
    users, items = {}, []
    for r in part:
      users[r[0]] = ",".join([r[0], *(r[col[k]] for k in user)])
      label = int(r[col["click"]]) + int(r[col["conversion"]])
      items.append(",".join([r[0], *(r[col[k]] for k in item), str(label)]))
    write_lines(os.path.join(folder, f"us_user_{split}.csv"), users.values())
    write_lines(os.path.join(folder, f"us_item_{split}.csv"), items)
  return str(folder)


def aliccp_from_sample(shared_data_dir, folder, test_rows=3):
  """sample_skeleton_* + common_features_* holding the rows of small.txt."""
  os.makedirs(folder)
  with open(os.path.join(shared_data_dir, "small.txt")) as f:
    rows = [line.split(",") for line in f.read().splitlines()]
  for split, part in (("train", rows[:-test_rows]),
                      ("test", rows[-test_rows:])):
    skeleton, commons = [], {}
    for r in part:
      tokens = [tuple(t.split(":")) + ("1.0",) for t in r[3:]]
      user = [t for t in tokens if t[0] in COMMON]
      key, _ = commons.setdefault(feature_list(user),
                                  (f"c{len(commons)}", len(user)))
      own = [t for t in tokens if t[0] not in COMMON]
      skeleton.append(f"{r[0]},{r[1]},{r[2]},{key},{len(own)},"
                      f"{feature_list(own)}")
    write_lines(os.path.join(folder, f"sample_skeleton_{split}.csv"), skeleton)
    write_lines(os.path.join(folder, f"common_features_{split}.csv"),
                [f"{key},{n},{text}" for text, (key, n) in commons.items()])
  return str(folder)
