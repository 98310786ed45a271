"""``python -m facegen.models.face_regressor ...``: see :mod:`facegen.models.face_regressor.cli`."""
from facegen.models.face_regressor.cli import main

if __name__ == "__main__":
    main()
