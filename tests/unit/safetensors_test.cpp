#include "tandem/model/safetensors.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "test_env.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;

template <typename T>
std::span<const std::byte> AsBytes(const std::vector<T>& values) {
  return std::as_bytes(std::span(values));
}

std::vector<char> ReadAll(const fs::path& path) {
  return testing::ReadBytes(path);
}

// A file by hand: the 8-byte little-endian length of `json`, `json`, then `data_bytes` bytes 0, 1, 2, ...
std::vector<char> HandMade(const std::string& json, size_t data_bytes, uint64_t length) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((length >> (8 * i)) & 0xFF);
  bytes += json;
  for (size_t i = 0; i < data_bytes; ++i) bytes += static_cast<char>(i);
  return {bytes.begin(), bytes.end()};
}
std::vector<char> HandMade(const std::string& json, size_t data_bytes) {
  return HandMade(json, data_bytes, json.size());
}

// The header JSON text of a written file.
std::string HeaderText(const std::vector<char>& file) {
  uint64_t length = 0;
  std::memcpy(&length, file.data(), 8);
  return std::string(file.data() + 8, length);
}

Status WriteOne(const std::string& path, const std::string& name, TensorDtype dtype,
                std::vector<int64_t> shape, std::span<const std::byte> bytes) {
  return WriteSafetensors(path, {{.name = name, .dtype = dtype, .shape = std::move(shape), .bytes = bytes}});
}

std::vector<float> ReadFloats(const SafetensorsFile& file, const std::string& name) {
  const TensorInfo* info = file.Find(name);
  EXPECT_NE(info, nullptr) << name;
  if (info == nullptr) return {};
  std::vector<float> values(static_cast<size_t>(info->elements()));
  const Status status = ConvertToFloat32(info->dtype, file.Data(*info), values.data(), values.size());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return values;
}

// Bitwise equality, so that -0.0 differs from 0.0 and NaN equals itself.
void ExpectSameBits(const std::vector<float>& actual, const std::vector<float>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(actual[i]), std::bit_cast<uint32_t>(expected[i]))
        << "value " << i << ": " << actual[i] << " != " << expected[i];
  }
}

TEST(SafetensorsTest, F32RoundTripsExactly) {
  testing::TempDir dir;
  const std::string path = (dir / "f32.safetensors").string();
  const std::vector<float> values = {1.0f,
                                     -0.0f,
                                     0.0f,
                                     std::numeric_limits<float>::denorm_min(),
                                     -std::numeric_limits<float>::max(),
                                     std::numeric_limits<float>::infinity(),
                                     3.14159274f,
                                     -1e-30f};
  ASSERT_TRUE(WriteOne(path, "w", TensorDtype::kF32, {4, 2}, AsBytes(values)).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->tensors().size(), 1u);
  const TensorInfo& info = file->tensors()[0];
  EXPECT_EQ(info.name, "w");
  EXPECT_EQ(info.dtype, TensorDtype::kF32);
  EXPECT_EQ(info.shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(info.begin, 0u);
  EXPECT_EQ(info.end, 32u);
  EXPECT_EQ(info.elements(), 8);
  EXPECT_EQ(file->path(), path);
  EXPECT_TRUE(file->metadata().empty());
  ExpectSameBits(ReadFloats(*file, "w"), values);
}

TEST(SafetensorsTest, F16WidensExactly) {
  testing::TempDir dir;
  const std::string path = (dir / "f16.safetensors").string();
  const std::vector<uint16_t> bits = {0x3C00, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF,
                                      0xFBFF, 0xC000, 0x7C00, 0xFC00, 0x3555};
  const std::vector<float> expected = {1.0f,
                                       -0.0f,
                                       std::ldexp(1.0f, -24),     // smallest subnormal
                                       std::ldexp(1023.0f, -24),  // largest subnormal
                                       std::ldexp(1.0f, -14),     // smallest normal
                                       65504.0f,
                                       -65504.0f,
                                       -2.0f,
                                       std::numeric_limits<float>::infinity(),
                                       -std::numeric_limits<float>::infinity(),
                                       0.333251953125f};
  ASSERT_TRUE(WriteOne(path, "h", TensorDtype::kF16, {11}, AsBytes(bits)).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ExpectSameBits(ReadFloats(*file, "h"), expected);
  // NaN stays NaN.
  std::vector<float> nan(1);
  const std::vector<uint16_t> nan_bits = {0x7E00};
  ASSERT_TRUE(ConvertToFloat32(TensorDtype::kF16, AsBytes(nan_bits), nan.data(), 1).ok());
  EXPECT_TRUE(std::isnan(nan[0]));
}

TEST(SafetensorsTest, Bf16WidensExactly) {
  testing::TempDir dir;
  const std::string path = (dir / "bf16.safetensors").string();
  const std::vector<uint16_t> bits = {0x3F80, 0x8000, 0x0001, 0x007F, 0x7F7F, 0xFF7F, 0xC040, 0x7F80, 0x3EAB};
  const std::vector<float> expected = {1.0f,
                                       -0.0f,
                                       std::ldexp(1.0f, -133),    // smallest subnormal
                                       std::ldexp(127.0f, -133),  // largest subnormal
                                       std::ldexp(255.0f, 120),   // largest finite, 3.3895e38
                                       -std::ldexp(255.0f, 120),
                                       -3.0f,
                                       std::numeric_limits<float>::infinity(),
                                       0.333984375f};
  ASSERT_TRUE(WriteOne(path, "b", TensorDtype::kBF16, {3, 3}, AsBytes(bits)).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ExpectSameBits(ReadFloats(*file, "b"), expected);
}

TEST(SafetensorsTest, ScalarZeroSizeAndIntegerTensorsRoundTrip) {
  testing::TempDir dir;
  const std::string path = (dir / "mixed.safetensors").string();
  const std::vector<float> scalar = {-7.5f};
  const std::vector<int64_t> i64 = {std::numeric_limits<int64_t>::min(), -1, 42};
  const std::vector<uint8_t> flags = {1, 0, 1, 1};
  const std::vector<double> f64 = {0.1, -2.5};
  ASSERT_TRUE(
      WriteSafetensors(
          path, {{.name = "scalar", .dtype = TensorDtype::kF32, .shape = {}, .bytes = AsBytes(scalar)},
                 {.name = "empty", .dtype = TensorDtype::kF32, .shape = {0, 3}, .bytes = {}},
                 {.name = "ids", .dtype = TensorDtype::kI64, .shape = {3}, .bytes = AsBytes(i64)},
                 {.name = "mask", .dtype = TensorDtype::kBool, .shape = {2, 2}, .bytes = AsBytes(flags)},
                 {.name = "f64", .dtype = TensorDtype::kF64, .shape = {1, 2}, .bytes = AsBytes(f64)},
                 {.name = "empty_last", .dtype = TensorDtype::kI8, .shape = {5, 0}, .bytes = {}}})
          .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->tensors().size(), 6u);

  const TensorInfo* s = file->Find("scalar");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->elements(), 1);
  ExpectSameBits(ReadFloats(*file, "scalar"), scalar);

  const TensorInfo* empty = file->Find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(empty->elements(), 0);
  EXPECT_EQ(empty->begin, empty->end);
  EXPECT_TRUE(file->Data(*empty).empty());
  EXPECT_TRUE(ConvertToFloat32(TensorDtype::kF32, file->Data(*empty), nullptr, 0).ok());

  auto same_bytes = [&](const std::string& name, std::span<const std::byte> expected) {
    const TensorInfo* info = file->Find(name);
    ASSERT_NE(info, nullptr) << name;
    const auto data = file->Data(*info);
    ASSERT_EQ(data.size(), expected.size()) << name;
    EXPECT_EQ(std::memcmp(data.data(), expected.data(), data.size()), 0) << name;
  };
  same_bytes("ids", AsBytes(i64));
  same_bytes("mask", AsBytes(flags));
  same_bytes("f64", AsBytes(f64));
  EXPECT_EQ(file->Find("ids")->dtype, TensorDtype::kI64);
  EXPECT_EQ(file->Find("mask")->dtype, TensorDtype::kBool);
  EXPECT_EQ(file->Find("empty_last")->elements(), 0);
  EXPECT_EQ(file->Find("absent"), nullptr);
  // Tensors come back sorted by their offsets, contiguous from 0 to the end of the file.
  uint64_t covered = 0;
  for (const TensorInfo& info : file->tensors()) {
    EXPECT_EQ(info.begin, covered) << info.name;
    covered = info.end;
  }
  EXPECT_EQ(file->file().size() - covered, 8 + HeaderText(ReadAll(path)).size());
}

TEST(SafetensorsTest, HeaderKeepsTheGivenOrderAndIsPaddedToEightBytes) {
  testing::TempDir dir;
  const std::string path = (dir / "order.safetensors").string();
  const std::vector<float> a = {1, 2, 3};
  const std::vector<float> b = {4};
  ASSERT_TRUE(WriteSafetensors(
                  path, {{.name = "zeta", .dtype = TensorDtype::kF32, .shape = {1}, .bytes = AsBytes(b)},
                         {.name = "alpha", .dtype = TensorDtype::kF32, .shape = {3}, .bytes = AsBytes(a)}})
                  .ok());
  const std::vector<char> bytes = ReadAll(path);
  const std::string header = HeaderText(bytes);
  EXPECT_EQ(header.size() % 8, 0u) << header;
  EXPECT_EQ(header.find("__metadata__"), std::string::npos) << header;
  EXPECT_LT(header.find("\"zeta\""), header.find("\"alpha\"")) << header;
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));
  EXPECT_EQ(bytes.size(), 8 + header.size() + 16);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->Find("zeta")->begin, 0u);
  EXPECT_EQ(file->Find("alpha")->begin, 4u);
  ExpectSameBits(ReadFloats(*file, "alpha"), a);
}

TEST(SafetensorsTest, MetadataRoundTrips) {
  testing::TempDir dir;
  const std::string path = (dir / "meta.safetensors").string();
  const std::vector<float> w = {1, 2};
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"note", "quotes \" and\nnewlines, caf\xc3\xa9"}, {"empty", ""}};
  ASSERT_TRUE(WriteSafetensors(path,
                               {{.name = "w", .dtype = TensorDtype::kF32, .shape = {2}, .bytes = AsBytes(w)}},
                               metadata)
                  .ok());
  EXPECT_NE(HeaderText(ReadAll(path)).find("\"__metadata__\""), std::string::npos);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->metadata(), metadata);
  ASSERT_EQ(file->tensors().size(), 1u);  // __metadata__ is not a tensor
}

TEST(SafetensorsTest, ReadsUnalignedF32) {
  testing::TempDir dir;
  const std::string path = (dir / "unaligned.safetensors").string();
  const std::vector<uint8_t> one = {9};
  const std::vector<float> w = {1.5f, -0.0f, 1e38f};
  ASSERT_TRUE(WriteSafetensors(
                  path, {{.name = "byte", .dtype = TensorDtype::kU8, .shape = {1}, .bytes = AsBytes(one)},
                         {.name = "w", .dtype = TensorDtype::kF32, .shape = {3}, .bytes = AsBytes(w)}})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const auto data = file->Data(*file->Find("w"));
  EXPECT_NE(reinterpret_cast<uintptr_t>(data.data()) % alignof(float), 0u);
  ExpectSameBits(ReadFloats(*file, "w"), w);
}

TEST(SafetensorsTest, ConvertRefusesOtherDtypesAndWrongSizes) {
  const std::vector<uint8_t> bytes(8);
  std::vector<float> out(4);
  const Status integer = ConvertToFloat32(TensorDtype::kI32, std::as_bytes(std::span(bytes)), out.data(), 2);
  EXPECT_EQ(integer.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(integer.message().find("I32"), std::string::npos) << integer.message();
  EXPECT_FALSE(ConvertToFloat32(TensorDtype::kF64, std::as_bytes(std::span(bytes)), out.data(), 1).ok());
  const Status short_span =
      ConvertToFloat32(TensorDtype::kF32, std::as_bytes(std::span(bytes)), out.data(), 3);
  EXPECT_EQ(short_span.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(short_span.message().find("8 bytes"), std::string::npos) << short_span.message();
  EXPECT_FALSE(ConvertToFloat32(TensorDtype::kF16, std::as_bytes(std::span(bytes)), out.data(), 3).ok());
  EXPECT_FALSE(ConvertToFloat32(TensorDtype::kBF16, std::as_bytes(std::span(bytes)), out.data(),
                                std::numeric_limits<size_t>::max())
                   .ok());
  EXPECT_TRUE(ConvertToFloat32(TensorDtype::kBF16, std::as_bytes(std::span(bytes)), out.data(), 4).ok());
}

TEST(SafetensorsTest, WriteRefusesBadTensors) {
  testing::TempDir dir;
  const std::string path = (dir / "bad.safetensors").string();
  const std::vector<float> three = {1, 2, 3};
  auto expect_refused = [&](const std::vector<TensorToWrite>& tensors, const std::string& expected) {
    const Status status = WriteSafetensors(path, tensors);
    ASSERT_FALSE(status.ok()) << expected;
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(path), std::string::npos) << status.message();
    EXPECT_NE(status.message().find(expected), std::string::npos) << status.message();
    EXPECT_FALSE(fs::exists(path)) << "nothing is written for a refused tensor";
  };
  expect_refused({{.name = "w", .dtype = TensorDtype::kF32, .shape = {4}, .bytes = AsBytes(three)}},
                 "tensor 'w' has 12 bytes, F32 [4] needs 16");
  expect_refused({{.name = "w", .dtype = TensorDtype::kF16, .shape = {3}, .bytes = AsBytes(three)}},
                 "F16 [3] needs 6");
  expect_refused({{.name = "w", .dtype = TensorDtype::kF32, .shape = {-3}, .bytes = AsBytes(three)}},
                 "negative");
  expect_refused({{.name = "w", .dtype = TensorDtype::kF32, .shape = {3}, .bytes = AsBytes(three)},
                  {.name = "w", .dtype = TensorDtype::kF32, .shape = {3}, .bytes = AsBytes(three)}},
                 "twice");
  expect_refused(
      {{.name = "__metadata__", .dtype = TensorDtype::kF32, .shape = {3}, .bytes = AsBytes(three)}},
      "reserved");
  expect_refused({{.name = "w\xff", .dtype = TensorDtype::kF32, .shape = {3}, .bytes = AsBytes(three)}},
                 "UTF-8");
  // A directory that does not exist: the error names the path.
  const std::string nowhere = (dir / "no" / "such.safetensors").string();
  const Status unwritable = WriteOne(nowhere, "w", TensorDtype::kF32, {3}, AsBytes(three));
  EXPECT_FALSE(unwritable.ok());
  EXPECT_NE(unwritable.message().find(nowhere), std::string::npos) << unwritable.message();
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  auto file = SafetensorsFile::Open("/nonexistent/model.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("/nonexistent/model.safetensors"), std::string::npos);
}

struct BadFileCase {
  const char* name;
  std::vector<char> bytes;
  const char* expected;  // in the error message, besides the path
};

void PrintTo(const BadFileCase& bad, std::ostream* out) {
  *out << bad.name;
}

class SafetensorsBadFileTest : public ::testing::TestWithParam<BadFileCase> {};

TEST_P(SafetensorsBadFileTest, IsRefusedWithFileAndProblem) {
  testing::TempDir dir;
  const std::string path = (dir / "model.safetensors").string();
  testing::WriteBytes(path, GetParam().bytes);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(file.status().message().rfind(path + ": ", 0), 0u) << file.status().message();
  EXPECT_NE(file.status().message().find(GetParam().expected), std::string::npos) << file.status().message();
  // The same bytes through the span parser give the same answer.
  const auto& bytes = GetParam().bytes;
  auto header = ParseSafetensorsHeader(std::as_bytes(std::span(bytes)), "bytes");
  ASSERT_FALSE(header.ok());
  EXPECT_EQ(header.status().message().rfind("bytes: ", 0), 0u) << header.status().message();
}

std::string Entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets +
         "}";
}
std::string F32(const std::string& name, const std::string& shape, const std::string& offsets) {
  return Entry(name, "\"F32\"", shape, offsets);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SafetensorsBadFileTest,
    ::testing::Values(
        BadFileCase{"ShorterThanLength", {1, 0, 0}, "shorter than the 8-byte header length"},
        BadFileCase{"EmptyHeader", HandMade("", 0), "does not start with '{'"},
        BadFileCase{"NotAnObject", HandMade("[1, 2]", 0), "does not start with '{'"},
        BadFileCase{"LeadingSpace", HandMade(" {}", 0), "does not start with '{'"},
        BadFileCase{"BadJson", HandMade("{\"w\": {\"dtype\": ", 0), "not valid JSON"},
        BadFileCase{"TrailingGarbage", HandMade("{}x", 0), "not valid JSON"},
        BadFileCase{"LengthPastTheEnd", HandMade("{}", 4, 1000), "truncated: header length 1000"},
        BadFileCase{"LengthOver100MB", HandMade("{}", 4, 100'000'001), "exceeds the limit of 100000000"},
        BadFileCase{"LengthHuge", HandMade("{}", 4, ~uint64_t{0}), "exceeds the limit"},
        BadFileCase{"TooDeep", HandMade("{\"w\":" + std::string(40, '[') + std::string(40, ']') + "}", 0),
                    "deeper than"},
        BadFileCase{"EntryNotObject", HandMade("{\"w\":3}", 0),
                    "tensor 'w' is an unsigned integer, not an object"},
        BadFileCase{"UnknownDtype", HandMade("{" + Entry("w", "\"F8\"", "[1]", "[0,1]") + "}", 1),
                    "tensor 'w' has unknown dtype 'F8'"},
        BadFileCase{"LowercaseDtype", HandMade("{" + Entry("w", "\"f32\"", "[1]", "[0,4]") + "}", 4),
                    "unknown dtype 'f32'"},
        BadFileCase{"DtypeNotString", HandMade("{" + Entry("w", "4", "[1]", "[0,4]") + "}", 4),
                    "dtype is an unsigned integer, not a string"},
        BadFileCase{"MissingDataOffsets", HandMade("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4),
                    "tensor 'w' is missing 'data_offsets'"},
        BadFileCase{"ExtraKey",
                    HandMade("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4),
                    "unknown key 'x'"},
        BadFileCase{"ShapeNotArray", HandMade("{" + F32("w", "4", "[0,16]") + "}", 16),
                    "shape is an unsigned"},
        BadFileCase{"NegativeDim", HandMade("{" + F32("w", "[2,-2]", "[0,16]") + "}", 16),
                    "shape dimension 1 is negative (-2)"},
        BadFileCase{"FractionalDim", HandMade("{" + F32("w", "[2.5]", "[0,10]") + "}", 10),
                    "shape dimension 0 is a fraction"},
        BadFileCase{"DimPastInt64", HandMade("{" + F32("w", "[9223372036854775808]", "[0,4]") + "}", 4),
                    "does not fit int64"},
        BadFileCase{"ShapeOverflows", HandMade("{" + F32("w", "[4294967296,4294967296]", "[0,4]") + "}", 4),
                    "overflows int64"},
        BadFileCase{"ElementsTimesSizeOverflows",
                    HandMade("{" + F32("w", "[4611686018427387904]", "[0,4]") + "}", 4),
                    "needs more than 2^64"},
        BadFileCase{"OffsetsNotTwo", HandMade("{" + F32("w", "[1]", "[0,4,8]") + "}", 4),
                    "data_offsets is not an array of two unsigned integers"},
        BadFileCase{"NegativeOffset", HandMade("{" + F32("w", "[1]", "[-4,0]") + "}", 4),
                    "data_offsets is not an array of two unsigned integers"},
        BadFileCase{"OffsetsPastTheEnd", HandMade("{" + F32("w", "[4]", "[0,16]") + "}", 8),
                    "data_offsets [0, 16] past the end of the 8-byte data section"},
        BadFileCase{"EndBeforeBegin", HandMade("{" + F32("w", "[1]", "[8,4]") + "}", 8),
                    "data_offsets [8, 4] end before begin"},
        BadFileCase{"SizeMismatch", HandMade("{" + F32("w", "[4,2]", "[0,40]") + "}", 40),
                    "tensor 'w' data_offsets [0, 40] hold 40 bytes, F32 [4, 2] needs 32"},
        BadFileCase{"Overlap",
                    HandMade("{" + F32("a", "[4]", "[0,16]") + "," + F32("b", "[4]", "[8,24]") + "}", 24),
                    "tensors 'a' [0, 16] and 'b' [8, 24] overlap"},
        BadFileCase{"EmptyTensorInsideAnother",
                    HandMade("{" + F32("a", "[4]", "[0,16]") + "," + F32("b", "[0]", "[8,8]") + "}", 16),
                    "overlap"},
        BadFileCase{"Gap",
                    HandMade("{" + F32("a", "[4]", "[0,16]") + "," + F32("b", "[4]", "[24,40]") + "}", 40),
                    "gap in the data section: bytes [16, 24) belong to no tensor"},
        BadFileCase{"GapAtTheStart", HandMade("{" + F32("a", "[1]", "[4,8]") + "}", 8), "bytes [0, 4)"},
        BadFileCase{"TrailingBytes", HandMade("{" + F32("a", "[4]", "[0,16]") + "}", 20),
                    "gap at the end of the data section: bytes [16, 20)"},
        BadFileCase{"DataWithoutTensors", HandMade("{}", 4), "bytes [0, 4) belong to no tensor"},
        BadFileCase{
            "MetadataNotStrings",
            HandMade("{\"__metadata__\":{\"format\":\"pt\",\"n\":1}," + F32("a", "[1]", "[0,4]") + "}", 4),
            "__metadata__ value of 'n' is an unsigned integer, not a string"},
        BadFileCase{"MetadataNotObject", HandMade("{\"__metadata__\":[\"pt\"]}", 0),
                    "__metadata__ is an array, not an object of strings"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(SafetensorsTest, EmptyHeaderObjectIsAValidEmptyFile) {
  const std::vector<char> bytes = HandMade("{}      ", 0);
  auto header = ParseSafetensorsHeader(std::as_bytes(std::span(bytes)), "empty");
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  EXPECT_TRUE(header->tensors.empty());
  EXPECT_EQ(header->data_start, 16u);
}

TEST(SafetensorsTest, DuplicateNameKeepsTheLastEntryAndIsRefusedForItsGap) {
  // nlohmann keeps the last of duplicate keys: the first entry's bytes are then unaccounted for.
  const auto bytes = HandMade("{" + F32("w", "[1]", "[0,4]") + "," + F32("w", "[1]", "[4,8]") + "}", 8);
  auto header = ParseSafetensorsHeader(std::as_bytes(std::span(bytes)), "dup");
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.status().message().find("bytes [0, 4) belong to no tensor"), std::string::npos)
      << header.status().message();
}

// A sharded model directory: two shards and the index naming them.
class SafetensorsModelTest : public ::testing::Test {
 protected:
  void WriteShards() {
    ASSERT_TRUE(WriteSafetensors(
                    (dir_ / "model-00001-of-00002.safetensors").string(),
                    {{.name = "embed", .dtype = TensorDtype::kF32, .shape = {2, 2}, .bytes = AsBytes(embed_)},
                     {.name = "norm", .dtype = TensorDtype::kBF16, .shape = {2}, .bytes = AsBytes(norm_)}})
                    .ok());
    ASSERT_TRUE(WriteSafetensors(
                    (dir_ / "model-00002-of-00002.safetensors").string(),
                    {{.name = "head", .dtype = TensorDtype::kF16, .shape = {3}, .bytes = AsBytes(head_)}})
                    .ok());
  }
  void WriteIndex(const std::string& weight_map) {
    const std::string text = "{\"metadata\": {\"total_size\": 30}, \"weight_map\": " + weight_map + "}";
    testing::WriteBytes(dir_ / "model.safetensors.index.json", std::vector<char>(text.begin(), text.end()));
  }
  static constexpr const char* kGoodMap =
      R"({"embed": "model-00001-of-00002.safetensors", "norm": "model-00001-of-00002.safetensors",
          "head": "model-00002-of-00002.safetensors"})";

  void ExpectRefused(const std::string& expected) {
    auto model = SafetensorsModel::Open(dir_.path().string());
    ASSERT_FALSE(model.ok()) << expected;
    EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(model.status().message().find(dir_.path().string()), std::string::npos)
        << model.status().message();
    EXPECT_NE(model.status().message().find(expected), std::string::npos) << model.status().message();
  }

  testing::TempDir dir_;
  std::vector<float> embed_ = {1, 2, 3, 4};
  std::vector<uint16_t> norm_ = {0x3F80, 0xC000};          // BF16 1, -2
  std::vector<uint16_t> head_ = {0x3C00, 0x8000, 0x7BFF};  // F16 1, -0, 65504
};

TEST_F(SafetensorsModelTest, OpensShardsThroughTheIndex) {
  WriteShards();
  WriteIndex(kGoodMap);
  auto model = SafetensorsModel::Open(dir_.path().string());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(model->files().size(), 2u);
  EXPECT_EQ(model->names(), (std::vector<std::string>{"embed", "head", "norm"}));
  EXPECT_TRUE(model->Contains("head"));
  EXPECT_FALSE(model->Contains("missing"));

  auto head = model->Get("head");
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->info->dtype, TensorDtype::kF16);
  EXPECT_EQ(fs::path(head->file->path()).filename(), "model-00002-of-00002.safetensors");
  std::vector<float> values(3);
  ASSERT_TRUE(ConvertToFloat32(head->info->dtype, head->bytes, values.data(), 3).ok());
  ExpectSameBits(values, {1.0f, -0.0f, 65504.0f});

  auto norm = model->Get("norm");
  ASSERT_TRUE(norm.ok());
  std::vector<float> norm_values(2);
  ASSERT_TRUE(ConvertToFloat32(norm->info->dtype, norm->bytes, norm_values.data(), 2).ok());
  ExpectSameBits(norm_values, {1.0f, -2.0f});

  // The model can move: the tensors still point into the mapped shards.
  SafetensorsModel moved = std::move(model).value();
  auto embed = moved.Get("embed");
  ASSERT_TRUE(embed.ok());
  ASSERT_EQ(embed->bytes.size(), 16u);
  EXPECT_EQ(std::memcmp(embed->bytes.data(), embed_.data(), 16), 0);

  auto missing = moved.Get("missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir_.path().string()), std::string::npos);
  EXPECT_NE(missing.status().message().find("'missing'"), std::string::npos) << missing.status().message();
}

TEST_F(SafetensorsModelTest, OpensASingleFileDirectoryAndAFile) {
  const std::string path = (dir_ / "model.safetensors").string();
  ASSERT_TRUE(WriteOne(path, "w", TensorDtype::kF32, {4}, AsBytes(embed_)).ok());
  auto model = SafetensorsModel::Open(dir_.path().string());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(model->names(), (std::vector<std::string>{"w"}));
  EXPECT_EQ(model->files().size(), 1u);

  const std::string other = (dir_ / "other.safetensors").string();
  ASSERT_TRUE(WriteOne(other, "v", TensorDtype::kF32, {4}, AsBytes(embed_)).ok());
  auto direct = SafetensorsModel::Open(other);
  ASSERT_TRUE(direct.ok()) << direct.status().ToString();
  EXPECT_EQ(direct->names(), (std::vector<std::string>{"v"}));
}

TEST_F(SafetensorsModelTest, IndexWinsOverASingleFile) {
  WriteShards();
  WriteIndex(kGoodMap);
  ASSERT_TRUE(
      WriteOne((dir_ / "model.safetensors").string(), "w", TensorDtype::kF32, {4}, AsBytes(embed_)).ok());
  auto model = SafetensorsModel::Open(dir_.path().string());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_FALSE(model->Contains("w"));
  EXPECT_TRUE(model->Contains("embed"));
}

TEST_F(SafetensorsModelTest, EmptyDirectoryNamesBothFiles) {
  auto model = SafetensorsModel::Open(dir_.path().string());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kNotFound);
  EXPECT_NE(model.status().message().find(dir_.path().string()), std::string::npos);
  EXPECT_NE(model.status().message().find("neither model.safetensors.index.json nor model.safetensors"),
            std::string::npos)
      << model.status().message();
  auto nowhere = SafetensorsModel::Open((dir_ / "nowhere").string());
  ASSERT_FALSE(nowhere.ok());
  EXPECT_NE(nowhere.status().message().find("nowhere"), std::string::npos);
}

TEST_F(SafetensorsModelTest, IndexNamingAMissingShardIsRefused) {
  WriteShards();
  WriteIndex(R"({"embed": "model-00001-of-00002.safetensors", "head": "model-00003-of-00003.safetensors"})");
  ExpectRefused("shard 'model-00003-of-00003.safetensors'");
}

TEST_F(SafetensorsModelTest, TensorInTheWrongShardIsRefused) {
  WriteShards();
  WriteIndex(R"({"embed": "model-00001-of-00002.safetensors", "norm": "model-00002-of-00002.safetensors",
                 "head": "model-00002-of-00002.safetensors"})");
  ExpectRefused("puts tensor 'norm' in 'model-00002-of-00002.safetensors', but it is in");
}

TEST_F(SafetensorsModelTest, TensorNoShardHoldsIsRefused) {
  WriteShards();
  WriteIndex(R"({"embed": "model-00001-of-00002.safetensors", "lost": "model-00002-of-00002.safetensors"})");
  ExpectRefused("puts tensor 'lost' in 'model-00002-of-00002.safetensors', but no shard holds it");
}

TEST_F(SafetensorsModelTest, TensorInTwoShardsIsRefused) {
  WriteShards();
  // The second shard holds its own tensor and a copy of one of the first.
  ASSERT_TRUE(WriteSafetensors(
                  (dir_ / "model-00002-of-00002.safetensors").string(),
                  {{.name = "head", .dtype = TensorDtype::kF16, .shape = {3}, .bytes = AsBytes(head_)},
                   {.name = "embed", .dtype = TensorDtype::kF32, .shape = {4}, .bytes = AsBytes(embed_)}})
                  .ok());
  WriteIndex(kGoodMap);
  ExpectRefused("tensor 'embed' is in two shards");
}

TEST_F(SafetensorsModelTest, ShardNamesThatAreNotPlainFileNamesAreRefused) {
  WriteShards();
  // A real shard outside the model directory, which the index must not reach.
  const fs::path outside = dir_ / "outside";
  fs::create_directories(outside / "model");
  ASSERT_TRUE(WriteOne((dir_ / "outside" / "escape.safetensors").string(), "embed", TensorDtype::kF32, {4},
                       AsBytes(embed_))
                  .ok());
  for (const std::string name :
       {"../escape.safetensors", "sub/escape.safetensors", "/etc/passwd", "..", ""}) {
    const std::string text = R"({"weight_map": {"embed": ")" + name + R"("}})";
    testing::WriteBytes(outside / "model" / "model.safetensors.index.json",
                        std::vector<char>(text.begin(), text.end()));
    auto model = SafetensorsModel::Open((outside / "model").string());
    ASSERT_FALSE(model.ok()) << name;
    EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(model.status().message().find("'" + name + "', which is not a plain file name"),
              std::string::npos)
        << model.status().message();
  }
}

TEST_F(SafetensorsModelTest, MalformedIndexIsRefused) {
  WriteShards();
  WriteIndex("[1]");
  ExpectRefused("weight_map is an array");
  WriteIndex("{}");
  ExpectRefused("weight_map is empty");
  WriteIndex(R"({"embed": 3})");
  ExpectRefused("weight_map entry of tensor 'embed' is an unsigned integer");
  const std::string broken = "{\"weight_map\": ";
  testing::WriteBytes(dir_ / "model.safetensors.index.json", std::vector<char>(broken.begin(), broken.end()));
  ExpectRefused("not valid JSON");
  const std::string no_map = "{\"metadata\": {}}";
  testing::WriteBytes(dir_ / "model.safetensors.index.json", std::vector<char>(no_map.begin(), no_map.end()));
  ExpectRefused("no weight_map");
}

TEST_F(SafetensorsModelTest, CorruptShardIsRefusedWithItsName) {
  WriteShards();
  WriteIndex(kGoodMap);
  auto bytes = ReadAll(dir_ / "model-00002-of-00002.safetensors");
  bytes.pop_back();
  testing::WriteBytes(dir_ / "model-00002-of-00002.safetensors", bytes);
  ExpectRefused("model-00002-of-00002.safetensors: tensor 'head' data_offsets [0, 6] past the end");
}

}  // namespace
}  // namespace tandem
