"""Evaluation: clinical ground truth, referees, multi-turn with a simulated patient, rubrics."""
