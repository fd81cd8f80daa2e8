"""Adapter learning: LoRA on the served (quantized) GGUF model, exported as a GGUF adapter."""
import os

# torch's OpenMP threads spin while waiting; on a busy 2-4 core board (the server, a
# browser, the OS) spinning threads starve each other: measured here, a forward pass went
# from 1.1 s to 16 s. Passive waiting must be chosen before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
