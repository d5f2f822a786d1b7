import os

SEP = os.path.sep
here = os.getcwd()

config = dict(
    sign_messages=True,
    validate_signatures=True,
    ssldir="/etc/pki/fedmsg/",
    ca_cert_location="/etc/pki/fedmsg/ca.crt",
    crl_location="/etc/pki/fedmsg/crl.pem",
    crl_cache="/var/run/fedmsg/crl.pem",
    crl_cache_expiry=10,
    certnames={
        "bodhi.app01": "bodhi-app01.example.org",
        "shell.app01": "shell-app01.example.org",
    },
    routing_nitpicky=True,
    routing_policy={
        "org.fedoraproject.dev.bodhi.update.comment": [
            "bodhi-app01.example.org",
            "bodhi-app02.example.org",
        ],
        "org.fedoraproject.dev.logger.log": ["shell-app01.example.org"],
    },
)
