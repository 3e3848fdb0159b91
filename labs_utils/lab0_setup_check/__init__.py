"""Lab 0 — Set-up check: nothing to compute beyond the core; the wing only tells the grader the lab exists."""
