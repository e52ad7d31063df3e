"""The Ray engine of embed_corpus.py: the same parts and results as corpus.embed_local, computed by a pool of
Ray actors, on this machine or on a cluster.

    read_datasource(CorpusParts)  ->  map_batches(Embedder, ActorPoolStrategy(size=workers))  ->  the driver

CorpusParts runs corpus.read_parts on the driver's node (the inputs need not be on the other nodes); each
Embedder actor takes the model from Ray's object store once, when it starts (the driver loaded it; no node
but the driver needs the model files), and embeds parts on one thread with one BLAS thread; the results come
back to the driver in input order, and the driver writes the shards (no shared file system is needed).

Every part travels as one row of list columns (`packed`), and every row is a block of its own: Ray Data hands
a map task whole blocks, so a part is one task, given to whichever actor is free. (Blocks of many rows, or a
part cut into small blocks, leave one actor busy while the other waits.)
"""
import glob
import logging
import math
import os

import pyarrow as pa
import ray
import ray.data
from ray.data import ActorPoolStrategy
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from corpus import embed_local, read_parts

ROOT = os.path.dirname(os.path.abspath(__file__))
# a part per Ray task: at most 1024 texts and 512 KiB, smaller than the local engine's (corpus.PART_ROWS), so
# that the actors share even a small corpus evenly; on real sentences 2.0% more work than one sort of all texts
# (length_batches' measure, as in corpus.py)
RAY_PART_ROWS, RAY_PART_BYTES = 1024, 1 << 19


class CorpusParts(Datasource):
    """corpus.read_parts as one Ray read task on the driver's node."""

    def __init__(self, corpus, skip_shards):
        self.corpus, self.skip_shards = corpus, frozenset(skip_shards)

    def estimate_inmemory_data_size(self):
        return None

    @property
    def supports_distributed_reads(self):
        return False

    def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
        corpus, skip = self.corpus, self.skip_shards
        metadata = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
        return [ReadTask(lambda: map(packed, read_parts(corpus, skip, RAY_PART_ROWS, RAY_PART_BYTES)), metadata)]


def packed(table):
    """The table as one row of list columns."""
    offsets = pa.array([0, table.num_rows], pa.int32())
    return pa.table({name: pa.ListArray.from_arrays(offsets, table[name].combine_chunks())
                     for name in table.column_names})


def unpacked(table):
    """The rows of packed tables, in order."""
    return pa.table({name: table[name].combine_chunks().flatten() for name in table.column_names})


class Embedder:
    """map_batches' callable class: the model comes from the object store once per actor."""

    def __init__(self, model_ref, settings):
        self.model, self.settings = ray.get(model_ref[0]), settings

    def __call__(self, packed_part):
        part = unpacked(packed_part)
        return packed(next(embed_local([part], self.model, self.settings, workers=1)))


def connect(address=None):
    """Join the Ray instance of this process, the cluster at `address` (or RAY_ADDRESS), or start a local
    one; the workers get this repository's modules."""
    if ray.is_initialized():
        return
    modules = sorted(glob.glob(os.path.join(ROOT, "*.py")))
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), runtime_env={"py_modules": modules},
             logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)


def cluster_cpus():
    return ray.cluster_resources().get("CPU", 1)


def cpu_share(workers):
    """CPUs each actor asks for: one, or an equal share of the cluster's when there are more workers than
    CPUs, so that every actor can start (the read task asks for none)."""
    return min(1.0, math.floor(cluster_cpus() / workers * 100) / 100)


def embed_ray(corpus, skip_shards, model, settings, workers):
    """Result tables (row, key, n_tokens, embedding) for the parts of the shards not in skip_shards, in order."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the driver holds one shard at a time
    context.enable_progress_bars = False  # embed_corpus shows its own bar
    context.print_on_execution_start = False
    context.target_max_block_size = 1  # a block per row: a block per part
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled"
    share = cpu_share(workers)
    parts = ray.data.read_datasource(CorpusParts(corpus, skip_shards), num_cpus=0, override_num_blocks=1)
    results = parts.map_batches(Embedder, fn_constructor_kwargs={
        "model_ref": [ray.put(model)], "settings": settings},
        batch_size=1, batch_format="pyarrow", compute=ActorPoolStrategy(size=workers), num_cpus=share)
    for block in results.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield unpacked(block)
