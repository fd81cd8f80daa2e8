"""GGUF models: the catalog, header metadata, the memory guard and the llama.cpp engine."""
