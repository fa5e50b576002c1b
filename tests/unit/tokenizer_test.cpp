#include "tandem/text/tokenizer.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "test_env.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::ReadBytes;
using ::tandem::testing::TempDir;
using ::tandem::testing::WriteBytes;

constexpr int32_t kStoriesVocab = 512;

template <typename T>
void Append(std::vector<char>& bytes, T value) {
  const char* raw = reinterpret_cast<const char*>(&value);
  bytes.insert(bytes.end(), raw, raw + sizeof(T));
}

template <typename T>
void Put(std::vector<char>& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// Builds a llama2.c tokenizer file: the three specials, <0x00>..<0xFF> at ids 3..258, then `extra`.
std::vector<char> MakeTokenizerBytes(const std::vector<std::pair<std::string, float>>& extra,
                                     int32_t max_token_length = 16) {
  std::vector<std::pair<std::string, float>> pieces = {
      {"<unk>", 0.0f}, {"\n<s>\n", 0.0f}, {"\n</s>\n", 0.0f}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    pieces.emplace_back(name, 0.0f);
  }
  pieces.insert(pieces.end(), extra.begin(), extra.end());
  std::vector<char> bytes;
  Append<int32_t>(bytes, max_token_length);
  for (const auto& [piece, score] : pieces) {
    Append<float>(bytes, score);
    Append<int32_t>(bytes, static_cast<int32_t>(piece.size()));
    bytes.insert(bytes.end(), piece.begin(), piece.end());
  }
  return bytes;
}

// Byte offsets of every token's length field in a well-formed tokenizer file.
std::vector<size_t> LengthFieldOffsets(const std::vector<char>& bytes) {
  std::vector<size_t> offsets;
  size_t offset = 4;
  while (offset + 8 <= bytes.size()) {
    int32_t length = 0;
    std::memcpy(&length, bytes.data() + offset + 4, sizeof(length));
    offsets.push_back(offset + 4);
    offset += 8 + static_cast<size_t>(length);
  }
  return offsets;
}

class StoriesTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::tandem::testing::SharedDir().empty()) GTEST_SKIP() << "shared data folder not found";
    path_ = ::tandem::testing::Stories260KTokenizer();
    if (!fs::exists(path_)) GTEST_SKIP() << path_ << " not found";
    auto loaded = Tokenizer::Load(path_.string(), kStoriesVocab);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    tokenizer_ = std::make_unique<Tokenizer>(std::move(loaded).value());
  }

  // Writes `bytes` to a temporary file and loads it, expecting an error that names that file.
  Status LoadBroken(const std::vector<char>& bytes, int32_t vocab_size = kStoriesVocab) {
    const fs::path path = temp_ / "broken-tok.bin";
    WriteBytes(path, bytes);
    auto loaded = Tokenizer::Load(path.string(), vocab_size);
    EXPECT_FALSE(loaded.ok()) << "accepted a broken file of " << bytes.size() << " bytes";
    if (loaded.ok()) return Status::Ok();
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find(path.string()), std::string::npos) << loaded.status().message();
    return loaded.status();
  }

  fs::path path_;
  std::unique_ptr<Tokenizer> tokenizer_;
  TempDir temp_;
};

TEST_F(StoriesTokenizerTest, LoadsVocabulary) {
  EXPECT_EQ(tokenizer_->vocab_size(), kStoriesVocab);
  EXPECT_EQ(tokenizer_->piece(Tokenizer::kUnknown), "<unk>");
  EXPECT_EQ(tokenizer_->piece(Tokenizer::kBos), "\n<s>\n");
  EXPECT_EQ(tokenizer_->piece(Tokenizer::kEos), "\n</s>\n");
  EXPECT_EQ(tokenizer_->piece(13), "<0x0A>");
  EXPECT_EQ(tokenizer_->piece(410), " ");
}

TEST_F(StoriesTokenizerTest, MatchesLlama2cGolden) {
  std::ifstream in(::tandem::testing::GoldenFile());
  ASSERT_TRUE(in) << "cannot open " << ::tandem::testing::GoldenFile();
  std::string line;
  int records = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line);
    const auto prompt = record.at("prompt").get<std::string>();
    const auto prompt_ids = record.at("prompt_ids").get<std::vector<int>>();
    const auto ids = record.at("ids").get<std::vector<int>>();
    const auto text = record.at("text").get<std::string>();
    EXPECT_EQ(tokenizer_->Encode(prompt, /*add_bos=*/true, /*add_eos=*/false), prompt_ids) << prompt;
    EXPECT_EQ(tokenizer_->DecodeAll(ids), text) << prompt;
    ++records;
  }
  EXPECT_EQ(records, 5);
}

TEST_F(StoriesTokenizerTest, EncodeBosEosAndEmptyText) {
  EXPECT_EQ(tokenizer_->Encode("", true, false), (std::vector<int>{1}));
  EXPECT_EQ(tokenizer_->Encode("", true, true), (std::vector<int>{1, 2}));
  EXPECT_TRUE(tokenizer_->Encode("", false, false).empty());
  EXPECT_EQ(tokenizer_->Encode("Once upon a time", false, true), (std::vector<int>{403, 407, 261, 378, 2}));
}

TEST_F(StoriesTokenizerTest, ByteFallbackForUnknownCodePoints) {
  // "é" (C3 A9) is a piece of its own; "ü" (C3 BC) and "日" (E6 97 A5) are not, so each of their bytes
  // becomes id byte + 3.
  EXPECT_EQ(tokenizer_->Encode("\xC3\xA9", false, false), (std::vector<int>{410, 485}));
  EXPECT_EQ(tokenizer_->DecodeAll({1, 485}), "\xC3\xA9");
  EXPECT_EQ(tokenizer_->Encode("\xC3\xBC", false, false), (std::vector<int>{410, 0xC3 + 3, 0xBC + 3}));
  EXPECT_EQ(tokenizer_->Encode("\xE6\x97\xA5", true, false),
            (std::vector<int>{1, 410, 0xE6 + 3, 0x97 + 3, 0xA5 + 3}));
  // llama2.c prints no lone non-ASCII bytes, so this decodes to nothing at all.
  EXPECT_EQ(tokenizer_->DecodeAll({1, 410, 0xE6 + 3, 0x97 + 3, 0xA5 + 3}), "");
}

TEST_F(StoriesTokenizerTest, DecodesBytePiecesAndDropsSpaceAfterBos) {
  EXPECT_EQ(tokenizer_->Decode(5, 13), "\n");  // <0x0A>
  EXPECT_EQ(tokenizer_->Decode(5, 3 + 'A'), "A");
  const std::string_view zero = tokenizer_->Decode(5, 3);
  ASSERT_EQ(zero.size(), 1u);
  EXPECT_EQ(zero[0], '\0');
  EXPECT_EQ(tokenizer_->Decode(Tokenizer::kBos, 403), "Once");  // the piece is " Once"
  EXPECT_EQ(tokenizer_->Decode(5, 403), " Once");
  EXPECT_EQ(tokenizer_->Decode(Tokenizer::kBos, 410), "");
}

TEST_F(StoriesTokenizerTest, DecodeOutOfRangeIsEmpty) {
  EXPECT_EQ(tokenizer_->Decode(1, -1), "");
  EXPECT_EQ(tokenizer_->Decode(1, kStoriesVocab), "");
  EXPECT_EQ(tokenizer_->Decode(-7, 1 << 30), "");
  EXPECT_EQ(tokenizer_->DecodeAll({1, 403, 99999, 407}), "Once upon");
}

TEST_F(StoriesTokenizerTest, DecodeAllSkipsUnprintableSingleBytes) {
  EXPECT_EQ(tokenizer_->DecodeAll({}), "");
  EXPECT_EQ(tokenizer_->DecodeAll({1}), "");
  // BEL and NUL are dropped; newline and tab (whitespace) are kept.
  EXPECT_EQ(tokenizer_->DecodeAll({1, 3 + 'H', 3 + 0x07, 3 + 0x00, 3 + 'i', 13, 3 + '\t'}), "Hi\n\t");
}

TEST_F(StoriesTokenizerTest, MissingFileIsNotFound) {
  const std::string missing = (temp_ / "no-such-tok.bin").string();
  auto loaded = Tokenizer::Load(missing, kStoriesVocab);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  EXPECT_NE(loaded.status().message().find(missing), std::string::npos) << loaded.status().message();
  EXPECT_NE(loaded.status().message().find("cannot open"), std::string::npos);
}

TEST_F(StoriesTokenizerTest, RefusesEveryTruncation) {
  const std::vector<char> good = ReadBytes(path_);
  ASSERT_EQ(good.size(), 6227u);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 200; ++n) lengths.push_back(n);
  for (size_t n : {good.size() / 2, good.size() - 8, good.size() - 2, good.size() - 1}) lengths.push_back(n);
  for (size_t n : lengths) {
    SCOPED_TRACE("prefix of " + std::to_string(n) + " bytes");
    const Status status =
        LoadBroken(std::vector<char>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    EXPECT_NE(status.message().find("truncated"), std::string::npos) << status.message();
  }
}

TEST_F(StoriesTokenizerTest, RefusesBadLengthFields) {
  const std::vector<char> good = ReadBytes(path_);
  const std::vector<size_t> offsets = LengthFieldOffsets(good);
  ASSERT_EQ(offsets.size(), static_cast<size_t>(kStoriesVocab));

  std::vector<char> bytes = good;
  Put<int32_t>(bytes, offsets[37], -1);
  Status status = LoadBroken(bytes);
  EXPECT_NE(status.message().find("token 37"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("negative"), std::string::npos) << status.message();

  bytes = good;
  Put<int32_t>(bytes, offsets[37], INT32_MIN);
  status = LoadBroken(bytes);
  EXPECT_NE(status.message().find("negative"), std::string::npos) << status.message();

  bytes = good;
  Put<int32_t>(bytes, offsets[37], 900);
  status = LoadBroken(bytes);
  EXPECT_NE(status.message().find("token 37 length 900 exceeds max_token_length 7"), std::string::npos)
      << status.message();

  bytes = good;
  Put<int32_t>(bytes, offsets[500], INT32_MAX);
  status = LoadBroken(bytes);
  EXPECT_NE(status.message().find("token 500 length 2147483647 exceeds"), std::string::npos)
      << status.message();

  // Within max_token_length but running past the end of the file.
  bytes = good;
  Put<int32_t>(bytes, offsets[511], 7);
  status = LoadBroken(bytes);
  EXPECT_NE(status.message().find("truncated"), std::string::npos) << status.message();
}

TEST_F(StoriesTokenizerTest, RefusesBadMaxTokenLength) {
  const std::vector<char> good = ReadBytes(path_);
  for (int32_t max_length : {0, -1, INT32_MIN, (1 << 20) + 1, INT32_MAX}) {
    SCOPED_TRACE("max_token_length " + std::to_string(max_length));
    std::vector<char> bytes = good;
    Put<int32_t>(bytes, 0, max_length);
    const Status status = LoadBroken(bytes);
    EXPECT_NE(status.message().find("max_token_length"), std::string::npos) << status.message();
  }
  // Smaller than the longest piece (7 bytes): some token exceeds it.
  std::vector<char> bytes = good;
  Put<int32_t>(bytes, 0, 6);
  const Status status = LoadBroken(bytes);
  EXPECT_NE(status.message().find("exceeds max_token_length 6"), std::string::npos) << status.message();
}

TEST_F(StoriesTokenizerTest, RefusesTrailingBytes) {
  std::vector<char> bytes = ReadBytes(path_);
  bytes.push_back('x');
  Status status = LoadBroken(bytes);
  EXPECT_NE(status.message().find("trailing"), std::string::npos) << status.message();
  bytes.insert(bytes.end(), 100, '\0');
  status = LoadBroken(bytes);
  EXPECT_NE(status.message().find("trailing"), std::string::npos) << status.message();
}

TEST_F(StoriesTokenizerTest, RefusesWrongVocabSize) {
  const std::vector<char> good = ReadBytes(path_);
  Status status = LoadBroken(good, kStoriesVocab - 1);  // a token left over
  EXPECT_NE(status.message().find("trailing"), std::string::npos) << status.message();
  status = LoadBroken(good, 32000);  // the file ends early
  EXPECT_NE(status.message().find("truncated"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("token 512 of 32000"), std::string::npos) << status.message();
  for (int32_t vocab_size : {0, -512}) {
    status = LoadBroken(good, vocab_size);
    EXPECT_NE(status.message().find("vocab_size"), std::string::npos) << status.message();
  }
  status = LoadBroken(good, INT32_MAX);
  EXPECT_NE(status.message().find("truncated"), std::string::npos) << status.message();
}

// A small synthetic vocabulary pins down the merge order and llama2.c's code point grouping.
class SyntheticTokenizerTest : public ::testing::Test {
 protected:
  static constexpr int kSpace = 259;
  static constexpr int kA = 260;
  static constexpr int kB = 261;
  static constexpr int kC = 262;
  static constexpr int kAA = 263;
  static constexpr int kAB = 264;
  static constexpr int kBC = 265;
  static constexpr int kEAcute = 266;
  static constexpr int kGrin = 267;
  static constexpr int kSpaceX = 268;
  static constexpr int kX = 269;

  void SetUp() override {
    const fs::path path = temp_ / "synthetic.bin";
    WriteBytes(path, MakeTokenizerBytes({{" ", -100.0f},
                                         {"a", -100.0f},
                                         {"b", -100.0f},
                                         {"c", -100.0f},
                                         {"aa", 1.0f},
                                         {"ab", 1.0f},
                                         {"bc", 2.0f},
                                         {"\xC3\xA9", -100.0f},
                                         {"\xF0\x9F\x98\x80", -100.0f},
                                         {" x", -100.0f},
                                         {"x", -100.0f}}));
    auto loaded = Tokenizer::Load(path.string(), 270);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    tokenizer_ = std::make_unique<Tokenizer>(std::move(loaded).value());
  }

  std::vector<int> Encode(std::string_view text) const { return tokenizer_->Encode(text, false, false); }

  TempDir temp_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(SyntheticTokenizerTest, MergesHighestScoreFirst) {
  // "ab" (1) and "bc" (2) compete for the "b": the higher score wins.
  EXPECT_EQ(Encode("abc"), (std::vector<int>{kSpace, kA, kBC}));
  EXPECT_EQ(Encode("ab"), (std::vector<int>{kSpace, kAB}));
}

TEST_F(SyntheticTokenizerTest, MergesLeftmostOnTies) {
  EXPECT_EQ(Encode("aaa"), (std::vector<int>{kSpace, kAA, kA}));
  // "aa" and "ab" score the same; the leftmost pair merges first.
  EXPECT_EQ(Encode("aab"), (std::vector<int>{kSpace, kAA, kB}));
}

TEST_F(SyntheticTokenizerTest, MergesWithTheDummyPrefix) {
  EXPECT_EQ(Encode("x"), (std::vector<int>{kSpaceX}));
  EXPECT_EQ(tokenizer_->Encode("x", true, true), (std::vector<int>{1, kSpaceX, 2}));
}

TEST_F(SyntheticTokenizerTest, GroupsCodePointsAsLlama2c) {
  EXPECT_EQ(Encode("\xC3\xA9"), (std::vector<int>{kSpace, kEAcute}));
  // A stray continuation byte joins the code point before it, so "é" is not found and all bytes fall back.
  EXPECT_EQ(Encode("\xC3\xA9\xA9"), (std::vector<int>{kSpace, 0xC3 + 3, 0xA9 + 3, 0xA9 + 3}));
  // A group stops at 4 bytes even if more continuation bytes follow.
  EXPECT_EQ(Encode("\xF0\x9F\x98\x80\x80"), (std::vector<int>{kSpace, kGrin, 0x80 + 3}));
  // A leading continuation byte starts its own group.
  EXPECT_EQ(Encode("\x80"
                   "a"),
            (std::vector<int>{kSpace, 0x80 + 3, kA}));
  EXPECT_EQ(Encode("a\xF0\x9F\x98\x80"), (std::vector<int>{kSpace, kA, kGrin}));
}

TEST_F(SyntheticTokenizerTest, DecodeMatchesBytePiecesExactly) {
  EXPECT_EQ(tokenizer_->Decode(Tokenizer::kBos, kSpaceX), "x");
  EXPECT_EQ(tokenizer_->Decode(kA, kSpaceX), " x");
  for (int b = 0; b < 256; ++b) {
    const std::string_view piece = tokenizer_->Decode(kA, b + 3);
    ASSERT_EQ(piece.size(), 1u) << b;
    EXPECT_EQ(static_cast<unsigned char>(piece[0]), b);
  }
}

TEST(TokenizerBytePieceTest, OnlyExactHexPiecesBecomeBytes) {
  TempDir temp;
  const fs::path path = temp / "hex.bin";
  WriteBytes(path, MakeTokenizerBytes({{"<0x4a>", 0.0f}, {"<0x4G>", 0.0f}, {"<0x4>", 0.0f}, {"0x41", 0.0f}}));
  auto loaded = Tokenizer::Load(path.string(), 263);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Tokenizer& tokenizer = *loaded;
  EXPECT_EQ(tokenizer.Decode(0, 259), "J");  // lower-case hex, as %X accepts
  EXPECT_EQ(tokenizer.Decode(0, 260), "<0x4G>");
  EXPECT_EQ(tokenizer.Decode(0, 261), "<0x4>");
  EXPECT_EQ(tokenizer.Decode(0, 262), "0x41");
}

TEST(TokenizerLoadTest, AcceptsZeroLengthPiecesAndRefusesADirectory) {
  TempDir temp;
  const fs::path path = temp / "empty-piece.bin";
  WriteBytes(path, MakeTokenizerBytes({{"", 0.0f}}));
  auto loaded = Tokenizer::Load(path.string(), 260);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->piece(259), "");

  auto directory = Tokenizer::Load(temp.path().string(), 260);
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.status().message().find(temp.path().string()), std::string::npos);
}

}  // namespace
}  // namespace tandem
