"""Synthetic faces for the demo and the tests: drawing, rendering, the dataset and its archive."""
