"""A job that brings its own code: `computeplane job submit --code examples/code-project -- python train.py`.

Every node starts in its own copy of this directory, so the project's modules import as they do on a laptop.
"""

import os

from mylib.greet import greeting

rank, count = os.environ.get("COMPUTEPLANE_NODE_RANK", "0"), os.environ.get("COMPUTEPLANE_NODE_COUNT", "1")
print(greeting(f"node {rank} of {count}"))
