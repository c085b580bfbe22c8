"""course_lib: the library behind the course book.

Chapters import small, readable pieces from here instead of pasting long code:

- :mod:`course_lib.runtime`  device, seeding, profiles, environment report
- :mod:`course_lib.data`     offline and downloadable datasets, loaders, augmentation
- :mod:`course_lib.train`    the :class:`~course_lib.train.Trainer` loop and its callbacks
- :mod:`course_lib.plotting` learning curves and image grids
"""

from course_lib.runtime import get_device, profile, report, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "profile", "report", "seed_everything", "__version__"]
