"""The training defaults of ``dcn train`` and ``dcn compare``, in one place.

Chosen on MovieLens 100K, on a validation split carved out of train (10% of
the training rows, seeds 0 and 1), never on the test split: batch 1024 at
Adam 1e-3 for 20 epochs, with an L2 penalty of 3e-3 on the embedding tables
and dropout 0.3 after each deep layer. Mean validation RMSE of the stacked DCN
went from 0.9458 under the tutorial's protocol (Adam 0.01, batch 8192, 8
epochs, no penalty) to 0.9250 (``benchmarks/tune_defaults.py``); the README gives
the test-split figures.
Plain constants, so the CLI can show them without importing anything heavy.
"""

EPOCHS = 20
BATCH_SIZE = 1024
LR = 0.001
OPTIMIZER = "adam"
WEIGHT_DECAY = 0.0
EMBEDDING_DIM = 32
EMBEDDING_L2 = 0.003
DROPOUT = 0.3
DEEP_LAYERS = "192,192"
