"""Helpers shared by tests of several subjects, each named for what it returns."""
