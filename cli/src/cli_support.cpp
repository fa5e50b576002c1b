#include "cli_support.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "tandem/model/checkpoint.hpp"

namespace tandem::cli {

std::optional<int> ParseFlags(FlagSet& flags, std::span<const std::string> args, const char* command) {
  const Status parsed = flags.Parse(args);
  if (!parsed.ok()) return Fail(command, parsed, kExitUsage);
  if (flags.help_requested()) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  return std::nullopt;
}

int Fail(const char* command, const Status& status, int exit_code) {
  std::string message = status.message();
  for (char& c : message) {
    if (c == '\n') c = ' ';  // one line, whatever the error text holds
  }
  std::fprintf(stderr, "tandem %s: error: %s\n", command, message.c_str());
  return exit_code;
}

// "tiny" matches stories260K, so its 512-token tokenizer works with it.
const std::map<std::string, ModelConfig>& ModelShapes() {
  static const std::map<std::string, ModelConfig> shapes = {
      {"tiny",
       {.dim = 64,
        .hidden_dim = 172,
        .n_layers = 5,
        .n_heads = 8,
        .n_kv_heads = 4,
        .vocab_size = 512,
        .seq_len = 512}},
      {"stories15M",
       {.dim = 288,
        .hidden_dim = 768,
        .n_layers = 6,
        .n_heads = 6,
        .n_kv_heads = 6,
        .vocab_size = 32000,
        .seq_len = 256}},
      {"stories110M",
       {.dim = 768,
        .hidden_dim = 2048,
        .n_layers = 12,
        .n_heads = 12,
        .n_kv_heads = 12,
        .vocab_size = 32000,
        .seq_len = 1024}},
  };
  return shapes;
}

Result<std::vector<GoldenRecord>> ReadGolden(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(path + ": cannot open");
  std::vector<GoldenRecord> records;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      const auto json = nlohmann::json::parse(line);
      records.push_back(
          {json.at("prompt_ids").get<std::vector<int>>(), json.at("ids").get<std::vector<int>>()});
    } catch (const nlohmann::json::exception& error) {
      return InvalidArgument(path + ": line " + std::to_string(number) + ": " + error.what());
    }
    const GoldenRecord& record = records.back();
    if (record.prompt_ids.empty() || record.ids.size() < record.prompt_ids.size()) {
      return InvalidArgument(path + ": line " + std::to_string(number) + ": ids shorter than prompt_ids");
    }
  }
  if (records.empty()) return InvalidArgument(path + ": no records");
  return records;
}

Result<std::vector<std::string>> ReadPrompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(path + ": cannot open");
  std::vector<std::string> prompts;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    const auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object() || !json.contains("prompt") || !json["prompt"].is_string()) {
      return InvalidArgument(path + ": line " + std::to_string(number) +
                             ": not a JSON object with a \"prompt\" string");
    }
    prompts.push_back(json["prompt"].get<std::string>());
  }
  if (prompts.empty()) return InvalidArgument(path + ": no prompts");
  return prompts;
}

std::string FixedPoint(double value, int digits) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", digits, value);
  return text;
}

Status Require(const FlagSet& flags, const std::string& name) {
  if (!flags.WasSet(name)) return InvalidArgument("--" + name + " is required (see --help)");
  return Status::Ok();
}

Status RequireNonEmpty(const FlagSet& flags, const std::string& name, const std::string& value) {
  TANDEM_RETURN_IF_ERROR(Require(flags, name));
  if (value.empty()) return InvalidArgument("--" + name + " is empty");
  return Status::Ok();
}

Status RequireModelAndTokenizer(const FlagSet& flags, const std::string& model) {
  TANDEM_RETURN_IF_ERROR(Require(flags, "model"));
  if (Checkpoint::IsHuggingFacePath(model)) return Status::Ok();
  if (!flags.WasSet("tokenizer")) {
    return InvalidArgument("--tokenizer is required with a llama2.c checkpoint (see --help)");
  }
  return Status::Ok();
}

std::string CompletionText(const Tokenizer& tokenizer, const std::vector<int>& ids) {
  std::vector<int> kept;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i == 0 || !tokenizer.IsEndOfText(ids[i])) kept.push_back(ids[i]);
  }
  return tokenizer.DecodeText(kept);
}

std::vector<std::string_view> ListItems(std::string_view text) {
  if (text.empty()) return {};
  std::vector<std::string_view> items = SplitList(text);
  if (items.back().empty()) items.pop_back();
  return items;
}

Result<std::vector<int>> ParseIntList(std::string_view text, int min, int max, const std::string& flag) {
  std::vector<int> values;
  for (const std::string_view item : ListItems(text)) {
    int value = 0;
    const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (error != std::errc() || end != item.data() + item.size() || value < min || value > max) {
      return InvalidArgument("--" + flag + ": '" + std::string(item) + "' is not within " +
                             std::to_string(min) + ".." + std::to_string(max));
    }
    values.push_back(value);
  }
  return values;
}

Result<std::vector<ActivationCodec>> ParseCodecList(std::string_view text, const std::string& flag) {
  std::vector<ActivationCodec> codecs;
  for (const std::string_view name : ListItems(text)) {
    TANDEM_ASSIGN_OR_RETURN(const ActivationCodec codec, ParseActivationCodec(name));
    codecs.push_back(codec);
  }
  if (codecs.empty()) return InvalidArgument("--" + flag + " names no codec");
  return codecs;
}

Result<at::Tensor> PassThroughCodec(const at::Tensor& rows, ActivationCodec codec) {
  const at::Tensor input = rows.contiguous();
  const int64_t n = input.size(0), cols = input.size(1);
  TANDEM_ASSIGN_OR_RETURN(
      const EncodedActivations encoded,
      EncodeActivations({input.data_ptr<float>(), static_cast<size_t>(n * cols)}, n, cols, codec));
  TANDEM_ASSIGN_OR_RETURN(
      std::vector<float> decoded,
      DecodeActivations(encoded.payload, n, cols, {codec.precision, encoded.compression}, n * cols));
  return at::from_blob(decoded.data(), {n, cols}, at::kFloat).clone();
}

Status CreateDirectories(const std::filesystem::path& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return InvalidArgument(dir.string() + ": cannot create: " + error.message());
  return Status::Ok();
}

Status WriteFileWithMode(const std::string& path, const std::string& text, mode_t mode, bool replace) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL), mode);
  if (fd < 0) {
    if (errno == EEXIST) return InvalidArgument("'" + path + "' already exists; --force replaces it");
    return Unavailable("cannot create '" + path + "': " + std::strerror(errno));
  }
  const bool written =
      fchmod(fd, mode) == 0 && write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int saved_errno = errno;
  const bool closed = close(fd) == 0;
  if (!written || !closed) return Unavailable("cannot write '" + path + "': " + std::strerror(saved_errno));
  return Status::Ok();
}

Status WriteText(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::trunc);
  file << text;
  file.close();
  if (!file) return Internal(path.string() + ": write failed");
  return Status::Ok();
}

}  // namespace tandem::cli
