#include "tandem/common/threading.hpp"

#include <ATen/Parallel.h>


// Present when the system BLAS is OpenBLAS (Debian's libopenblas0-pthread); weak so that any other BLAS
// still links.
extern "C" void openblas_set_num_threads(int threads) __attribute__((weak));

namespace tandem {

void ConfigureComputeThreads(int threads) {
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
  // Left at 0, LibTorch's default stands: OMP_NUM_THREADS when set, else one thread per core.
  if (threads > 0) at::set_num_threads(threads);
}

int ComputeThreads() { return at::get_num_threads(); }

}  // namespace tandem
