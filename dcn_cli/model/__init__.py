"""The model layer: configs, Keras layers, the model factory and the files they live in.

``config`` holds :class:`~dcn_cli.model.config.ModelConfig` (plain data),
``layers`` the cross layers, ``factory`` builds a Keras model from a config,
``optimizers`` dcn's optimizers, ``checkpoint`` the checkpoint directory's
format and ``export`` the SavedModel for serving.

Imports the data layer (a checkpoint stores its data's schema), never train,
inspect or commands.
"""
