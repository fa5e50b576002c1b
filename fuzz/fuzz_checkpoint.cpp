// Fuzz target: Checkpoint::Load on an arbitrary file. Whatever loads must be what the header says: the
// file is exactly ExpectedFileSize, and every tensor pointer lies inside the mapping (read at both ends
// of each tensor, so a bad offset faults here rather than later in the runtime).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "tandem/model/checkpoint.hpp"

namespace {

using tandem::Checkpoint;

// Touches the first and last float of a tensor of `count` values, which must lie in the file.
float TouchTensor(const Checkpoint& checkpoint, const float* tensor, int64_t count) {
  FUZZ_CHECK(tensor != nullptr && count > 0);
  const auto* begin = reinterpret_cast<const std::byte*>(tensor);
  const auto* file_begin = checkpoint.file().bytes().data();
  const auto* file_end = file_begin + checkpoint.file().size();
  FUZZ_CHECK(begin >= file_begin && begin + count * sizeof(float) <= file_end);
  return tensor[0] + tensor[count - 1];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tandem::fuzz::MemoryFile file;
  auto loaded = Checkpoint::Load(file.Write({data, size}));
  if (!loaded.ok()) return 0;
  const Checkpoint& checkpoint = **loaded;
  const auto& config = checkpoint.config();
  auto expected = Checkpoint::ExpectedFileSize(config);
  FUZZ_CHECK(expected.ok() && *expected == size);

  const int64_t d = config.dim, h = config.hidden_dim, kv = config.kv_dim();
  volatile float sink = 0;
  sink = sink + TouchTensor(checkpoint, checkpoint.token_embedding(), int64_t{config.vocab_size} * d);
  for (int layer = 0; layer < config.n_layers; ++layer) {
    const auto& block = checkpoint.block(layer);
    sink = sink + TouchTensor(checkpoint, block.rms_att, d);
    sink = sink + TouchTensor(checkpoint, block.wq, d * d);
    sink = sink + TouchTensor(checkpoint, block.wk, kv * d);
    sink = sink + TouchTensor(checkpoint, block.wv, kv * d);
    sink = sink + TouchTensor(checkpoint, block.wo, d * d);
    sink = sink + TouchTensor(checkpoint, block.rms_ffn, d);
    sink = sink + TouchTensor(checkpoint, block.w1, h * d);
    sink = sink + TouchTensor(checkpoint, block.w2, d * h);
    sink = sink + TouchTensor(checkpoint, block.w3, h * d);
  }
  sink = sink + TouchTensor(checkpoint, checkpoint.rms_final(), d);
  sink = sink + TouchTensor(checkpoint, checkpoint.classifier(), int64_t{config.vocab_size} * d);
  (void)checkpoint.Fingerprint();
  return 0;
}
