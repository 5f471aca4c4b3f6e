"""adaftr-tf: joint CTR/CVR estimation with adaptive task relatedness (AdaFTR)."""

from setuptools import find_packages, setup

# Pinned, tested set (TensorFlow 2.21 + Keras 2 through tf-keras; TFRS needs it).
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-recommenders==0.7.7",
    "tensorflow-datasets==4.9.10",
    "tensorboard==2.21.0",
    "tensorflow-serving-api==2.21.0",
    "absl-py==2.5.1",
    "numpy>=1.26,<3",
    "matplotlib==3.11.2",  # benchmark plots
]

setup(
    name="adaftr-tf",
    version="0.1.0",
    description="AdaFTR: adaptive task relatedness for joint CTR/CVR estimation "
                "in TensorFlow/Keras",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["adaftr_tf", "adaftr_tf.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest==9.2.0", "hypothesis==6.155.2"]},
)
