#include "tandem/wire/activation_codec.hpp"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "tandem/base/strings.hpp"

namespace tandem {
namespace {

// The payload is little-endian; on this (little-endian) host the in-memory bytes are the wire bytes.
static_assert(std::endian::native == std::endian::little,
              "the activation codec assumes a little-endian host");

constexpr size_t kInt4Group = 32;
// Level 1: activations are near-random floats, so higher levels buy little ratio for several times the
// CPU time, and the payload sits on the per-token critical path.
constexpr int kZstdLevel = 1;

constexpr std::array<std::string_view, 5> kPrecisionNames = {"fp32", "fp16", "bf16", "int8", "int4"};
constexpr std::array<std::string_view, 3> kCompressionNames = {"none", "lz4", "zstd"};

template <typename T>
void Store(std::byte* out, T value) {
  std::memcpy(out, &value, sizeof(T));
}

template <typename T>
T Load(const std::byte* in) {
  T value;
  std::memcpy(&value, in, sizeof(T));
  return value;
}

Status CheckShape(int64_t rows, int64_t cols) {
  if (rows <= 0) return InvalidArgument("rows must be > 0, got " + std::to_string(rows));
  if (cols <= 0) return InvalidArgument("cols must be > 0, got " + std::to_string(cols));
  return Status::Ok();
}

Status CheckCodec(ActivationCodec codec) {
  TANDEM_RETURN_IF_ERROR(PrecisionFromWire(static_cast<uint8_t>(codec.precision)).status());
  return CompressionFromWire(static_cast<uint8_t>(codec.compression)).status();
}

float AbsMax(std::span<const float> values) {
  float absmax = 0.0f;
  for (float x : values) absmax = std::max(absmax, std::fabs(x));
  return absmax;
}

// absmax / limit, lowered by an ulp while limit * scale overflows: for absmax near FLT_MAX the rounded
// quotient can be just large enough that the decoder's q * scale is inf, and it refuses such rows.
float QuantizationScale(float absmax, int limit) {
  const auto levels = static_cast<float>(limit);
  float scale = absmax / levels;
  while (std::isinf(scale * levels)) scale = std::nextafter(scale, 0.0f);
  return scale;
}

// round(x / scale) clamped to [-limit, limit]; 0 when the scale is 0 (an all-zero row or group, or one
// so tiny that absmax / limit underflows).
int Quantize(float x, float scale, int limit) {
  if (scale == 0.0f) return 0;
  return std::clamp(static_cast<int>(std::nearbyint(x / scale)), -limit, limit);
}

Status CheckScale(float scale) {
  if (!std::isfinite(scale) || scale < 0.0f) {
    return InvalidArgument("scale " + ShortNumber(scale) + " is not a finite number >= 0");
  }
  return Status::Ok();
}

// Writes one row of PrecisionPayloadBytes(precision, 1, row.size()) bytes to `out` (zero-filled).
Status EncodeRow(std::span<const float> row, Precision precision, std::byte* out) {
  const size_t n = row.size();
  switch (precision) {
    case Precision::kFp32:
      std::memcpy(out, row.data(), n * sizeof(float));
      return Status::Ok();
    case Precision::kFp16:
    case Precision::kBf16: {
      const bool fp16 = precision == Precision::kFp16;
      const uint16_t inf_bits = fp16 ? 0x7C00 : 0x7F80;
      for (size_t i = 0; i < n; ++i) {
        const uint16_t bits = fp16 ? c10::Half(row[i]).x : c10::BFloat16(row[i]).x;
        // Finite inputs round to inf only past the format's range; sending inf would poison the tail.
        if ((bits & 0x7FFF) == inf_bits) {
          return InvalidArgument(
              "value " + ShortNumber(row[i]) + " at col " + std::to_string(i) + " overflows " +
              std::string(kPrecisionNames[static_cast<size_t>(precision)]) + "; use a wider precision");
        }
        Store(out + 2 * i, bits);
      }
      return Status::Ok();
    }
    case Precision::kInt8: {
      const float scale = QuantizationScale(AbsMax(row), 127);
      Store(out, scale);
      for (size_t i = 0; i < n; ++i) Store(out + 4 + i, static_cast<int8_t>(Quantize(row[i], scale, 127)));
      return Status::Ok();
    }
    case Precision::kInt4: {
      const size_t groups = (n + kInt4Group - 1) / kInt4Group;
      std::byte* packed = out + 4 * groups;
      for (size_t g = 0; g < groups; ++g) {
        const size_t begin = g * kInt4Group;
        const size_t end = std::min(n, begin + kInt4Group);
        const float scale = QuantizationScale(AbsMax(row.subspan(begin, end - begin)), 7);
        Store(out + 4 * g, scale);
        for (size_t i = begin; i < end; ++i) {
          const int q = Quantize(row[i], scale, 7);
          packed[i / 2] |= static_cast<std::byte>((q & 0xF) << (4 * (i % 2)));
        }
      }
      return Status::Ok();
    }
  }
  return Internal("unreachable precision");
}

// Reads one row written by EncodeRow; `in` holds exactly its bytes. Values are checked for finiteness
// by the caller.
Status DecodeRow(const std::byte* in, Precision precision, std::span<float> row) {
  const size_t n = row.size();
  switch (precision) {
    case Precision::kFp32:
      std::memcpy(row.data(), in, n * sizeof(float));
      return Status::Ok();
    case Precision::kFp16:
      for (size_t i = 0; i < n; ++i) row[i] = c10::Half(Load<uint16_t>(in + 2 * i), c10::Half::from_bits());
      return Status::Ok();
    case Precision::kBf16:
      for (size_t i = 0; i < n; ++i) {
        row[i] = c10::BFloat16(Load<uint16_t>(in + 2 * i), c10::BFloat16::from_bits());
      }
      return Status::Ok();
    case Precision::kInt8: {
      const float scale = Load<float>(in);
      TANDEM_RETURN_IF_ERROR(CheckScale(scale));
      for (size_t i = 0; i < n; ++i) {
        const int8_t q = Load<int8_t>(in + 4 + i);
        // The encoder never writes -128; it would break the absmax bound, so it marks a corrupt payload.
        if (q == -128) return InvalidArgument("int8 value -128 at col " + std::to_string(i));
        row[i] = static_cast<float>(q) * scale;
      }
      return Status::Ok();
    }
    case Precision::kInt4: {
      const size_t groups = (n + kInt4Group - 1) / kInt4Group;
      const auto* packed = reinterpret_cast<const uint8_t*>(in + 4 * groups);
      for (size_t g = 0; g < groups; ++g) {
        const float scale = Load<float>(in + 4 * g);
        TANDEM_RETURN_IF_ERROR(CheckScale(scale).WithContext("group " + std::to_string(g)));
        for (size_t i = g * kInt4Group; i < std::min(n, (g + 1) * kInt4Group); ++i) {
          const int nibble = (packed[i / 2] >> (4 * (i % 2))) & 0xF;
          if (nibble == 8) return InvalidArgument("int4 value -8 at col " + std::to_string(i));
          row[i] = static_cast<float>(nibble < 8 ? nibble : nibble - 16) * scale;
        }
      }
      if (n % 2 == 1 && (packed[n / 2] >> 4) != 0) return InvalidArgument("int4 padding nibble is not 0");
      return Status::Ok();
    }
  }
  return Internal("unreachable precision");
}

// Replaces the payload by its compressed form when that is smaller.
Status Compress(Compression compression, EncodedActivations& encoded) {
  const std::vector<std::byte>& raw = encoded.payload;
  std::vector<std::byte> packed;
  if (compression == Compression::kLz4) {
    // One lz4 block holds at most ~2 GB; a bigger payload is still valid sent uncompressed.
    if (raw.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) return Status::Ok();
    packed.resize(static_cast<size_t>(LZ4_compressBound(static_cast<int>(raw.size()))));
    const int size = LZ4_compress_default(reinterpret_cast<const char*>(raw.data()),
                                          reinterpret_cast<char*>(packed.data()),
                                          static_cast<int>(raw.size()), static_cast<int>(packed.size()));
    if (size <= 0) return Internal("lz4 compression failed");
    packed.resize(static_cast<size_t>(size));
  } else if (compression == Compression::kZstd) {
    packed.resize(ZSTD_compressBound(raw.size()));
    const size_t size = ZSTD_compress(packed.data(), packed.size(), raw.data(), raw.size(), kZstdLevel);
    if (ZSTD_isError(size))
      return Internal(std::string("zstd compression failed: ") + ZSTD_getErrorName(size));
    packed.resize(size);
  } else {
    return Status::Ok();
  }
  if (packed.size() < raw.size()) {
    encoded.payload = std::move(packed);
    encoded.compression = compression;
  }
  return Status::Ok();
}

// Decompresses to exactly `expected` bytes, refusing any payload that does not.
Result<std::vector<std::byte>> Decompress(std::span<const std::byte> payload, Compression compression,
                                          int64_t expected) {
  const auto want = static_cast<size_t>(expected);
  const std::string expected_text = ", expected " + std::to_string(expected);
  if (compression == Compression::kZstd) {
    // The declared size is checked before allocating; the frame must also be the whole payload.
    const unsigned long long content = ZSTD_getFrameContentSize(payload.data(), payload.size());
    if (content == ZSTD_CONTENTSIZE_ERROR) return InvalidArgument("zstd payload is not a zstd frame");
    if (content == ZSTD_CONTENTSIZE_UNKNOWN) return InvalidArgument("zstd frame does not declare its size");
    if (content != want) {
      return InvalidArgument("zstd frame declares " + std::to_string(content) + " bytes" + expected_text);
    }
    const size_t frame = ZSTD_findFrameCompressedSize(payload.data(), payload.size());
    if (ZSTD_isError(frame) || frame != payload.size()) {
      return InvalidArgument("zstd payload of " + std::to_string(payload.size()) +
                             " bytes is not exactly one complete frame");
    }
    std::vector<std::byte> out(want);
    const size_t size = ZSTD_decompress(out.data(), want, payload.data(), payload.size());
    if (ZSTD_isError(size))
      return InvalidArgument(std::string("zstd payload is corrupt: ") + ZSTD_getErrorName(size));
    if (size != want)
      return InvalidArgument("zstd payload decompressed to " + std::to_string(size) + " bytes" +
                             expected_text);
    return out;
  }
  if (payload.size() > static_cast<size_t>(INT_MAX) || want > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) {
    return InvalidArgument("lz4 payload of " + std::to_string(payload.size()) + " bytes" + expected_text +
                           " is larger than one lz4 block");
  }
  std::vector<std::byte> out(want);
  const int size =
      LZ4_decompress_safe(reinterpret_cast<const char*>(payload.data()), reinterpret_cast<char*>(out.data()),
                          static_cast<int>(payload.size()), static_cast<int>(want));
  if (size < 0) return InvalidArgument("lz4 payload is corrupt");
  if (static_cast<size_t>(size) != want) {
    return InvalidArgument("lz4 payload decompressed to " + std::to_string(size) + " bytes" + expected_text);
  }
  return out;
}

}  // namespace

std::string ActivationCodec::Name() const {
  const auto p = static_cast<size_t>(precision);
  const auto c = static_cast<size_t>(compression);
  if (p >= kPrecisionNames.size() || c >= kCompressionNames.size()) return "invalid";
  std::string name(kPrecisionNames[p]);
  if (compression != Compression::kNone) {
    name += '+';
    name += kCompressionNames[c];
  }
  return name;
}

bool ActivationCodec::lossless() const {
  return precision == Precision::kFp32;
}

Result<ActivationCodec> ParseActivationCodec(std::string_view name) {
  const size_t plus = name.find('+');
  const std::string_view precision = name.substr(0, plus);
  const std::string_view compression = plus == std::string_view::npos ? "none" : name.substr(plus + 1);
  const auto p = std::find(kPrecisionNames.begin(), kPrecisionNames.end(), precision);
  const auto c = std::find(kCompressionNames.begin(), kCompressionNames.end(), compression);
  if (p == kPrecisionNames.end() || c == kCompressionNames.end()) {
    std::string valid;
    for (const ActivationCodec& codec : AllActivationCodecs())
      valid += (valid.empty() ? "" : ", ") + codec.Name();
    return InvalidArgument("unknown activation codec \"" + std::string(name) + "\"; valid: " + valid +
                           " (\"+none\" may follow a precision)");
  }
  return ActivationCodec{static_cast<Precision>(p - kPrecisionNames.begin()),
                         static_cast<Compression>(c - kCompressionNames.begin())};
}

Result<Precision> PrecisionFromWire(uint8_t value) {
  if (value >= kPrecisionNames.size()) {
    return InvalidArgument("unknown activation precision " + std::to_string(value) + " (valid: 0 to 4)");
  }
  return static_cast<Precision>(value);
}

Result<Compression> CompressionFromWire(uint8_t value) {
  if (value >= kCompressionNames.size()) {
    return InvalidArgument("unknown activation compression " + std::to_string(value) + " (valid: 0 to 2)");
  }
  return static_cast<Compression>(value);
}

std::vector<ActivationCodec> AllActivationCodecs() {
  std::vector<ActivationCodec> codecs;
  for (size_t p = 0; p < kPrecisionNames.size(); ++p) {
    for (size_t c = 0; c < kCompressionNames.size(); ++c) {
      codecs.push_back({static_cast<Precision>(p), static_cast<Compression>(c)});
    }
  }
  return codecs;
}

Result<int64_t> PrecisionPayloadBytes(Precision precision, int64_t rows, int64_t cols) {
  TANDEM_RETURN_IF_ERROR(CheckShape(rows, cols));
  TANDEM_RETURN_IF_ERROR(PrecisionFromWire(static_cast<uint8_t>(precision)).status());
  int64_t row_bytes = 0;
  bool overflow = false;
  switch (precision) {
    case Precision::kFp32:
      overflow = __builtin_mul_overflow(cols, int64_t{4}, &row_bytes);
      break;
    case Precision::kFp16:
    case Precision::kBf16:
      overflow = __builtin_mul_overflow(cols, int64_t{2}, &row_bytes);
      break;
    case Precision::kInt8:
      overflow = __builtin_add_overflow(cols, int64_t{4}, &row_bytes);
      break;
    case Precision::kInt4:  // at most about 0.625 * cols + 5: cannot overflow
      row_bytes = 4 * (cols / 32 + (cols % 32 != 0)) + cols / 2 + cols % 2;
      break;
  }
  int64_t total = 0;
  if (overflow || __builtin_mul_overflow(rows, row_bytes, &total)) {
    return InvalidArgument("payload size of rows=" + std::to_string(rows) +
                           " x cols=" + std::to_string(cols) + " overflows int64");
  }
  return total;
}

Result<EncodedActivations> EncodeActivations(std::span<const float> values, int64_t rows, int64_t cols,
                                             ActivationCodec codec) {
  TANDEM_RETURN_IF_ERROR(CheckShape(rows, cols));
  TANDEM_RETURN_IF_ERROR(CheckCodec(codec));
  if (cols > INT64_MAX / rows || values.size() != static_cast<uint64_t>(rows * cols)) {
    return InvalidArgument("values holds " + std::to_string(values.size()) + " floats, expected rows=" +
                           std::to_string(rows) + " x cols=" + std::to_string(cols));
  }
  const auto n = static_cast<size_t>(cols);
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return InvalidArgument("value " + ShortNumber(values[i]) + " at row " + std::to_string(i / n) +
                             " col " + std::to_string(i % n) + " is not finite");
    }
  }
  TANDEM_ASSIGN_OR_RETURN(const int64_t precision_bytes, PrecisionPayloadBytes(codec.precision, rows, cols));
  const auto row_bytes = static_cast<size_t>(precision_bytes / rows);

  EncodedActivations encoded;
  encoded.raw_bytes = rows * cols * static_cast<int64_t>(sizeof(float));
  encoded.precision_bytes = precision_bytes;
  encoded.payload.resize(static_cast<size_t>(precision_bytes));  // zero-filled: int4 ORs nibbles in
  for (size_t r = 0; r < static_cast<size_t>(rows); ++r) {
    TANDEM_RETURN_IF_ERROR(
        EncodeRow(values.subspan(r * n, n), codec.precision, encoded.payload.data() + r * row_bytes)
            .WithContext("row " + std::to_string(r)));
  }
  TANDEM_RETURN_IF_ERROR(Compress(codec.compression, encoded));
  return encoded;
}

Result<std::vector<float>> DecodeActivations(std::span<const std::byte> payload, int64_t rows, int64_t cols,
                                             ActivationCodec codec, int64_t max_values) {
  TANDEM_RETURN_IF_ERROR(CheckShape(rows, cols));
  TANDEM_RETURN_IF_ERROR(CheckCodec(codec));
  if (rows > max_values / cols) {  // rows * cols > max_values, without computing an overflowing product
    return ResourceExhausted("rows=" + std::to_string(rows) + " x cols=" + std::to_string(cols) +
                             " exceeds the limit of " + std::to_string(max_values) + " values");
  }
  TANDEM_ASSIGN_OR_RETURN(const int64_t expected, PrecisionPayloadBytes(codec.precision, rows, cols));

  std::vector<std::byte> decompressed;
  std::span<const std::byte> coded = payload;
  if (codec.compression == Compression::kNone) {
    if (payload.size() != static_cast<uint64_t>(expected)) {
      return InvalidArgument(codec.Name() + " payload is " + std::to_string(payload.size()) +
                             " bytes, expected " + std::to_string(expected) +
                             " for rows=" + std::to_string(rows) + " x cols=" + std::to_string(cols));
    }
  } else {
    TANDEM_ASSIGN_OR_RETURN(decompressed, Decompress(payload, codec.compression, expected));
    coded = decompressed;
  }

  const auto n = static_cast<size_t>(cols);
  const auto row_bytes = static_cast<size_t>(expected / rows);
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (size_t r = 0; r < static_cast<size_t>(rows); ++r) {
    TANDEM_RETURN_IF_ERROR(
        DecodeRow(coded.data() + r * row_bytes, codec.precision, std::span(values).subspan(r * n, n))
            .WithContext(codec.Name() + " payload row " + std::to_string(r)));
  }
  // Catches inf/NaN sent as fp32/fp16/bf16 and q * scale overflowing for a huge (finite) scale.
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return InvalidArgument(codec.Name() + " payload decodes to " + ShortNumber(values[i]) + " at row " +
                             std::to_string(i / n) + " col " + std::to_string(i % n));
    }
  }
  return values;
}

}  // namespace tandem
