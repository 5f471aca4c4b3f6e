import time, numpy as np, tensorflow as tf
x = tf.random.normal([512, 191]); k = tf.random.normal([191, 8]); b = tf.random.normal([8])
kw = tf.random.normal([191, 520])
vs = {
 "noop": lambda: x[:1] + 0.0,
 "mm_small": lambda: tf.matmul(x[:64], k),
 "rs": lambda: tf.reduce_sum(x[:, :, None] * k, axis=1) + b,
 "mm+b": lambda: tf.matmul(x, k) + b,
 "mm": lambda: tf.matmul(x, k),
 "mmT": lambda: tf.transpose(tf.matmul(k, x, transpose_a=True, transpose_b=True)) + b,
 "k16": lambda: tf.matmul(x, tf.pad(k, [[0,0],[0,8]]))[:, :8] + b,
 "k64": lambda: tf.matmul(x, tf.pad(k, [[0,0],[0,56]]))[:, :8] + b,
 "wide520": lambda: tf.matmul(x, kw),
}
for name, f in vs.items():
  g = tf.function(f); 
  for _ in range(50): g()
  ts=[]
  for _ in range(500):
    t=time.perf_counter(); g().numpy(); ts.append(time.perf_counter()-t)
  print(name, f"{np.median(ts)*1e6:.0f} us")
