"""Test-wide settings for every tier: quiet, CPU only, and a private build cache for the session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Builds cache their expensive stages. The tests (and the CLI processes they start, which inherit this) use a cache
# of their own for the session, never the user's ~/.cache/restnet-compile or a $RESTNET_COMPILE_CACHE of theirs.
SESSION_CACHE = tempfile.mkdtemp(prefix="restnet-test-cache-")
os.environ["RESTNET_COMPILE_CACHE"] = SESSION_CACHE
atexit.register(shutil.rmtree, SESSION_CACHE, True)

# Property tests draw 50 examples each by default (the unit tier stays under a minute); `make test` passes
# --hypothesis-profile=thorough for 200.
settings.register_profile("quick", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile("quick")
