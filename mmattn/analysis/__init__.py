"""Analysis helpers behind ``tools/analysis_tools`` (FLOPs, benchmarks, scaling, maps, zoo).

Submodules import heavy optional dependencies (mmdet, matplotlib) lazily, inside functions.
"""
