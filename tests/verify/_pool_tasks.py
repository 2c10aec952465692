"""Module-level task functions for the pool tests (spawned workers import them by reference)."""

import os
import time


def add(a, b):
    return a + b


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def boom(message):
    raise ValueError(message)


def die():
    os._exit(3)


def hog_memory(megabytes):
    block = bytearray(megabytes * 2**20)
    return len(block)


def unpicklable():
    return lambda: None
