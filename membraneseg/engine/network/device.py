"""Which device the network runs on, said plainly in every run's log (a silent fall-back to the CPU is a known
complaint of GPU users)."""
import os


def describe_device():
    """The device TensorFlow will run on: its GPUs, else the CPU and its thread count."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return "GPU (%s)" % ", ".join(g.name for g in gpus)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return "CPU (%s threads; no GPU visible to TensorFlow)" % threads
