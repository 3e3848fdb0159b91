"""Instructor tools, kept apart from what students import: grading, the student-notebook builder, Colab set-up.

    python -m labs_utils.grade SUBMISSIONS ...        # labs_utils.instructor.grading
    python -m labs_utils.notebooks build|check       # labs_utils.instructor.notebooks
"""
