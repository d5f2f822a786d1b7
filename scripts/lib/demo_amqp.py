#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""AMQP look-ups of scripts/demo through python3-pika (rabbitmqctl starts an Erlang VM per
call, which takes seconds on a busy machine).

    demo_amqp.py wait URL QUEUE [EXCHANGE]   until QUEUE has a consumer and EXCHANGE exists (60 s)
    demo_amqp.py delete URL QUEUE            delete QUEUE"""
import sys
import time

import pika


def main(argv):
    cmd, url, queue = argv[1], argv[2], argv[3]
    conn = pika.BlockingConnection(pika.URLParameters(url))
    if cmd == "delete":
        conn.channel().queue_delete(queue)
        conn.close()
        return 0
    exchange = argv[4] if len(argv) > 4 else None
    deadline = time.monotonic() + 60
    while True:
        ch = conn.channel()
        try:
            # passive: only look; a missing queue or exchange closes the channel (404).
            if ch.queue_declare(queue, passive=True).method.consumer_count >= 1:
                if exchange is not None:
                    ch.exchange_declare(exchange, passive=True)
                conn.close()
                return 0
            ch.close()
        except pika.exceptions.ChannelClosedByBroker:
            pass
        if time.monotonic() > deadline:
            what = f"a consumer on queue {queue}" + (f" and exchange {exchange}" if exchange else "")
            print(f"demo: timed out after 60 s waiting for {what}", file=sys.stderr)
            return 1
        conn.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
