"""Ali-CCP, `field:id` text (the PaddleRec ESMM/ESCM2 layout).

One impression per line, no header: `sample_index,click,purchase,` then
comma-separated `field:id` tokens (`210:1,216:4,...,150_14:18,...`); a
multi-valued field repeats its token. `purchase` is click-and-purchase. Every
token is read, the first one included. `--input`: one file (the train split)
or a folder with `train/` and `test/` subfolders of files (PaddleRec's
`data/train`, `data/test`), or `*train*`/`*test*` files.
"""

from __future__ import annotations

from pipelines.data.formats import base
from pipelines.data.formats import tokens

NAME = "aliccp_text"
PATTERNS = {"train": ("train/*", "*train*.txt", "*train*"),
            "test": ("test/*", "*test*.txt", "*test*")}


class TextSource(tokens.TokenSource):
  """Lines `sample_index,click,purchase,field:id,...`."""

  def parse_line(self, text: str, errors: base.BadRows):
    cells = text.split(",")
    if len(cells) < 3:
      raise tokens.TokenError(base.WRONG_COLUMNS, f"{len(cells)} columns, "
                              "expected sample_index,click,purchase,tokens...")
    try:
      int(cells[0])
    except ValueError:
      raise tokens.TokenError(base.NON_NUMERIC, f"column 1 (sample_index) is "
                              f"{cells[0]!r}, expected an integer") from None
    click = tokens.parse_label(cells[1], 2, "click")
    conversion = tokens.parse_label(cells[2], 3, "purchase")
    fields = tokens.parse_tokens(cells[3:], ":", None, where="column",
                                 offset=3)
    return click, conversion, (fields,)


def sources(input_path: str) -> dict[str, base.Source]:
  files = base.find_files(input_path, PATTERNS, NAME)
  return {split: TextSource(paths) for split, paths in files.items()}
