"""Adapter learning: LoRA on the served (quantized) GGUF model, exported as a GGUF adapter."""
