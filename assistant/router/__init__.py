"""Per-request decisions: which strategy, model, passages and backend serve a request."""
