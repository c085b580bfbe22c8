"""Instructor tooling around nbgrader: `course-grade release | autograde | validate` (see README.md)."""
