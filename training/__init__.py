"""Training: import chat exports, build samples, fine-tune, evaluate, blend and publish adapters."""
