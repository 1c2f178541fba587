"""The pure domain: models and policies as functions of (state, now). No I/O, no Azure imports."""
