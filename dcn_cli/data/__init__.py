"""The data layer: tables from files, splits, vocabularies and statistics.

Readers (``delimited``, ``parquet``, ``movielens``) turn a user's files into a
:class:`~dcn_cli.data.table.Table` described by a
:class:`~dcn_cli.data.schema.Schema`; ``sources`` picks the reader for what
``--data`` names; ``prepare`` learns each feature's encoding
(:class:`~dcn_cli.data.features.FeatureSpec`) from the training split, and
``cache`` keeps what it learnt. ``synthetic`` and ``generate`` make datasets,
``truth`` scores a model against a generated dataset's true probabilities.

Imports only the package's top-level helpers: nothing here knows of models.
"""
