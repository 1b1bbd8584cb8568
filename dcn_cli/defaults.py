"""The training defaults of ``dcn train`` and ``dcn compare``, in one place.

Chosen on MovieLens 100K with a validation split carved out of train (see the
README's "dcn's own defaults"); the tutorial's protocol is Adam 0.01, batch
8192, 8 epochs. Plain constants, so the CLI can show them without importing
anything heavy.
"""

EPOCHS = 8
BATCH_SIZE = 8192
LR = 0.01
OPTIMIZER = "adam"
WEIGHT_DECAY = 0.0
EMBEDDING_DIM = 32
EMBEDDING_L2 = 0.0
DROPOUT = 0.0
DEEP_LAYERS = "192,192"
