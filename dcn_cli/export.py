"""``dcn export``: a checkpoint as a TensorFlow SavedModel for serving.

The SavedModel's ``serving_default`` signature takes one tensor of shape
``(batch,)`` per feature, the raw values as the training data held them
(``string``, ``int64`` or ``float32``), and returns ``prediction`` of shape
``(batch, 1)``: the predicted value of a regression model, the probability of
label 1 of a binary one, equal to what ``dcn predict`` writes. The lookups,
hashing and normalisation are inside, so TF Serving, or TensorFlow in any
language, loads it without dcn or Keras.

A feature whose name TensorFlow would not take as an input's name (spaces,
``/``, letters beyond ASCII) takes its plain form plus a short hash, as inside
the model (:func:`dcn_cli.model.layer_name`); :func:`export` returns the map.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dcn_cli import backend, checkpoint
from dcn_cli.errors import DcnError
from dcn_cli.fileio import normal_mode

SIGNATURE = "serving_default"
OUTPUT = "prediction"
_TF_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-]*")


@dataclass
class ExportResult:
    out: Path
    inputs: dict[str, str]  # feature name -> the signature's input name
    dtypes: dict[str, str]  # feature name -> dtype


def signature_name(feature: str) -> str:
    """The serving signature's input name for ``feature``."""
    from dcn_cli.model import layer_name

    return feature if _TF_NAME.fullmatch(feature) else layer_name(feature)


def export(ckpt: str | Path, out: str | Path, force: bool = False) -> ExportResult:
    """Write the checkpoint's model to ``out`` as a SavedModel (see the module's doc).

    ``out`` must not exist, or be empty; ``force`` replaces an earlier export
    there (a directory holding ``saved_model.pb``), never other files. The
    SavedModel is written beside it and renamed into place, so ``out`` is
    whole or absent.
    """
    given, out = out, Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise DcnError(f"{given}: exists and is not a directory")
    if Path.cwd().is_relative_to(out) or Path(os.path.abspath(ckpt)).is_relative_to(out):
        raise DcnError(
            f"{given}: holds the working directory or the checkpoint; choose another --out"
        )
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DcnError(
                f"{given}: is not empty; replace it with --force, or choose another --out"
            )
        if not (out / "saved_model.pb").exists():
            raise DcnError(
                f"{given}: holds files but no SavedModel; --force replaces only an earlier "
                "export, so choose another --out"
            )
    keras = backend.load()
    import tensorflow as tf

    record = checkpoint.load_record(ckpt)
    config = checkpoint.model_config(record, ckpt)
    model = checkpoint.load_model(ckpt, config)
    names = {f.name: signature_name(f.name) for f in config.features}
    if len(set(names.values())) != len(names):
        raise DcnError(f"{ckpt}: two features share the serving input name; rename a column")
    specs = {
        names[f.name]: tf.TensorSpec([None], tf.dtypes.as_dtype(f.dtype), name=names[f.name])
        for f in config.features
    }

    def serve(inputs):
        values = {f.name: inputs[names[f.name]] for f in config.features}
        return {OUTPUT: model(values, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=[specs])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        archive.write_out(str(staging), verbose=False)
        _normal_modes(staging)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(Path(given), names, {f.name: f.dtype for f in config.features})


def _normal_modes(directory: Path) -> None:
    """What mkdtemp made 0700 readable by others, as ``mkdir`` would."""
    for path in [directory, *directory.rglob("*")]:
        os.chmod(path, normal_mode(path))
