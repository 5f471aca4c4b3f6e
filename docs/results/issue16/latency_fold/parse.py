import os, sys, time, numpy as np, tensorflow as tf
sys.path.insert(0, os.environ["SRC"])
from export import inspection, requests
path = sys.argv[1]
logs = requests.read_warmup(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))
examples = inspection.warmup_examples(logs)
schema = inspection.load_schema(path)
spec = schema.parse_spec(with_labels=False)
batch = tf.constant([examples[i % len(examples)] for i in range(512)])
print("bytes per record", np.mean([len(e) for e in examples]), "features", len(spec))
f = tf.function(lambda b: tf.io.parse_example(b, spec))
noop = tf.function(lambda b: tf.size(b))
def split2(b):
  h = tf.shape(b)[0] // 2
  p1 = tf.io.parse_example(b[:h], spec); p2 = tf.io.parse_example(b[h:], spec)
  return {k: tf.concat([p1[k], p2[k]], 0) for k in p1}
def split4(b):
  parts = [tf.io.parse_example(b[i*128:(i+1)*128], spec) for i in range(4)]
  return {k: tf.concat([p[k] for p in parts], 0) for k in parts[0]}
s2 = tf.function(split2); s4 = tf.function(split4)
for name, g in (("noop", noop), ("parse", f), ("split2", s2), ("split4", s4)):
  for _ in range(50): g(batch)
  ts=[]
  for _ in range(1000):
    t=time.perf_counter(); tf.nest.map_structure(lambda v: v.numpy(), g(batch)); ts.append(time.perf_counter()-t)
  ms=np.array(ts)*1e3
  print(name, f"p50 {np.percentile(ms,50):.2f} p99 {np.percentile(ms,99):.2f}")
