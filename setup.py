"""adaftr-tf: joint CTR/CVR estimation with adaptive task relatedness (AdaFTR).

`pip install .` installs the three packages (the library `adaftr_tf`, the
data/training/benchmark jobs `pipelines`, the SavedModel tools `export`) and
the console scripts below; each is the `python -m` entrypoint of the same
name (`adaftr-train` = `python -m pipelines.train`).
"""

from setuptools import find_packages, setup

# Pinned, tested set (TensorFlow 2.21 + Keras 2 through tf-keras; TFRS needs it).
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-recommenders==0.7.7",
    "tensorflow-datasets==4.9.10",     # pipelines.data.tfds, --format=tfds
    "tensorboard==2.21.0",             # the training job's TensorBoard logs
    "tensorflow-serving-api==2.21.0",  # export: warm-up PredictionLogs
    "absl-py==2.5.1",
    "numpy>=1.26,<3",
    "matplotlib==3.11.2",              # benchmark plots
]

# Console script -> module whose `run()` is its absl main.
CONSOLE_SCRIPTS = {
    "adaftr-train": "pipelines.train",
    "adaftr-demo": "pipelines.demo",
    "adaftr-convert": "pipelines.convert",
    "adaftr-data-service": "pipelines.data_service",
    "adaftr-sweep": "pipelines.sweep",
    "adaftr-benchmark-quality": "pipelines.benchmark_quality",
    "adaftr-benchmark-speed": "pipelines.benchmark_speed",
    "adaftr-teacher-leakage": "pipelines.teacher_leakage",
    "adaftr-teacher-fields": "pipelines.teacher_fields",
    "adaftr-export": "export.export_savedmodel",
    "adaftr-check": "export.check",
    "adaftr-score": "export.score",
}

setup(
    name="adaftr-tf",
    version="0.1.0",
    description="AdaFTR: adaptive task relatedness for joint CTR/CVR estimation "
                "in TensorFlow/Keras",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["adaftr_tf", "adaftr_tf.*", "pipelines",
                                    "pipelines.*", "export", "export.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest==9.2.0", "pytest-xdist==3.8.0",
                             "hypothesis==6.155.2"]},
    entry_points={"console_scripts": [
        f"{script} = {module}:run" for script, module in CONSOLE_SCRIPTS.items()]},
)
