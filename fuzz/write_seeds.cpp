// Recreates the seed corpora in fuzz/corpus/<target>/ from the project's own encoders and writers, so
// the seeds stay valid when a format changes: `build-fuzz/bin/write_seeds fuzz/corpus`. Each valid seed
// comes with a truncated variant; all stay far below libFuzzer's -max_len.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "tandem/model/checkpoint.hpp"
#include "tandem/text/chat_template.hpp"
#include "tandem/wire/activation_codec.hpp"
#include "tandem/wire/protocol.hpp"

namespace {

using namespace tandem;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

void WriteFile(const fs::path& path, std::span<const uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

// Writes `name` and `name`-truncated (the first half) into `dir`.
void WriteSeed(const fs::path& dir, const std::string& name, const Bytes& bytes) {
  WriteFile(dir / name, bytes);
  if (bytes.size() > 1) WriteFile(dir / (name + "-truncated"), std::span(bytes).first(bytes.size() / 2));
}

// Numbers only: a container would bind here by value and append its own bytes (pointers), not its elements.
template <typename T>
requires std::is_arithmetic_v<T>
void Append(Bytes& out, T value) {
  const auto* raw = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), raw, raw + sizeof(T));
}

void Append(Bytes& out, std::span<const std::byte> bytes) {
  const auto* raw = reinterpret_cast<const uint8_t*>(bytes.data());
  out.insert(out.end(), raw, raw + bytes.size());
}

// Smooth values with a few large ones, like hidden states.
std::vector<float> SampleActivations(int64_t rows, int64_t cols) {
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(0.37f * i) * (i % 11 == 0 ? 8.0f : 1.0f);
  return values;
}

void WriteWireSeeds(const fs::path& dir) {
  auto frame = [](const wire::Message& message) {
    Bytes bytes;
    Append(bytes, std::span<const std::byte>(wire::SerializeHeader(message.header)));
    Append(bytes, std::span<const std::byte>(message.payload));
    return bytes;
  };
  ModelConfig config{.dim = 64,
                     .hidden_dim = 172,
                     .n_layers = 5,
                     .n_heads = 8,
                     .n_kv_heads = 4,
                     .vocab_size = 512,
                     .seq_len = 512};
  wire::Hello hello = wire::DescribeModel(config, 0x1234abcd5678ef00ULL);
  WriteSeed(dir, "hello-edge", frame(wire::MakeHello(hello)));
  hello.max_rows = 512;
  hello.max_sessions = 64;
  hello.max_payload_bytes = 1 << 20;
  hello.codecs.resize(3);
  WriteSeed(dir, "hello-cloud", frame(wire::MakeHello(hello)));
  WriteSeed(dir, "open",
            frame(wire::MakeOpen({.session = 7,
                                  .cut = 2,
                                  .codec = {Precision::kInt8, Compression::kZstd},
                                  .sampling = {.temperature = 0.8f, .top_p = 0.9f, .seed = 42},
                                  .top_logprobs = 3,
                                  .max_positions = 256})));
  WriteSeed(dir, "token",
            frame(wire::MakeToken({.session = 7, .sequence = 3, .token = 99, .compute_us = 1500})));
  WriteSeed(dir, "token-logprobs",
            frame(wire::MakeToken({.session = 7,
                                   .sequence = 4,
                                   .token = 5,
                                   .compute_us = 900,
                                   .top_logprobs = {{5, -0.1f}, {17, -2.5f}, {300, -4.0f}}})));
  WriteSeed(dir, "error",
            frame(wire::MakeError({.session = 7,
                                   .sequence = 4,
                                   .code = wire::ErrorCode::kOverloaded,
                                   .retryable = true,
                                   .message = "too many sessions"})));
  WriteSeed(dir, "close", frame(wire::MakeClose(7)));
  const std::array<std::byte, 8> ping{std::byte{1}, std::byte{2}, std::byte{3}};
  WriteSeed(dir, "ping", frame(wire::MakePing(ping)));
  WriteSeed(dir, "stats-request", frame(wire::MakeStatsRequest(11)));
  wire::TailStats stats{
      .workers = 2, .sessions = 3, .queue_depth = 1, .utilization = 0.5f, .free_kv_bytes = 1 << 24};
  stats.profile.head_ms = 0.2;
  stats.profile.decode_block_ms = {0.1, 0.1, 0.12, 0.1, 0.11};
  stats.profile.prefill = {{.tokens = 16, .block_ms = {1, 1, 1.2, 1, 1.1}},
                           {.tokens = 64, .block_ms = {3, 3, 3.5, 3, 3.2}}};
  WriteSeed(dir, "stats", frame(wire::MakeStats(stats, 11)));
  // ACTIVATIONS as the edge sends them: one per precision, compressed where that shrinks them.
  const int64_t rows = 2, cols = 40;
  const std::vector<float> values = SampleActivations(rows, cols);
  for (ActivationCodec codec : {ActivationCodec{Precision::kFp32, Compression::kNone},
                                ActivationCodec{Precision::kFp16, Compression::kLz4},
                                ActivationCodec{Precision::kBf16, Compression::kNone},
                                ActivationCodec{Precision::kInt8, Compression::kZstd},
                                ActivationCodec{Precision::kInt4, Compression::kNone}}) {
    auto encoded = EncodeActivations(values, rows, cols, codec);
    if (!encoded.ok()) std::abort();
    WriteSeed(dir, "activations-" + codec.Name(),
              frame(wire::MakeActivations(7, 5, 10, rows, cols, codec, encoded->compression,
                                          std::move(encoded->payload))));
  }
  // A verify step: one row of the session's own, then a drafted token's; and its answer.
  const ActivationCodec int8{Precision::kInt8, Compression::kNone};
  auto encoded = EncodeActivations(values, rows, cols, int8);
  if (!encoded.ok()) std::abort();
  const std::array<int, 1> draft = {261};
  WriteSeed(dir, "verify",
            frame(wire::MakeVerify(7, 6, 12, rows, cols, int8, encoded->compression, draft,
                                   std::move(encoded->payload))));
  WriteSeed(dir, "verdict",
            frame(wire::MakeVerdict(
                {.session = 7, .sequence = 6, .kept = 1, .tokens = {261, 378}, .compute_us = 700})));
}

// fuzz_activation_codec input: precision, compression (as applied), rows u8, cols u16, payload.
void WriteCodecSeeds(const fs::path& dir) {
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{1, 8}, {3, 37}, {4, 96}}) {
    const std::vector<float> values = SampleActivations(rows, cols);
    for (ActivationCodec codec : AllActivationCodecs()) {
      auto encoded = EncodeActivations(values, rows, cols, codec);
      if (!encoded.ok()) std::abort();
      if (encoded->compression != codec.compression) continue;  // same bytes as the uncompressed seed
      Bytes bytes;
      Append(bytes, static_cast<uint8_t>(codec.precision));
      Append(bytes, static_cast<uint8_t>(encoded->compression));
      Append(bytes, static_cast<uint8_t>(rows));
      Append(bytes, static_cast<uint16_t>(cols));
      Append(bytes, std::span<const std::byte>(encoded->payload));
      WriteSeed(dir, codec.Name() + "-" + std::to_string(rows) + "x" + std::to_string(cols), bytes);
    }
  }
}

void WriteCompletionSeeds(const fs::path& dir) {
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {"minimal", R"({"prompt":"Once upon a time"})"},
      {"full",
       R"({"model":"stories260K","prompt":"Once upon a time","max_tokens":32,"temperature":0.7,"top_p":0.9,)"
       R"("seed":42,"stop":["\n","The end"],"stream":true,"n":1,"echo":false,"logprobs":0,"suffix":"",)"
       R"("best_of":1})"},
      {"split", R"({"prompt":"Hi","tandem":{"split":2,"codec":"int8+zstd"}})"},
      {"local", R"({"prompt":"Hi","tandem":{"split":"local"},"stop":"."})"},
      {"nulls", R"({"prompt":"x","seed":null,"stop":null,"stream":null,"tandem":null,"max_tokens":null})"},
      {"bad-type", R"({"prompt":["a","b"],"max_tokens":"10"})"},
      {"bad-range", R"({"prompt":"x","temperature":3,"top_p":0,"max_tokens":100000,"n":2})"},
      {"unicode", "{\"prompt\":\"caf\\u00e9 \xf0\x9f\x99\x82 \\ud83d\\ude42\",\"stop\":[\"\xc3\xa9\"]}"},
      {"not-object", R"(["prompt"])"},
      {"number-overflow", R"({"prompt":"x","temperature":1e400})"},
      {"big-numbers", R"({"prompt":"x","seed":18446744073709551615,"max_tokens":-1,"temperature":1e-300})"},
  };
  for (const auto& [name, body] : bodies) WriteSeed(dir, name + ".json", Bytes(body.begin(), body.end()));
}

void WriteChatRequestSeeds(const fs::path& dir) {
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {"minimal", R"({"messages":[{"role":"user","content":"Hi"}]})"},
      {"full",
       R"({"model":"stories260K","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":)"
       R"("Once upon a time"},{"role":"assistant","content":"there was"},{"role":"user","content":"Go on"}],)"
       R"("max_completion_tokens":32,"temperature":0.7,"top_p":0.9,"seed":42,"stop":["\n"],"stream":true,)"
       R"("stream_options":{"include_usage":true},"n":1,"tandem":{"split":2,"draft":"ngram"}})"},
      {"parts",
       R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]})"},
      {"developer", R"({"messages":[{"role":"developer","content":"x"},{"role":"user","content":"y"}]})"},
      {"bad-part",
       R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})"},
      {"bad-role", R"({"messages":[{"role":"tool","content":"x"}],"tools":[{"type":"function"}]})"},
      {"empty", R"({"messages":[],"n":2,"logprobs":true})"},
      {"unicode", "{\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \xf0\x9f\x99\x82\"}]}"},
  };
  for (const auto& [name, body] : bodies) WriteSeed(dir, name + ".json", Bytes(body.begin(), body.end()));
}

void WriteChatTemplateSeeds(const fs::path& dir) {
  for (const std::string_view name : tandem::ChatTemplate::BuiltinNames()) {
    const std::string_view source = *tandem::ChatTemplate::BuiltinSource(name);
    WriteSeed(dir, std::string(name) + ".jinja", Bytes(source.begin(), source.end()));
  }
  const std::vector<std::pair<std::string, std::string>> snippets = {
      {"namespace",
       "{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'system' %}{% set ns.n = "
       "ns.n + 1 %}{{ loop.index0 }}:{{ m['content']|trim|tojson }}{% endfor %}{{ ns.n }}"},
      {"macro", "{%- macro f(x, y=2) -%}{{ x * y }}{%- endmacro -%}{{ f(3) ~ f('a', y=3) }}"},
      {"filters",
       "{{ messages|map(attribute='role')|join(', ')|upper }}{{ [3,1,2]|sort|list|first }}"
       "{{ 'a b'.split()|length }}{{ messages[1:]|selectattr('role', 'equalto', 'user')|list|count }}"},
      {"raise", "{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}"},
  };
  for (const auto& [name, text] : snippets) WriteSeed(dir, name + ".jinja", Bytes(text.begin(), text.end()));
}

Bytes ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteCheckpointSeeds(const fs::path& dir) {
  const std::vector<std::pair<std::string, ModelConfig>> models = {
      {"shared-classifier",
       {.dim = 8,
        .hidden_dim = 16,
        .n_layers = 2,
        .n_heads = 2,
        .n_kv_heads = 1,
        .vocab_size = 32,
        .seq_len = 8}},
      {"separate-classifier",
       {.dim = 8,
        .hidden_dim = 12,
        .n_layers = 1,
        .n_heads = 4,
        .n_kv_heads = 2,
        .vocab_size = 16,
        .seq_len = 4,
        .shared_classifier = false}},
  };
  const fs::path scratch = fs::temp_directory_path() / ("tandem-seed-" + std::to_string(::getpid()));
  for (const auto& [name, config] : models) {
    if (!WriteRandomCheckpoint(scratch, config, 1).ok()) std::abort();
    WriteSeed(dir, name + ".bin", ReadFile(scratch));
  }
  fs::remove(scratch);
}

// A llama2.c tokenizer: <unk>, BOS, EOS, the 256 byte pieces, then a few merges; sets `vocab`.
Bytes MakeTokenizerFile(uint16_t& vocab) {
  std::vector<std::pair<std::string, float>> tokens = {{"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}};
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof(piece), "<0x%02X>", b);
    tokens.emplace_back(piece, 0);
  }
  const std::vector<std::string> merges = {" ",  "a",   "c",    "e",     "h",   "i",        "m",
                                           "n",  "o",   "p",    "t",     "u",   "\xc3\xa9", "O",
                                           "On", "Onc", "Once", " u",    " up", " upo",     " upon",
                                           "ti", "tim", "time", " time", " a",  "ca",       "caf"};
  float score = -1;
  for (const std::string& piece : merges) tokens.emplace_back(piece, score -= 0.5f);
  vocab = static_cast<uint16_t>(tokens.size());
  Bytes file;
  Append(file, int32_t{8});  // max_token_length
  for (const auto& [piece, token_score] : tokens) {
    Append(file, token_score);
    Append(file, static_cast<int32_t>(piece.size()));
    file.insert(file.end(), piece.begin(), piece.end());
  }
  return file;
}

// fuzz_tokenizer input: (vocab_size - 1) u16, text length u8, text, tokenizer file.
void WriteTokenizerSeeds(const fs::path& dir) {
  uint16_t vocab = 0;
  const Bytes file = MakeTokenizerFile(vocab);
  for (const auto& [name, text] : {std::pair<std::string, std::string>{"once", "Once upon a time"},
                                   {"bytes", "caf\xc3\xa9 \xf0\x9f\x99\x82 \xff"},
                                   {"empty", ""}}) {
    Bytes bytes;
    Append(bytes, static_cast<uint16_t>(vocab - 1));
    Append(bytes, static_cast<uint8_t>(text.size()));
    bytes.insert(bytes.end(), text.begin(), text.end());
    bytes.insert(bytes.end(), file.begin(), file.end());
    WriteSeed(dir, name, bytes);
  }
  Bytes wrong_vocab;  // one token fewer than the file holds: refused for trailing bytes
  Append(wrong_vocab, static_cast<uint16_t>(vocab - 2));
  Append(wrong_vocab, uint8_t{0});
  wrong_vocab.insert(wrong_vocab.end(), file.begin(), file.end());
  WriteFile(dir / "wrong-vocab", wrong_vocab);
}

// Small tokenizer.json files of the shapes Tandem reads: SentencePiece-style BPE (Llama 2's normalizer, or
// Mistral's Metaspace) with a few byte-fallback tokens, and byte-level BPE (GPT-2's ByteLevel regex, or
// Llama 3's Split regex). Kept to a few hundred bytes so libFuzzer's -max_len does not cut them.
std::string TokenizerJson(bool byte_level, bool variant) {
  using nlohmann::json;
  const std::string space = byte_level ? "\xc4\xa0" : "\xe2\x96\x81";  // Ġ or ▁
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"<0x0A>", 3}, {"<0xC3>", 4}, {"<0xA9>", 5}};
  const std::vector<std::string> pieces = {space,  "H",     "e",         "l",  "o",          "w",  "r",
                                           "d",    "1",     "2",         "'",  "s",          "ll", "He",
                                           "Hell", "Hello", space + "w", "or", space + "wor"};
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = static_cast<int>(6 + i);
  const json merges = {"l l", "H e", "He ll", "Hell o", space + " w", "o r", space + "w or"};
  json added = json::array();
  for (const auto& [id, content] : std::vector<std::pair<int, std::string>>{{1, "<s>"}, {2, "</s>"}}) {
    added.push_back({{"id", id}, {"content", content}, {"special", true}, {"normalized", false}});
  }
  json doc = {{"added_tokens", added},
              {"model",
               {{"type", "BPE"},
                {"unk_token", byte_level ? json() : json("<unk>")},
                {"byte_fallback", !byte_level},
                {"fuse_unk", true},
                {"vocab", vocab},
                {"merges", merges}}}};
  if (byte_level) {
    const json pre = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", !variant}};
    doc["pre_tokenizer"] = pre;
    if (variant) {
      doc["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Split"},
                                 {"pattern",
                                  {{"Regex",
                                    "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                    "?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"}}},
                                 {"behavior", "Isolated"}},
                                pre}}};
      doc["normalizer"] = {{"type", "NFC"}};
    }
    doc["decoder"] = {{"type", "ByteLevel"}};
  } else if (variant) {
    doc["pre_tokenizer"] = {
        {"type", "Metaspace"}, {"replacement", space}, {"prepend_scheme", "first"}, {"split", false}};
    doc["decoder"] = {{"type", "Metaspace"}, {"replacement", space}, {"prepend_scheme", "first"}};
  } else {
    doc["normalizer"] = {{"type", "Sequence"},
                         {"normalizers",
                          {{{"type", "Prepend"}, {"prepend", space}},
                           {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}}}};
    doc["decoder"] = {{"type", "Sequence"},
                      {"decoders",
                       {{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
                        {{"type", "ByteFallback"}},
                        {{"type", "Fuse"}},
                        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
    doc["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  }
  return doc.dump();
}

// fuzz_tokenizer_json input: text length u8, text, tokenizer.json.
void WriteTokenizerJsonSeeds(const fs::path& dir) {
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"hello", "Hello world's 12!"},
      {"specials", "<s>Hello</s>\n\xc3\xa9"},
      {"bytes", "caf\xc3\xa9 \xff\xc3( e\xcc\x81"}};
  for (const auto& [kind, byte_level, variant] :
       std::vector<std::tuple<std::string, bool, bool>>{{"llama2", false, false},
                                                        {"metaspace", false, true},
                                                        {"gpt2", true, false},
                                                        {"llama3", true, true}}) {
    const std::string file = TokenizerJson(byte_level, variant);
    for (const auto& [name, text] : texts) {
      Bytes bytes;
      Append(bytes, static_cast<uint8_t>(text.size()));
      bytes.insert(bytes.end(), text.begin(), text.end());
      bytes.insert(bytes.end(), file.begin(), file.end());
      WriteSeed(dir, kind + "-" + name, bytes);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (e.g. fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  const std::vector<std::pair<std::string, void (*)(const fs::path&)>> writers = {
      {"wire", WriteWireSeeds},
      {"activation_codec", WriteCodecSeeds},
      {"completion_request", WriteCompletionSeeds},
      {"chat_request", WriteChatRequestSeeds},
      {"chat_template", WriteChatTemplateSeeds},
      {"checkpoint", WriteCheckpointSeeds},
      {"tokenizer", WriteTokenizerSeeds},
      {"tokenizer_json", WriteTokenizerJsonSeeds}};
  for (const auto& [target, write] : writers) {
    fs::create_directories(root / target);
    write(root / target);
  }
  return 0;
}
