"""The benchmarks' helpers. ``python bench/bench_X.py`` puts ``bench/`` first on the path, so they import as
``benchlib.*``; the tests find them through pytest's ``pythonpath``. They import the package's code (its dominance rule,
its adapters' fitting, its tuning pieces) and add only what the benchmarks compare against it."""
