"""LoRA supervised fine-tuning: the trainer loop, the dataset encoding with loss masking on the owner's
turns (``dataset``), packed-batch attention, model loading, presets, checkpoints/callbacks and charts."""
