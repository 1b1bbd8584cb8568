"""dcn: train and inspect Deep & Cross Network models from the command line."""

import os

__version__ = "0.3.0"

# TensorFlow is imported lazily, by the commands that need it. When it is, keep
# its C++ start-up chatter (oneDNN, CUDA probing) off the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not os.environ.get("KERAS_BACKEND"):  # unset or empty: Keras would read ~/.keras instead
    os.environ["KERAS_BACKEND"] = "tensorflow"
