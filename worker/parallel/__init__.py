"""Tensor-parallel replicas: one model over several devices (Megatron-style), rank 0 serving.

Pieces (docs/parallel.md has the design, the measurements and the cost model):

- `group.py`     init_tp_group(rank, size, init_method, device): the compute group (NCCL on CUDA,
                 gloo on CPU) and the control group (gloo) of one replica
- `loading.py`   load_shard(dir, rank, size, reduce): a rank's slices, read with safetensors'
                 get_slice, for both checkpoint formats
- `engine.py`    ShardedEngine (every rank) and TensorParallelEngine (rank 0: announces each step)
- `leader.py`    rank 0's command channel (one lock, heartbeat while idle)
- `follower.py`  run_follower(...): a rank > 0, until rank 0 says stop or is lost
- `rank0.py`     start_rank0(...) and build_tp_worker(...): rank 0's shard, channel and Worker
- `local.py`     spawn_followers / join_followers: the other ranks as local processes

From Ray (one actor per rank, all in one STRICT_PACK placement group; each actor sees its own GPU
as "cuda"). Rank 0 picks the rendezvous address (its node's IP and a free port), then:

    # rank r > 0 actors: a blocking call with plain arguments; returns after Stop,
    # raises LeaderLost if rank 0 goes away (no command or heartbeat for timeout_s)
    run_follower(r, tp, "tcp://10.0.0.5:29500", model_path, device="cuda", dtype="bfloat16")

    # rank 0 actor: blocks until every rank has joined and loaded its shard
    tp_worker = build_tp_worker(model_path, policy, tp, "tcp://10.0.0.5:29500",
                                device="cuda", dtype="bfloat16")
    server = ServerThread(tp_worker.worker, host, port); server.start()
    ...
    server.stop(grace_s); tp_worker.close()   # Stop to the followers; all ranks leave the groups

`run_follower` needs to run while rank 0 builds its worker (they meet in init and in a barrier
after loading), so start the follower calls first and do not wait on them.
"""

from worker.parallel.engine import ShardedEngine, TensorParallelEngine, tp_engine_class
from worker.parallel.follower import LeaderLost, run_follower
from worker.parallel.group import TpGroup, init_tp_group, leave_tp_group, local_init_method
from worker.parallel.loading import load_shard
from worker.parallel.rank0 import Rank0, TpWorker, build_tp_worker, start_rank0

__all__ = [
    "LeaderLost",
    "Rank0",
    "ShardedEngine",
    "TensorParallelEngine",
    "TpGroup",
    "TpWorker",
    "build_tp_worker",
    "init_tp_group",
    "leave_tp_group",
    "load_shard",
    "local_init_method",
    "run_follower",
    "start_rank0",
    "tp_engine_class",
]
