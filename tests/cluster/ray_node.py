"""``ray start`` for a test cluster on this one machine, bound to 127.0.0.1 only.

Ray takes a node's loopback address for a mistake (a cluster normally spans machines) and swaps in the
machine's network address; the tests want nothing reachable from outside. Started with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in its environment, every Ray process of the node takes
127.0.0.1 for its address, as on a one-machine Ray; this command itself still allows joining a
cluster (``--address``) and keeps ``--node-ip-address=127.0.0.1`` as given. Everything else is Ray's
own command line: ``python ray_node.py start --head ...``.
"""

import sys

import ray._private.ray_constants as ray_constants
import ray._private.services as services

ray_constants.ENABLE_RAY_CLUSTER = True
services.resolve_ip_for_localhost = lambda host: host

from ray.scripts.scripts import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "ray"
    sys.exit(main())
