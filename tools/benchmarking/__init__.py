"""The sections of ``tools/benchmark.py``: the models and inputs (:mod:`.models`), one module per section
(:mod:`.decode`, :mod:`.infer`, :mod:`.train`), the timing and peak memory of a row in a child process
(:mod:`.measure`) and the report (:mod:`.report`)."""
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
