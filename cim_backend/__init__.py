"""Simulated NVCIM accelerator with write-verify and the Tiny Shared Block."""
