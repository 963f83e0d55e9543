"""The learned encoders and their training.

- ``encoders``: the VGG-style audio and sheet CNNs;
- ``pretrain``: their audio–sheet pre-training;
- ``labels``: per-patch / per-window pitch labels for the pre-training's auxiliary loss;
- ``metrics``: the retrieval figures that early-stop the pre-training;
- ``lyrics``: the skip-gram lyrics models (syllable ⊕ word vectors);
- ``onset_net``: the learned onset detector.
"""
