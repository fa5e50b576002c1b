#include "tandem/engine/threading.hpp"

#include <malloc.h>
#include <sched.h>

#include <ATen/Parallel.h>

#include <cstdlib>

// Present when the system BLAS is OpenBLAS (Debian's libopenblas0-pthread); weak so that any other BLAS
// still links.
extern "C" void openblas_set_num_threads(int threads) __attribute__((weak));

namespace tandem {

void ConfigureComputeThreads(int threads) {
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
  if (threads <= 0 && std::getenv("OMP_NUM_THREADS") != nullptr) return;  // LibTorch follows it
  if (threads <= 0) {
    // LibTorch's own default can be fewer than the CPUs we have (1 on a 2-vCPU Xeon VM whose lscpu
    // shows 1 thread per core): count the CPUs this process may run on instead.
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    threads = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  }
  at::set_num_threads(threads);
}

void KeepActivationMemoryInHeap() {
  // Setting either turns off glibc's dynamic thresholds, which start at 128 KiB.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int ComputeThreads() {
  return at::get_num_threads();
}

}  // namespace tandem
