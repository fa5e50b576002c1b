// Fuzz target: the activation codec. Two properties per input:
//  1. DecodeActivations never crashes on arbitrary bytes, and what it accepts is finite, of the right
//     size, and re-encodes (fp32/fp16/bf16 decode back bit for bit; int8/int4 decode again).
//  2. Encode -> decode round trips of floats taken from the same bytes stay within the documented bounds
//     (fp32 exact, int8 absmax/254 per row, int4 absmax/14 per group).
// Input: precision u8, compression u8, rows u8, cols u16, then the payload.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_support.hpp"
#include "tandem/wire/activation_codec.hpp"

namespace {

using namespace tandem;

constexpr int64_t kMaxValues = 1 << 16;
constexpr int64_t kMaxRoundTripValues = 4096;  // keeps a round trip cheap next to the decode
constexpr size_t kInt4Group = 32;

bool BitEqual(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

float AbsMax(std::span<const float> values) {
  float absmax = 0;
  for (float x : values) absmax = std::max(absmax, std::fabs(x));
  return absmax;
}

// |x - x'| <= absmax / levels for each span of `group` values, plus a few ulps of absmax. Tiny absmax
// values (denormal scales) lose precision in the scale itself and are left out.
void CheckQuantizedBound(std::span<const float> in, std::span<const float> out, size_t cols, size_t group,
                         float levels) {
  for (size_t row = 0; row * cols < in.size(); ++row) {
    for (size_t begin = 0; begin < cols; begin += group) {
      const size_t n = std::min(group, cols - begin);
      const auto x = in.subspan(row * cols + begin, n);
      const auto y = out.subspan(row * cols + begin, n);
      const float absmax = AbsMax(x);
      if (absmax < 1e-30f) continue;
      const float bound = absmax / levels + absmax * 1e-6f;
      for (size_t i = 0; i < n; ++i) FUZZ_CHECK(std::fabs(x[i] - y[i]) <= bound);
    }
  }
}

void CheckDecode(std::span<const std::byte> payload, int64_t rows, int64_t cols, ActivationCodec codec) {
  auto decoded = DecodeActivations(payload, rows, cols, codec, kMaxValues);
  if (!decoded.ok()) return;
  FUZZ_CHECK(static_cast<int64_t>(decoded->size()) == rows * cols);
  for (float x : *decoded) FUZZ_CHECK(std::isfinite(x));

  // What was accepted came from some encoder: encoding it again must work and decode to the same values
  // for the float formats (every decoded value is exactly representable in them).
  auto encoded = EncodeActivations(*decoded, rows, cols, codec);
  FUZZ_CHECK(encoded.ok());
  const ActivationCodec applied{codec.precision, encoded->compression};
  auto again = DecodeActivations(encoded->payload, rows, cols, applied, kMaxValues);
  FUZZ_CHECK(again.ok());
  if (codec.precision == Precision::kFp32 || codec.precision == Precision::kFp16 ||
      codec.precision == Precision::kBf16) {
    FUZZ_CHECK(BitEqual(*again, *decoded));
  }
}

void CheckRoundTrip(std::span<const std::byte> bytes, int64_t rows, int64_t cols, ActivationCodec codec) {
  if (rows * cols > kMaxRoundTripValues || bytes.size() < static_cast<size_t>(rows * cols) * 4) return;
  std::vector<float> values(static_cast<size_t>(rows * cols));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  for (float& x : values) {
    if (!std::isfinite(x)) x = 0;  // the encoder refuses non-finite input, tested elsewhere
  }
  auto encoded = EncodeActivations(values, rows, cols, codec);
  if (!encoded.ok()) {
    // Only fp16 and bf16 may refuse finite input: values past their range.
    FUZZ_CHECK(codec.precision == Precision::kFp16 || codec.precision == Precision::kBf16);
    return;
  }
  FUZZ_CHECK(encoded->compression == Compression::kNone || encoded->compression == codec.compression);
  auto precision_bytes = PrecisionPayloadBytes(codec.precision, rows, cols);
  FUZZ_CHECK(precision_bytes.ok() && encoded->precision_bytes == *precision_bytes);
  const ActivationCodec applied{codec.precision, encoded->compression};
  auto decoded = DecodeActivations(encoded->payload, rows, cols, applied, kMaxValues);
  FUZZ_CHECK(decoded.ok());
  const auto n = static_cast<size_t>(cols);
  switch (codec.precision) {
    case Precision::kFp32:
      FUZZ_CHECK(BitEqual(*decoded, values));
      break;
    case Precision::kInt8:
      CheckQuantizedBound(values, *decoded, n, n, 254.0f);
      break;
    case Precision::kInt4:
      CheckQuantizedBound(values, *decoded, n, kInt4Group, 14.0f);
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tandem::fuzz::ByteCursor cursor(data, size);
  const auto precision = cursor.Take<uint8_t>();
  const auto compression = cursor.Take<uint8_t>();
  const int64_t rows = cursor.Take<uint8_t>();
  const int64_t cols = cursor.Take<uint16_t>();
  const auto rest = std::as_bytes(cursor.Rest());

  // Out-of-range codec bytes must be refused, not decoded.
  const ActivationCodec raw{static_cast<Precision>(precision), static_cast<Compression>(compression)};
  auto checked_precision = PrecisionFromWire(precision);
  auto checked_compression = CompressionFromWire(compression);
  if (!checked_precision.ok() || !checked_compression.ok()) {
    FUZZ_CHECK(!DecodeActivations(rest, rows, cols, raw, kMaxValues).ok());
    return 0;
  }
  const ActivationCodec codec{*checked_precision, *checked_compression};
  FUZZ_CHECK(ParseActivationCodec(codec.Name()).ok());
  CheckDecode(rest, rows, cols, codec);
  if (rows > 0 && cols > 0) CheckRoundTrip(rest, rows, cols, codec);
  return 0;
}
