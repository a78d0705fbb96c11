"""Measurements the docs cite that are not part of training a model (each module says which figures it gives)."""
