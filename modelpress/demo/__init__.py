"""The built-in example: a small digit classifier trained on real data (scikit-learn's digits)."""
