"""Adversarial submissions and the shared class run used by the grading tests."""
