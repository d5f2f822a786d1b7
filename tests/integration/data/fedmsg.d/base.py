# A fedmsg.d/ directory in the style of fedmsg's packaged one, for
# `switchyard import-fedmsg-config` (tests/integration/test_import_fedmsg.py).
# fedmsg executes every *.py file here in name order and merges their `config` dicts.
import os

config = dict(
    topic_prefix="org.fedoraproject",
    environment="dev",
    high_water_mark=0,
    io_threads=1,
    zmq_enabled=True,
    # Overridden by ssl.py (a later file wins).
    routing_nitpicky=False,
    endpoints={
        # A single string is accepted and "listified".
        "relay_outbound": "tcp://127.0.0.1:4001",
    },
    relay_inbound=["tcp://127.0.0.1:2003"],
)
