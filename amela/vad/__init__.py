"""VAD stage: TEN-VAD over whole corpora (speech segments, statistics, split points, segment manifests).

Importing this package is light: the native library is loaded in the worker's setup(), never at import.
"""
