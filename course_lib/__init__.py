"""course_lib: the library behind the course book.

Chapters import small, readable pieces from here instead of pasting long code:

- :mod:`course_lib.runtime`  device, seeding, profiles, environment report
- :mod:`course_lib.data`     offline and downloadable datasets, splits and folds, loaders, augmentation
- :mod:`course_lib.train`    the :class:`~course_lib.train.Trainer` loop and its callbacks
- :mod:`course_lib.plotting` learning curves, image grids, confusion matrices, reliability diagrams
- :mod:`course_lib.models`   MLP, LeNet-5, VGG, AlexNet, GoogLeNet, ResNets, Wide ResNets, blocks
- :mod:`course_lib.layers`   from-scratch conv, pooling, dropout and normalisation layers
- :mod:`course_lib.metrics`  classification metrics, ROC/PR curves, calibration, Wilcoxon test
- :mod:`course_lib.regularisers` penalties, label smoothing, mixup/CutMix, DropPath, MC dropout
- :mod:`course_lib.optim`    LR schedules, LR range test, from-scratch SGD/Adam/AdamW
- :mod:`course_lib.grading`  the ``course-grade`` autograding pipeline around nbgrader
"""

from course_lib.runtime import get_device, profile, report, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "profile", "report", "seed_everything", "__version__"]
