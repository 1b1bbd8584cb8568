"""The train layer: from prepared data and a model config to a trained checkpoint.

``pipeline`` encodes rows into batches, ``engine`` runs the training loop,
``hooks`` are its progress, checkpoint and early-stop callbacks,
``distribute`` picks a ``tf.distribute`` strategy, ``launcher`` starts local
workers, ``run`` is ``dcn train`` as a function and ``compare`` trains
several models over several seeds.

Imports data and model, never inspect or commands.
"""
