"""nbgrader configuration for this repository (used by `nbgrader ...` and by `course-grade`).

Layout: source notebooks (with solutions and hidden tests) in solutions/<assignment>/,
student versions generated into exercises/<assignment>/ by `course-grade release`.
`course-grade autograde` grades in throwaway course directories and only reads the settings below.
"""

import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

_ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "dl-course"
c.CourseDirectory.root = _ROOT
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# a plain `nbgrader` run keeps its gradebook and student folders out of the tracked tree
c.CourseDirectory.submitted_directory = "grading-out/nbgrader/submitted"
c.CourseDirectory.autograded_directory = "grading-out/nbgrader/autograded"
c.CourseDirectory.feedback_directory = "grading-out/nbgrader/feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_ROOT, "grading-out", "gradebook.db")
os.makedirs(os.path.join(_ROOT, "grading-out"), exist_ok=True)

# student versions: "YOUR CODE HERE" + NotImplementedError in answer cells
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# grading: a correct answer that prints a warning to stderr keeps its points
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"[\s\S]*"
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
c.LimitOutput.max_lines = 500
c.LimitOutput.max_traceback = 60
