"""Helpers that are not model components (tiny offline test models, ...)."""
