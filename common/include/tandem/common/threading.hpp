// One decision about threads for the whole process.
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

}  // namespace tandem
