# A local override, last in name order: its keys win, and nested dicts are merged key by
# key (the routing_policy entry is added to the ones of ssl.py, and this one topic is
# replaced).
config = {
    "routing_policy": {
        "org.fedoraproject.dev.logger.log": ["shell-app02.example.org"],
        "org.fedoraproject.dev.demo.test": ["good.example.org"],
    },
    "crl_location": "/srv/fedmsg/crl.pem",
}
