"""Scratch: one SavedModel's serving_default, N requests of 512 records."""
import os, sys, time, gc
import numpy as np
import tensorflow as tf
sys.path.insert(0, os.environ["SRC"])
from export import inspection, requests
a = sys.argv[1]; iters = int(sys.argv[2]); size = 512
logs = requests.read_warmup(os.path.join(a, "assets.extra", "tf_serving_warmup_requests"))
examples = inspection.warmup_examples(logs)
batches = [tf.constant([examples[(i + j) % len(examples)] for i in range(size)]) for j in range(8)]
fa = tf.saved_model.load(a).signatures["serving_default"]
t_all = []
if os.environ.get("NOGC"): gc.disable()
for r in range(iters + 20):
  t = time.perf_counter(); {k: v.numpy() for k, v in fa(examples=batches[r % 8]).items()}; t_all.append(time.perf_counter() - t)
ms = np.array(t_all[20:]) * 1e3
print(f"{os.environ.get('TAG','')}: p50 {np.percentile(ms,50):.2f} p90 {np.percentile(ms,90):.2f} p99 {np.percentile(ms,99):.2f} mean {ms.mean():.2f}")
