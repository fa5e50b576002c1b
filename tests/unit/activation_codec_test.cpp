#include "tandem/wire/activation_codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace tandem {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kMaxValues = int64_t{1} << 24;

struct Shape {
  int64_t rows;
  int64_t cols;
};

// Random signs and mantissas with magnitudes in [2^-10, 2^10): inside the normal fp16 range, and spread
// widely so the quantizers see both large and tiny values. Built from mt19937 bits (its output is
// specified; the distributions are not).
std::vector<float> RandomValues(std::mt19937& rng, int64_t count) {
  std::vector<float> values(static_cast<size_t>(count));
  for (float& value : values) {
    const float mantissa = 1.0f + static_cast<float>(rng() % (1u << 23)) * 0x1.0p-23f;
    const int exponent = static_cast<int>(rng() % 20) - 10;
    value = std::ldexp(rng() % 2 == 0 ? mantissa : -mantissa, exponent);
  }
  return values;
}

float AbsMax(const std::vector<float>& values, size_t begin, size_t end) {
  float absmax = 0.0f;
  for (size_t i = begin; i < end; ++i) absmax = std::max(absmax, std::fabs(values[i]));
  return absmax;
}

// The largest |decoded - x| the header promises for element i; the quantizers get a few float32 ulps of
// the absmax for the rounding of the scale and of q * scale.
double ErrorBound(Precision precision, const std::vector<float>& values, int64_t cols, size_t i) {
  const auto n = static_cast<size_t>(cols);
  const double x = std::fabs(values[i]);
  switch (precision) {
    case Precision::kFp32:
      return 0.0;
    case Precision::kFp16:
      return std::ldexp(x, -11);
    case Precision::kBf16:
      return std::ldexp(x, -8);
    case Precision::kInt8: {
      const double absmax = AbsMax(values, i / n * n, i / n * n + n);
      return absmax / 254.0 + std::ldexp(absmax, -20);
    }
    case Precision::kInt4: {
      const size_t row = i / n * n;
      const size_t begin = row + (i - row) / 32 * 32;
      const double absmax = AbsMax(values, begin, std::min(begin + 32, row + n));
      return absmax / 14.0 + std::ldexp(absmax, -20);
    }
  }
  return 0.0;
}

EncodedActivations EncodeOrDie(const std::vector<float>& values, int64_t rows, int64_t cols,
                               ActivationCodec codec) {
  Result<EncodedActivations> encoded = EncodeActivations(values, rows, cols, codec);
  EXPECT_TRUE(encoded.ok()) << encoded.status().ToString();
  return encoded.ok() ? *encoded : EncodedActivations{};
}

Result<std::vector<float>> Decode(const std::vector<std::byte>& payload, int64_t rows, int64_t cols,
                                  Precision precision, Compression compression = Compression::kNone) {
  return DecodeActivations(payload, rows, cols, {precision, compression}, kMaxValues);
}

template <typename T>
void Put(std::vector<std::byte>& payload, size_t offset, T value) {
  std::memcpy(payload.data() + offset, &value, sizeof(T));
}

TEST(ActivationCodecTest, EveryCodecRoundTripsWithinItsBound) {
  std::mt19937 rng(7);
  for (const Shape shape :
       {Shape{1, 172}, Shape{7, 172}, Shape{1, 768}, Shape{7, 768}, Shape{3, 1}, Shape{2, 33}}) {
    const std::vector<float> values = RandomValues(rng, shape.rows * shape.cols);
    for (const ActivationCodec& codec : AllActivationCodecs()) {
      SCOPED_TRACE(codec.Name() + " " + std::to_string(shape.rows) + "x" + std::to_string(shape.cols));
      const EncodedActivations encoded = EncodeOrDie(values, shape.rows, shape.cols, codec);
      EXPECT_EQ(encoded.raw_bytes, shape.rows * shape.cols * 4);
      EXPECT_EQ(encoded.precision_bytes, *PrecisionPayloadBytes(codec.precision, shape.rows, shape.cols));
      EXPECT_TRUE(encoded.compression == Compression::kNone || encoded.compression == codec.compression);
      // Compression never makes the payload bigger.
      EXPECT_LE(static_cast<int64_t>(encoded.payload.size()), encoded.precision_bytes);

      const Result<std::vector<float>> decoded =
          Decode(encoded.payload, shape.rows, shape.cols, codec.precision, encoded.compression);
      ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
      ASSERT_EQ(decoded->size(), values.size());
      if (codec.lossless()) {
        EXPECT_EQ(std::memcmp(decoded->data(), values.data(), values.size() * sizeof(float)), 0);
      }
      for (size_t i = 0; i < values.size(); ++i) {
        const double error = std::fabs(static_cast<double>((*decoded)[i]) - values[i]);
        ASSERT_LE(error, ErrorBound(codec.precision, values, shape.cols, i))
            << "element " << i << " = " << values[i];
      }
    }
  }
}

std::vector<std::byte> Bytes(std::initializer_list<int> bytes) {
  std::vector<std::byte> out;
  for (const int b : bytes) out.push_back(static_cast<std::byte>(b));
  return out;
}

TEST(ActivationCodecTest, WireLayoutIsPinned) {
  // Scales of 1.0 (absmax 127 resp. 7) are float32 00 00 80 3F; -63.5 rounds to the even -64 (0xC0);
  // int4 packs col 0 in the low nibble, and the odd last col leaves a zero high nibble.
  EXPECT_EQ(EncodeOrDie({127.0f, -63.5f}, 1, 2, {Precision::kInt8}).payload,
            Bytes({0x00, 0x00, 0x80, 0x3F, 0x7F, 0xC0}));
  EXPECT_EQ(EncodeOrDie({7.0f, -7.0f, 1.0f}, 1, 3, {Precision::kInt4}).payload,
            Bytes({0x00, 0x00, 0x80, 0x3F, 0x97, 0x01}));
  EXPECT_EQ(EncodeOrDie({1.0f, -2.0f}, 1, 2, {Precision::kFp16}).payload, Bytes({0x00, 0x3C, 0x00, 0xC0}));
  EXPECT_EQ(EncodeOrDie({1.0f, -2.0f}, 1, 2, {Precision::kBf16}).payload, Bytes({0x80, 0x3F, 0x00, 0xC0}));
  // Two int4 groups in one row: both scales first, then the packed values.
  std::vector<float> two_groups(34, 0.0f);
  two_groups[0] = 7.0f;
  two_groups[33] = -14.0f;  // group 1's scale is 2.0 (00 00 00 40) and its q is -7
  std::vector<std::byte> expected = Bytes({0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40, 0x07});
  expected.resize(8 + 17);
  expected.back() = std::byte{0x90};
  EXPECT_EQ(EncodeOrDie(two_groups, 1, 34, {Precision::kInt4}).payload, expected);
}

TEST(ActivationCodecTest, HalfPrecisionsRoundToNearestEven) {
  // Halfway cases go to the even neighbour: down for 1 + half an ulp, up for 1 + 3 half ulps.
  const std::vector<float> fp16_in = {1.0f + 0x1.0p-11f, 1.0f + 3 * 0x1.0p-11f, -1.0f - 0x1.0p-11f};
  const std::vector<float> fp16_out = {1.0f, 1.0f + 0x1.0p-9f, -1.0f};
  const std::vector<float> bf16_in = {1.0f + 0x1.0p-8f, 1.0f + 3 * 0x1.0p-8f, -1.0f - 0x1.0p-8f};
  const std::vector<float> bf16_out = {1.0f, 1.0f + 0x1.0p-6f, -1.0f};
  EXPECT_EQ(*Decode(EncodeOrDie(fp16_in, 1, 3, {Precision::kFp16}).payload, 1, 3, Precision::kFp16),
            fp16_out);
  EXPECT_EQ(*Decode(EncodeOrDie(bf16_in, 1, 3, {Precision::kBf16}).payload, 1, 3, Precision::kBf16),
            bf16_out);
}

TEST(ActivationCodecTest, HalfPrecisionsRefuseValuesThatWouldOverflow) {
  EXPECT_TRUE(EncodeActivations(std::vector<float>{65504.0f, -65504.0f}, 1, 2, {Precision::kFp16}).ok());
  const Result<EncodedActivations> fp16 =
      EncodeActivations(std::vector<float>{1.0f, 70000.0f}, 1, 2, {Precision::kFp16});
  EXPECT_EQ(fp16.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(fp16.status().message().find("overflows fp16"), std::string::npos) << fp16.status().message();
  EXPECT_TRUE(EncodeActivations(std::vector<float>{70000.0f}, 1, 1, {Precision::kBf16}).ok());
  const float max_float = std::numeric_limits<float>::max();  // rounds up to inf in bf16
  EXPECT_FALSE(EncodeActivations(std::vector<float>{max_float}, 1, 1, {Precision::kBf16}).ok());
}

TEST(ActivationCodecTest, AllZeroRowsDecodeToZero) {
  std::mt19937 rng(11);
  std::vector<float> values(3 * 172, 0.0f);
  const std::vector<float> middle = RandomValues(rng, 172);
  std::copy(middle.begin(), middle.end(), values.begin() + 172);
  for (const ActivationCodec& codec : AllActivationCodecs()) {
    SCOPED_TRACE(codec.Name());
    const EncodedActivations encoded = EncodeOrDie(values, 3, 172, codec);
    const Result<std::vector<float>> decoded =
        Decode(encoded.payload, 3, 172, codec.precision, encoded.compression);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    for (size_t i = 0; i < 172; ++i) {
      ASSERT_EQ((*decoded)[i], 0.0f);
      ASSERT_EQ((*decoded)[2 * 172 + i], 0.0f);
    }
  }
  // The zero row's scale is written as 0.
  const EncodedActivations int8 = EncodeOrDie(values, 3, 172, {Precision::kInt8});
  float scale = 1.0f;
  std::memcpy(&scale, int8.payload.data(), sizeof(scale));
  EXPECT_EQ(scale, 0.0f);
}

// Found by fuzz/fuzz_activation_codec: absmax / 127 rounded up made 127 * scale overflow, so the decoder
// refused the encoder's own payload.
TEST(ActivationCodecTest, QuantizedRowsNearFloatMaxDecode) {
  const float max_float = std::numeric_limits<float>::max();
  const std::vector<float> values = {-max_float, 1.0f, 0.5f * max_float, -3.3995006e38f, 0.0f};
  for (Precision precision : {Precision::kInt8, Precision::kInt4}) {
    SCOPED_TRACE(static_cast<int>(precision));
    const EncodedActivations encoded = EncodeOrDie(values, 1, 5, {precision});
    const Result<std::vector<float>> decoded = Decode(encoded.payload, 1, 5, precision, encoded.compression);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    const float bound = max_float / (precision == Precision::kInt8 ? 254.0f : 14.0f) * 1.001f;
    for (size_t i = 0; i < values.size(); ++i) EXPECT_LE(std::fabs((*decoded)[i] - values[i]), bound) << i;
  }
}

TEST(ActivationCodecTest, CompressionAppliesWhenItShrinksThePayload) {
  // Mostly zeros: every precision compresses well.
  std::vector<float> values(4 * 768, 0.0f);
  for (size_t i = 0; i < values.size(); i += 97) values[i] = static_cast<float>(i % 13) - 6.0f;
  for (const ActivationCodec& codec : AllActivationCodecs()) {
    if (codec.compression == Compression::kNone) continue;
    SCOPED_TRACE(codec.Name());
    const EncodedActivations encoded = EncodeOrDie(values, 4, 768, codec);
    EXPECT_EQ(encoded.compression, codec.compression);
    EXPECT_LT(static_cast<int64_t>(encoded.payload.size()), encoded.precision_bytes / 4);
    const Result<std::vector<float>> decoded =
        Decode(encoded.payload, 4, 768, codec.precision, codec.compression);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_LE(std::fabs(static_cast<double>((*decoded)[i]) - values[i]),
                ErrorBound(codec.precision, values, 768, i));
    }
  }
}

TEST(ActivationCodecTest, PrecisionPayloadSizes) {
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kFp32, 1, 768), 3072);
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kFp16, 1, 768), 1536);
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kBf16, 7, 768), 7 * 1536);
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kInt8, 1, 768), 772);
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kInt8, 7, 768), 7 * 772);
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kInt4, 1, 768), 24 * 4 + 384);
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kInt4, 1, 172), 6 * 4 + 86);
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kInt4, 1, 33), 2 * 4 + 17);
  EXPECT_EQ(*PrecisionPayloadBytes(Precision::kInt4, 2, 1), 2 * 5);

  std::mt19937 rng(3);
  const EncodedActivations int8 = EncodeOrDie(RandomValues(rng, 768), 1, 768, {Precision::kInt8});
  EXPECT_EQ(int8.precision_bytes, 772);
  EXPECT_EQ(int8.payload.size(), 772u);

  EXPECT_FALSE(PrecisionPayloadBytes(Precision::kFp32, 1, kInt64Max / 2).ok());
  EXPECT_FALSE(PrecisionPayloadBytes(Precision::kInt8, kInt64Max, 2).ok());
  EXPECT_FALSE(PrecisionPayloadBytes(Precision::kInt8, 2, kInt64Max).ok());
  EXPECT_FALSE(PrecisionPayloadBytes(Precision::kInt4, kInt64Max, kInt64Max).ok());
  EXPECT_FALSE(PrecisionPayloadBytes(Precision::kFp16, 0, 4).ok());
  EXPECT_FALSE(PrecisionPayloadBytes(Precision::kFp16, 4, -1).ok());
}

TEST(ActivationCodecTest, EncodeRefusesBadShapesAndValues) {
  const std::vector<float> twelve(12, 1.0f);
  EXPECT_FALSE(EncodeActivations({}, 0, 4, {}).ok());
  EXPECT_FALSE(EncodeActivations({}, 1, 0, {}).ok());
  EXPECT_FALSE(EncodeActivations(twelve, -3, -4, {}).ok());
  EXPECT_FALSE(EncodeActivations(twelve, 3, 5, {}).ok());
  EXPECT_FALSE(EncodeActivations(twelve, 4, 4, {}).ok());
  EXPECT_FALSE(EncodeActivations(twelve, int64_t{1} << 40, int64_t{1} << 40, {}).ok());
  EXPECT_FALSE(EncodeActivations(twelve, kInt64Max, kInt64Max, {}).ok());
  EXPECT_TRUE(EncodeActivations(twelve, 3, 4, {}).ok());
  for (const float bad : {kNaN, kInf, -kInf}) {
    std::vector<float> values = twelve;
    values[6] = bad;
    for (const ActivationCodec& codec : AllActivationCodecs()) {
      const Result<EncodedActivations> encoded = EncodeActivations(values, 3, 4, codec);
      ASSERT_EQ(encoded.status().code(), StatusCode::kInvalidArgument) << codec.Name();
      EXPECT_NE(encoded.status().message().find("row 1 col 2"), std::string::npos)
          << encoded.status().message();
    }
  }
}

TEST(ActivationCodecTest, DecodeRefusesBadShapesAndLimits) {
  const std::vector<float> six = {1, 2, 3, 4, 5, 6};
  const EncodedActivations encoded = EncodeOrDie(six, 2, 3, {Precision::kFp32});
  const std::span<const std::byte> payload = encoded.payload;
  const ActivationCodec fp32{Precision::kFp32};
  EXPECT_TRUE(DecodeActivations(payload, 2, 3, fp32, 6).ok());
  EXPECT_EQ(DecodeActivations(payload, 2, 3, fp32, 5).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(DecodeActivations(payload, 0, 3, fp32, 6).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeActivations(payload, 2, -3, fp32, 6).status().code(), StatusCode::kInvalidArgument);
  // rows * cols overflows int64; it must be refused without being computed (or allocated).
  EXPECT_EQ(DecodeActivations(payload, kInt64Max, 3, fp32, kInt64Max).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(DecodeActivations(payload, int64_t{1} << 40, int64_t{1} << 40, fp32, kInt64Max).status().code(),
            StatusCode::kResourceExhausted);
  // Within max_values but far more than the payload holds.
  EXPECT_EQ(DecodeActivations(payload, int64_t{1} << 20, 1024, fp32, kInt64Max).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(DecodeActivations({}, 2, 3, fp32, 6).ok());
}

TEST(ActivationCodecTest, DecodeRefusesEveryTruncationAndOneExtraByte) {
  std::mt19937 rng(5);
  const std::vector<float> values = RandomValues(rng, 3 * 172);
  std::vector<float> sparse(3 * 172, 0.0f);  // so lz4 and zstd actually apply
  for (size_t i = 0; i < sparse.size(); i += 17) sparse[i] = values[i];
  for (const std::vector<float>& input : {values, sparse}) {
    for (const ActivationCodec& codec : AllActivationCodecs()) {
      SCOPED_TRACE(codec.Name());
      const EncodedActivations encoded = EncodeOrDie(input, 3, 172, codec);
      const ActivationCodec applied{codec.precision, encoded.compression};
      const std::span<const std::byte> payload = encoded.payload;
      ASSERT_TRUE(DecodeActivations(payload, 3, 172, applied, kMaxValues).ok());
      for (size_t size = 0; size < payload.size(); ++size) {
        ASSERT_FALSE(DecodeActivations(payload.first(size), 3, 172, applied, kMaxValues).ok()) << size;
      }
      std::vector<std::byte> longer = encoded.payload;
      longer.push_back(std::byte{0});
      EXPECT_FALSE(DecodeActivations(longer, 3, 172, applied, kMaxValues).ok());
    }
  }
}

TEST(ActivationCodecTest, DecodeRefusesGarbageCompressedPayloads) {
  std::mt19937 rng(9);
  std::vector<std::byte> garbage(300);
  for (std::byte& b : garbage) b = static_cast<std::byte>(rng() & 0xFF);
  for (const Compression compression : {Compression::kLz4, Compression::kZstd}) {
    for (const Precision precision : {Precision::kFp32, Precision::kInt8, Precision::kInt4}) {
      EXPECT_FALSE(Decode(garbage, 1, 172, precision, compression).ok());
      EXPECT_FALSE(Decode({}, 1, 172, precision, compression).ok());
    }
  }
}

// A zstd frame (magic, single-segment descriptor with an 8-byte content size) holding one empty raw block.
std::vector<std::byte> ZstdFrameClaiming(uint64_t content_size) {
  std::vector<std::byte> frame = {std::byte{0x28}, std::byte{0xB5}, std::byte{0x2F}, std::byte{0xFD},
                                  std::byte{0xE0}};
  for (int i = 0; i < 8; ++i) frame.push_back(static_cast<std::byte>((content_size >> (8 * i)) & 0xFF));
  for (const int b : {0x01, 0x00, 0x00}) frame.push_back(static_cast<std::byte>(b));  // last, raw, 0 bytes
  return frame;
}

TEST(ActivationCodecTest, DecodeChecksTheZstdContentSizeBeforeAllocating) {
  const ActivationCodec fp32_zstd{Precision::kFp32, Compression::kZstd};
  // Claims 1 TiB (and 2^63) while 1 x 172 fp32 needs 688 bytes: refused from the header alone.
  for (const uint64_t claim : {uint64_t{1} << 40, uint64_t{1} << 63}) {
    const Result<std::vector<float>> decoded =
        DecodeActivations(ZstdFrameClaiming(claim), 1, 172, fp32_zstd, kInt64Max);
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(decoded.status().message().find("declares"), std::string::npos) << decoded.status().message();
  }
  // Claims the right size but holds no data.
  EXPECT_FALSE(DecodeActivations(ZstdFrameClaiming(688), 1, 172, fp32_zstd, kMaxValues).ok());
  // No content size at all (descriptor 0, window byte 0): refused too.
  const std::vector<std::byte> unsized = {std::byte{0x28}, std::byte{0xB5}, std::byte{0x2F},
                                          std::byte{0xFD}, std::byte{0x00}, std::byte{0x00},
                                          std::byte{0x01}, std::byte{0x00}, std::byte{0x00}};
  EXPECT_FALSE(DecodeActivations(unsized, 1, 172, fp32_zstd, kMaxValues).ok());
}

TEST(ActivationCodecTest, DecodeRefusesBadScalesAndValues) {
  std::mt19937 rng(13);
  const std::vector<float> values = RandomValues(rng, 2 * 41);
  const std::vector<std::byte> int8 = EncodeOrDie(values, 2, 41, {Precision::kInt8}).payload;
  const std::vector<std::byte> int4 = EncodeOrDie(values, 2, 41, {Precision::kInt4}).payload;
  ASSERT_TRUE(Decode(int8, 2, 41, Precision::kInt8).ok());
  ASSERT_TRUE(Decode(int4, 2, 41, Precision::kInt4).ok());

  for (const float scale : {kNaN, kInf, -1.0f}) {
    std::vector<std::byte> bad = int8;
    Put(bad, 45, scale);  // row 1's scale
    const Result<std::vector<float>> decoded = Decode(bad, 2, 41, Precision::kInt8);
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(decoded.status().message().find("row 1"), std::string::npos) << decoded.status().message();
    bad = int4;
    Put(bad, 4, scale);  // row 0, group 1
    EXPECT_FALSE(Decode(bad, 2, 41, Precision::kInt4).ok());
  }
  // A finite scale so large that q * scale overflows.
  std::vector<std::byte> huge = int8;
  Put(huge, 0, 3e38f);
  Put(huge, 4, int8_t{127});
  EXPECT_FALSE(Decode(huge, 2, 41, Precision::kInt8).ok());
  // Codes the encoder never writes: int8 -128, int4 -8, a set int4 padding nibble (41 cols: odd).
  std::vector<std::byte> bad = int8;
  Put(bad, 10, int8_t{-128});
  EXPECT_FALSE(Decode(bad, 2, 41, Precision::kInt8).ok());
  bad = int4;
  Put(bad, 8, uint8_t{0x08});  // low nibble of row 0's first packed byte
  EXPECT_FALSE(Decode(bad, 2, 41, Precision::kInt4).ok());
  bad = int4;
  bad[8 + 20] |= std::byte{0x10};  // row 0's last packed byte holds col 40 and padding
  EXPECT_FALSE(Decode(bad, 2, 41, Precision::kInt4).ok());

  // Non-finite values in the float formats.
  std::vector<std::byte> fp32 = EncodeOrDie(values, 2, 41, {Precision::kFp32}).payload;
  Put(fp32, 8, kNaN);
  EXPECT_FALSE(Decode(fp32, 2, 41, Precision::kFp32).ok());
  std::vector<std::byte> fp16 = EncodeOrDie(values, 2, 41, {Precision::kFp16}).payload;
  Put(fp16, 2, uint16_t{0x7C00});  // +inf
  EXPECT_FALSE(Decode(fp16, 2, 41, Precision::kFp16).ok());
  std::vector<std::byte> bf16 = EncodeOrDie(values, 2, 41, {Precision::kBf16}).payload;
  Put(bf16, 2, uint16_t{0x7FC0});  // NaN
  EXPECT_FALSE(Decode(bf16, 2, 41, Precision::kBf16).ok());
}

TEST(ActivationCodecTest, WireValues) {
  for (uint8_t v = 0; v < 5; ++v) EXPECT_EQ(static_cast<uint8_t>(*PrecisionFromWire(v)), v);
  for (uint8_t v = 0; v < 3; ++v) EXPECT_EQ(static_cast<uint8_t>(*CompressionFromWire(v)), v);
  for (const uint8_t v : {5, 6, 128, 255}) {
    EXPECT_EQ(PrecisionFromWire(v).status().code(), StatusCode::kInvalidArgument);
  }
  for (const uint8_t v : {3, 4, 255}) {
    EXPECT_EQ(CompressionFromWire(v).status().code(), StatusCode::kInvalidArgument);
  }
  const std::vector<float> one = {1.0f};
  const std::vector<std::byte> four(4);
  for (const ActivationCodec bad : {ActivationCodec{static_cast<Precision>(5)},
                                    ActivationCodec{Precision::kFp32, static_cast<Compression>(3)}}) {
    EXPECT_EQ(EncodeActivations(one, 1, 1, bad).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(DecodeActivations(four, 1, 1, bad, kMaxValues).status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(ActivationCodecTest, NamesAndParsing) {
  EXPECT_EQ((ActivationCodec{}.Name()), "fp32");
  EXPECT_EQ((ActivationCodec{Precision::kFp16, Compression::kLz4}.Name()), "fp16+lz4");
  EXPECT_EQ((ActivationCodec{Precision::kInt8, Compression::kZstd}.Name()), "int8+zstd");
  EXPECT_TRUE(ActivationCodec{}.lossless());
  EXPECT_TRUE((ActivationCodec{Precision::kFp32, Compression::kZstd}.lossless()));
  EXPECT_FALSE(ActivationCodec{Precision::kBf16}.lossless());

  const std::vector<ActivationCodec> all = AllActivationCodecs();
  EXPECT_EQ(all.size(), 15u);
  for (const ActivationCodec& codec : all) {
    const Result<ActivationCodec> parsed = ParseActivationCodec(codec.Name());
    ASSERT_TRUE(parsed.ok()) << codec.Name();
    EXPECT_EQ(*parsed, codec);
    EXPECT_EQ(std::count(all.begin(), all.end(), codec), 1);
  }
  EXPECT_EQ(*ParseActivationCodec("fp32+none"), ActivationCodec{});
  EXPECT_EQ(*ParseActivationCodec("int4+lz4"), (ActivationCodec{Precision::kInt4, Compression::kLz4}));

  for (const char* bad :
       {"", "fp64", "int8+", "+lz4", "int8+gzip", "INT8", "int8+lz4+zstd", " fp32", "none"}) {
    const Result<ActivationCodec> parsed = ParseActivationCodec(bad);
    ASSERT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find("int4+zstd"), std::string::npos) << parsed.status().message();
  }
}

}  // namespace
}  // namespace tandem
