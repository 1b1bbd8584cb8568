"""Import TensorFlow and Keras on demand, without their start-up chatter.

TensorFlow 2.21 writes several C++ log lines to stderr when it loads (oneDNN,
CUDA probing on a machine without a GPU) whatever ``TF_CPP_MIN_LOG_LEVEL``
says. Commands call :func:`load` before they touch Keras so that the user
sees only ``dcn``'s own output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys


@contextlib.contextmanager
def quiet_stderr():
    """Standard error closed at the file descriptor: what C++ code writes there too."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load():
    """Import TensorFlow and Keras quietly, once; return the ``keras`` module."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        import keras

        return keras
    with quiet_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # probes CUDA now, while stderr is muted
        tf.get_logger().setLevel("ERROR")  # its Python warnings are not the user's business
        logging.getLogger("absl").setLevel(logging.ERROR)  # nor are tensorflow-datasets'
        import keras
    return keras
