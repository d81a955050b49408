"""Where training runs: TensorFlow's own distribution strategies, mixed precision and XLA options.

- ``default``: one device, the GPU when there is one, else the CPU.
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every GPU of this machine (or every logical
  CPU device, see ``--cpu-devices``), synchronous data parallelism.
- ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines that
  ``TF_CONFIG`` lists; waiting for the other workers is bounded by ``worker_timeout`` seconds
  (:func:`wait_for_workers`).

The models' ``train_step`` scales each replica's batch-mean loss so that the summed gradients are the
global-batch mean, and their metrics are summed across replicas (see ``keras_ae.models.base``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time

from keras_ae.errors import ConfigError

log = logging.getLogger("keras_ae")
STRATEGIES = ("default", "mirrored", "multi_worker")
BANNER = b"keras_ae worker\n"  # what a worker's own listener says to a peer before TensorFlow takes its port
# An HTTP/2 client preface and an empty SETTINGS frame: a TensorFlow (gRPC) server answers with a SETTINGS frame.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def split_cpu(devices: int) -> None:
    """Split the CPU into ``devices`` logical devices (before TensorFlow first uses it), to run the
    mirrored strategy without GPUs."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:
        raise ConfigError("--cpu-devices must be set before TensorFlow starts; it cannot change in a "
                          "running process") from None


def read_tf_config(text: str | None) -> dict:
    """The ``TF_CONFIG`` of a multi-worker run, checked: a cluster of host:port workers and this task."""
    if not text:
        raise ConfigError("--strategy multi_worker needs TF_CONFIG, e.g. TF_CONFIG='{\"cluster\": {\"worker\": "
                          "[\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}'")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError("TF_CONFIG needs a 'cluster' object and a 'task' object")
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(_is_address(a) for a in addresses):
            raise ConfigError(f"TF_CONFIG cluster.{role} must be a list of 'host:port' strings, got {addresses!r:.200}")
    everyone = [address for addresses in cluster.values() for address in addresses]
    twice = sorted({address for address in everyone if everyone.count(address) > 1})
    if twice:
        raise ConfigError(f"TF_CONFIG lists {', '.join(twice)} for more than one task; each needs its own host:port")
    role, index = task.get("type"), task.get("index")
    if role not in cluster:
        raise ConfigError(f"TF_CONFIG task.type {role!r} is not a role of the cluster ({', '.join(cluster)})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[role]):
        raise ConfigError(f"TF_CONFIG task.index must be an integer in [0, {len(cluster[role]) - 1}] for "
                          f"{role!r}, got {index!r}")
    return config


def _is_address(text) -> bool:
    host, _, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    return bool(host) and port.isascii() and port.isdigit() and 0 < int(port) < 65536


def is_chief(config: dict) -> bool:
    """Whether this task writes the run folder itself (the chief, or worker 0 when there is no chief)."""
    task, cluster = config["task"], config["cluster"]
    return task["type"] == "chief" or (task["type"] == "worker" and task["index"] == 0 and "chief" not in cluster)


def make_strategy(name: str, worker_timeout: float = 60.0):
    """The ``tf.distribute`` strategy called ``name`` (see the module docstring)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if not (isinstance(worker_timeout, (int, float)) and math.isfinite(worker_timeout) and worker_timeout > 0):
        raise ConfigError(f"--worker-timeout must be a finite number of seconds > 0, got {worker_timeout!r}")
    config = read_tf_config(os.environ.get("TF_CONFIG"))
    log.info("multi-worker: task %s of %s, waiting up to %g s for the cluster", config["task"],
             config["cluster"], worker_timeout)
    wait_for_workers(config, worker_timeout)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=worker_timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def worker_shard(strategy) -> tuple[int, int] | None:
    """(workers, this worker's index) under MultiWorkerMirroredStrategy, else None.

    Each worker's pipeline then reads its own share of the files (``DataSplits.pipeline(shard=...)``),
    instead of every worker decoding every image and dropping most (tf.data's automatic sharding of a
    file list); the batch size stays the global one, split across the replicas of all workers.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    tasks = [(role, i) for role in ("chief", "worker") for i in range(len(cluster.get(role, [])))]
    return len(tasks), tasks.index((resolver.task_type, resolver.task_id))


def wait_for_workers(config: dict, seconds: float) -> None:
    """Return once every other task of the cluster answers on its port as a worker; ConfigError after ``seconds``.

    TensorFlow itself waits for the cluster with no limit, inside native code that ignores SIGTERM and
    Ctrl-C. So each worker first listens on its own TF_CONFIG port, greeting each peer with
    :data:`BANNER`, and checks that every peer's port answers as a worker: with the banner, or (once the
    peer has moved on) as TensorFlow's gRPC server does; a port held by anything else does not count.
    Then it frees its port for TensorFlow.
    """
    task = config["task"]
    addresses = [a for role, members in config["cluster"].items() for a in members]
    own = config["cluster"][task["type"]][task["index"]]
    peers = [a for a in addresses if a != own]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", int(own.rpartition(":")[2])))
        listener.listen()
    except OSError as error:
        raise ConfigError(f"cannot listen on {own}, this task's address in TF_CONFIG: {error}") from None
    listener.settimeout(0.2)
    greeting = threading.Thread(target=_greet, args=(listener,), daemon=True)
    greeting.start()
    deadline = time.monotonic() + seconds
    try:
        while peers:
            if _answers_as_worker(peers[0]):
                peers.pop(0)
            elif time.monotonic() > deadline:
                raise ConfigError(f"multi-worker cluster not reachable within {seconds:g} s: no worker answers at "
                                  f"{', '.join(peers)}; start every worker with the same TF_CONFIG, or raise "
                                  "--worker-timeout")
            else:
                time.sleep(0.2)
    finally:
        listener.close()
        greeting.join()


def _greet(listener: socket.socket) -> None:
    """Say :data:`BANNER` to every peer that connects, until the listener is closed."""
    while True:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:  # closed
            return
        with connection:
            try:
                connection.sendall(BANNER)
            except OSError:
                pass


def _answers_as_worker(address: str) -> bool:
    """Whether ``address`` answers as a keras_ae worker's listener or a gRPC server, within a second."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0) as connection:
            connection.sendall(_HTTP2_HELLO)
            reply = b""
            while len(reply) < len(BANNER):
                part = connection.recv(len(BANNER) - len(reply))
                if not part:
                    break
                reply += part
    except OSError:  # refused, reset, or silent for a second
        return False
    return reply == BANNER or (len(reply) >= 4 and reply[3] == 4)  # byte 3 of an HTTP/2 frame: its type (SETTINGS)


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 dot products natively (x86 AVX512-BF16 or AMX-BF16 flags)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_mixed_precision() -> str:
    """Set the fastest mixed-precision policy this machine has, and return its name.

    A GPU: ``mixed_float16`` (Keras adds loss scaling). A CPU with native bfloat16 (AVX512-BF16,
    AMX): ``mixed_bfloat16`` (its speed-up is in BENCHMARKS.md).
    Otherwise a warning and ``float32``. Variables and losses stay float32 under every policy.
    """
    import keras
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        policy = "mixed_float16"
    elif cpu_has_bfloat16():
        policy = "mixed_bfloat16"
    else:
        log.warning("warning: --mixed-precision needs a GPU or a CPU with bfloat16 (AVX512-BF16, AMX) and this "
                    "machine has neither; training in float32")
        return "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy
