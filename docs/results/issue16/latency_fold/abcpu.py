"""Scratch: two SavedModels' serving_default interleaved, 512 records: p50, p99 and CPU per request."""
import os, sys, time
import numpy as np
import tensorflow as tf
sys.path.insert(0, os.environ.get("SRC", os.getcwd()))
from export import inspection, requests
a, b = sys.argv[1], sys.argv[2]
iters = int(sys.argv[3]) if len(sys.argv) > 3 else 300
size = int(sys.argv[4]) if len(sys.argv) > 4 else 512
logs = requests.read_warmup(os.path.join(a, "assets.extra", "tf_serving_warmup_requests"))
examples = inspection.warmup_examples(logs)
batches = [tf.constant([examples[(i + j) % len(examples)] for i in range(size)]) for j in range(8)]
fa = tf.saved_model.load(a).signatures["serving_default"]
fb = tf.saved_model.load(b).signatures["serving_default"]
oa, ob = fa(examples=batches[0]), fb(examples=batches[0])
print("max abs diff", max(float(np.max(np.abs(oa[k].numpy() - ob[k].numpy()))) for k in oa))
variants = {"A " + a: fa, "B " + b: fb}
res = {n: [] for n in variants}
cpu = {n: 0.0 for n in variants}
for r in range(iters + 10):
  for n, fn in variants.items():
    c = time.process_time(); t = time.perf_counter(); {k: v.numpy() for k, v in fn(examples=batches[r % 8]).items()}; res[n].append(time.perf_counter() - t); cpu[n] += (time.process_time() - c) if r >= 10 else 0
for n, t in res.items():
  ms = np.array(t[10:]) * 1e3
  print(f"{n}: cpu/request {cpu[n]/iters*1e3:.2f} ms p50 {np.percentile(ms,50):.2f} p99 {np.percentile(ms,99):.2f} mean {ms.mean():.2f}")
