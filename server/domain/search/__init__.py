"""Hyperparameter search: one module per algorithm, found by name through
`registry`. Algorithms are designers in Vizier's sense: they keep their state
between calls, learn from `update(completed, active)` and answer
`suggest(count)`; nothing here knows about gRPC or storage."""
