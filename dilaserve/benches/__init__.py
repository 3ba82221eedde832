"""Measurements that span runtimes (command layer): `kernels` compares the Triton kernels with
the model's own torch path (`dilaserve bench-kernels`)."""
