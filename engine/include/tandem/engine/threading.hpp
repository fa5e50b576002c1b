// Process-wide settings for compute: threads and the allocator.
//
// LibTorch's intra-op pool and oneDNN share one OpenMP pool, sized here. OpenBLAS keeps a pool of its own
// beside it; left alone the two fight over the cores, so OpenBLAS is pinned to one thread (the runtime's
// large matrix products go through oneDNN; only small attention products reach BLAS).
#pragma once

namespace tandem {

// Sets the compute thread count (<= 0: OMP_NUM_THREADS when set, else one per CPU this process may run
// on). Call once at start-up, before any model work.
void ConfigureComputeThreads(int threads);
int ComputeThreads();

// Keeps freed memory of up to 64 MiB in the heap rather than handing it back to the kernel. Each layer's
// activations are allocated anew (prefill's run to megabytes); glibc would map and unmap each, and every
// page of it then faults in again, zeroed: 4% of a 128-token prefill's samples (110M shape; 703 -> 765 tok/s
// with this). Call at start-up, before any model work (calling it again changes nothing).
void KeepActivationMemoryInHeap();

}  // namespace tandem
