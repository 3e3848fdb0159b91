"""Instructor tools, kept apart from what students import: grading, the student-notebook builder, Colab set-up.

    python -m labs_utils.grade SUBMISSIONS ...        # labs_utils.instructor.grading
    python -m labs_utils.notebooks build|check       # labs_utils.instructor.notebooks
"""
import sys

# nbformat and nbclient import jsonschema, which builds a parser for IRIs (a Lark grammar, 1.5 s of CPU) at import
# whenever the optional package rfc3987_syntax is installed, as jupyterlab's dependencies install it. No notebook
# schema checks an IRI, and every grader process (each worker, the judge, the command line) paid for it. The tools'
# processes import jsonschema without that parser; one that imported jsonschema already keeps what it has.
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # None in sys.modules: an import of it raises ImportError
