// Activation codec: encodes the hidden-state rows that cross the network cut, and decodes them back.
//
// A codec is a precision (how each float is stored) plus a compression applied to the result. The wire
// message carries rows, cols and the codec; the payload below carries only values and scales.
//
// Payload formats, all little-endian, rows stored one after another (row-major):
//   fp32  cols x float32, bit-exact.
//   fp16  cols x IEEE binary16 (round to nearest even). Values that overflow fp16 (|x| >= 65520) are
//         refused by the encoder rather than sent as inf.
//   bf16  cols x bfloat16 (the top 16 bits of a float32, round to nearest even).
//   int8  float32 scale = absmax(row) / 127 (0 for an all-zero row), then cols x int8
//         q = round(x / scale) in [-127, 127]; x' = q * scale.
//   int4  ceil(cols / 32) x float32 group scales (group g covers cols [32g, 32g + 32); the last group
//         may be shorter), scale = absmax(group) / 7, then the row's packed values: two signed 4-bit
//         q in [-7, 7] per byte, low nibble first, in column order. Full groups hold 32 values, so
//         only the row's last byte can be half used; its unused high nibble is 0. Row size is
//         4 * ceil(cols / 32) + ceil(cols / 2) bytes (cols 172: 24 + 86 = 110).
// Then compression of the whole precision payload: lz4 (block, LZ4_compress_default) or zstd (one frame
// with its content size, level 1). When compressing would not shrink the payload it is sent
// uncompressed and EncodedActivations::compression says kNone; the wire header carries that value.
//
// Error bounds (tested): fp32 exact; fp16 relative error <= 2^-11 for |x| in the normal fp16 range
// [2^-14, 65504]; bf16 relative <= 2^-8 for normal floats; int8 |x - x'| <= absmax(row) / 254 and int4
// <= absmax(group) / 14, each up to a few float32 ulps of the absmax.
//
// All functions are pure and thread-safe. Decoding treats the payload as untrusted: every size is
// checked before anything is allocated, and malformed payloads are errors, never crashes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem {

// Wire values: never renumber.
enum class Precision : uint8_t { kFp32 = 0, kFp16 = 1, kBf16 = 2, kInt8 = 3, kInt4 = 4 };
enum class Compression : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };

struct ActivationCodec {
  Precision precision = Precision::kFp32;
  Compression compression = Compression::kNone;

  std::string Name() const;  // "fp32", "fp16+lz4", "int8+zstd" (no "+none" suffix)
  bool lossless() const;     // fp32 only
  friend bool operator==(const ActivationCodec&, const ActivationCodec&) = default;
};

// Accepts "fp32", "fp32+none", "int8+zstd", "int4+lz4", ...; otherwise an error listing the valid names.
Result<ActivationCodec> ParseActivationCodec(std::string_view name);
// Wire bytes to enums, refusing unknown values with InvalidArgument.
Result<Precision> PrecisionFromWire(uint8_t value);
Result<Compression> CompressionFromWire(uint8_t value);
// Every codec (5 precisions x 3 compressions), for tests and for HELLO's codec list.
std::vector<ActivationCodec> AllActivationCodecs();

struct EncodedActivations {
  Compression compression = Compression::kNone;  // applied: kNone when compressing would not shrink it
  std::vector<std::byte> payload;
  int64_t raw_bytes = 0;        // float32 bytes in: rows * cols * 4
  int64_t precision_bytes = 0;  // after precision coding, before compression
};

// `values` holds rows x cols float32, row-major. Refuses rows <= 0, cols <= 0, a size mismatch,
// non-finite values, and (fp16, bf16) values that would overflow to inf.
Result<EncodedActivations> EncodeActivations(std::span<const float> values, int64_t rows, int64_t cols,
                                             ActivationCodec codec);

// Exact size of the precision-coded payload (before compression); InvalidArgument on rows or cols <= 0
// or int64 overflow.
Result<int64_t> PrecisionPayloadBytes(Precision precision, int64_t rows, int64_t cols);

// Decodes a payload encoded with `codec` (whose compression is the one applied, from the wire header).
// Checks before allocating: rows, cols > 0 and rows * cols <= max_values (ResourceExhausted otherwise);
// the payload decompresses to exactly PrecisionPayloadBytes. Refuses non-finite or negative scales,
// non-finite values, int8 -128, int4 -8 and a non-zero padding nibble. Errors are InvalidArgument and
// say what was wrong.
Result<std::vector<float>> DecodeActivations(std::span<const std::byte> payload, int64_t rows, int64_t cols,
                                             ActivationCodec codec, int64_t max_values);

}  // namespace tandem
