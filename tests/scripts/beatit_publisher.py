"""Drives the real `beatit` package (PyPI) over RabbitMQ with pika, for
tests/e2e/amqp.rs: publishes the beats of one process on the topic exchange.

    python3 beatit_publisher.py AMQP_URL EXCHANGE PROCESS

Reads commands from stdin, one a line, and answers `ok` once the broker has
confirmed the message:

    start WARMUP | beat PERIOD | degraded PERIOD | stop | raw BODY
"""

import sys

import beatit
import pika


class PikaPublisher:
    """beatit's publisher: `publish(*, subject, payload)`, with confirms."""

    def __init__(self, url, exchange):
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        self.exchange = exchange

    def publish(self, *, subject, payload):
        if isinstance(subject, bytes):
            subject = subject.decode()
        self.channel.basic_publish(
            exchange=self.exchange, routing_key=subject, body=payload, mandatory=False
        )


def main():
    url, exchange, process = sys.argv[1:4]
    publisher = PikaPublisher(url, exchange)
    heart = beatit.Heart(process, publisher=publisher, subject_as_string=True)
    for line in sys.stdin:
        words = line.split(maxsplit=1)
        if not words:
            continue
        command, arg = words[0], (words[1].strip() if len(words) > 1 else "")
        if command == "start":
            heart.start(warmup=int(arg))
        elif command == "beat":
            heart.beat(period=int(arg))
        elif command == "degraded":
            heart.degraded(period=int(arg))
        elif command == "stop":
            heart.stop()
        elif command == "raw":
            publisher.publish(subject=f"heartbeat.{process}", payload=arg.encode())
        else:
            print(f"unknown command {command!r}", flush=True)
            continue
        print("ok", flush=True)
    publisher.connection.close()


if __name__ == "__main__":
    main()
