# Services and their publishing addresses, built the way Fedora's files build them.
hosts = ["app01", "app02"]
config = dict(
    endpoints={
        "bodhi.%s" % h: ["tcp://%s.example.org:%d" % (h, port) for port in (3000, 3001)]
        for h in hosts
    },
)
config["endpoints"]["fedmsg-gateway"] = ["tcp://hub.example.org:9940"]
# The same address twice is subscribed to once.
config["endpoints"]["duplicate"] = ["tcp://hub.example.org:9940"]
