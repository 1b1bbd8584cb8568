"""``dcn export``: a checkpoint as a TensorFlow SavedModel for serving.

The SavedModel's ``serving_default`` signature takes one tensor of shape
``(batch,)`` per feature, the raw values as the training data held them
(``string``, ``int64`` or ``float32``), and returns ``prediction`` of shape
``(batch, 1)``: the predicted value of a regression model, the probability of
label 1 of a binary one, equal to what ``dcn predict`` writes. The lookups,
hashing and normalisation are inside, so TF Serving, or TensorFlow in any
language, loads it without dcn or Keras.

A feature whose name TensorFlow would change as an input's name (spaces,
``/``, ``.``, letters beyond ASCII, a leading ``_`` or digit) takes its plain
form plus a short hash (:func:`signature_names`); :func:`export` returns the map.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from dcn_cli import backend
from dcn_cli.errors import DcnError
from dcn_cli.fileio import normal_mode, remove_leftovers, staging_dir
from dcn_cli.model import checkpoint

SIGNATURE = "serving_default"
# What a SavedModel directory holds; --force replaces these and keeps anything else.
SAVED_MODEL = ("saved_model.pb", "variables", "assets", "fingerprint.pb")
OUTPUT = "prediction"
# What a tf.function parameter and a graph op may both be named, unchanged by TensorFlow.
_TF_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass
class ExportResult:
    out: Path
    inputs: dict[str, str]  # feature name -> the signature's input name
    dtypes: dict[str, str]  # feature name -> dtype


def signature_names(features: list[str]) -> dict[str, str]:
    """The serving signature's input name of each feature: unique, and valid for TensorFlow.

    A name TensorFlow takes as it is (``[A-Za-z][A-Za-z0-9_]*``) stays; any
    other becomes its plain characters (others as ``_``), from the first
    letter on, plus a hash of the whole name. Should two still meet (or differ
    only in case, which TensorFlow does not tell apart), the later one takes
    a number.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()  # lower case: TensorFlow's op names are unique regardless of case
    for feature in features:
        name = feature if _TF_NAME.fullmatch(feature) else _plain(feature)
        base, n = name, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}_{n}"
        names[feature] = name
        taken.add(name.lower())
    return names


def _plain(feature: str) -> str:
    text = re.sub(r"^[^A-Za-z]+", "", re.sub(r"[^A-Za-z0-9_]", "_", feature))
    digest = hashlib.sha1(feature.encode("utf-8")).hexdigest()[:8]
    return f"{text}_{digest}" if text else f"f_{digest}"


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
    record = checkpoint.load_record(ckpt)  # a wrong path fails before TensorFlow loads
    config = checkpoint.model_config(record, ckpt)
    keras = backend.load()
    import tensorflow as tf

    model = checkpoint.load_model(ckpt, config)
    names = signature_names([f.name for f in config.features])
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
    remove_leftovers(out)  # what a killed export left
    staging = staging_dir(out)
    try:
        archive.write_out(str(staging), verbose=False)
        _normal_modes(staging)
        if out.exists():
            _replace_export(staging, out)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(Path(given), names, {f.name: f.dtype for f in config.features})


def _replace_export(staging: Path, out: Path) -> None:
    """Put the new SavedModel's entries in ``out`` in place of the old ones; keep the rest.

    The old entries move aside first and are deleted once the new ones are in;
    should a move fail, the old export is put back.
    """
    old = staging_dir(out)
    moved, placed = [], []
    try:
        for name in SAVED_MODEL:
            if (out / name).exists():
                os.replace(out / name, old / name)
                moved.append(name)
        for entry in staging.iterdir():
            os.replace(entry, out / entry.name)
            placed.append(entry.name)
    except BaseException:
        for name in placed:
            _remove(out / name)
        for name in moved:
            os.replace(old / name, out / name)
        raise  # (should putting one back fail, the old export stays in ``old``)
    shutil.rmtree(old, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _normal_modes(directory: Path) -> None:
    """What mkdtemp made 0700 readable by others, as ``mkdir`` would."""
    for path in [directory, *directory.rglob("*")]:
        os.chmod(path, normal_mode(path))
