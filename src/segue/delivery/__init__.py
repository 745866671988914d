"""Delivery: the queue's workers, retry policy, the partner webhook contract, egress."""
